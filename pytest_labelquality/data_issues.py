"""Defects beside wrong labels, found from each item's vector and content hash: exact
duplicates (and those whose labels conflict), near duplicates, leaks between splits, outliers.

- **Exact duplicates** share a content hash (a file's bytes, a text, a row's values).
- **Near duplicates** are pairs of other items among each other's :data:`knn.K` nearest whose
  cosine similarity is at least the threshold (:data:`NEAR_SIMILARITY` by what the vectors
  are). Images must also look alike: their 8 x 8 colour thumbnails, mean removed, at least
  :data:`THUMBNAIL_SIMILARITY` similar as they are or mirrored (as a perceptual hash would
  match them): a photo re-encoded, resized or mirrored passes, a different photo of a similar
  scene does not.
- **Redundant items**: in each cluster of items joined by exact or near pairs, all but one; their
  share is what a gate on near duplicates reads.
- **Leaks**: an exact or near pair whose items sit in different splits.
- **Outliers**: items that belong to no class: the Mahalanobis distance of their vector, on its
  :data:`OUTLIER_COMPONENTS` principal components, to the nearest class mean under one shared
  covariance (Ledoit-Wolf), above Tukey's far-out fence ``Q3 + 3 IQR`` of all items' distances.
  Unlike a nearest-neighbour density, a small cluster of odd items (a dozen blank or noise
  images) does not hide its members from each other.

Everything here is NumPy and scikit-learn on arrays; the runner caches :class:`Findings`.
Calibrated in ``benchmarks/data_issues.py``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pytest_labelquality import knn
from pytest_labelquality.dataset import DataKind

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from pytest_labelquality.dataset import Dataset

#: Default near-duplicate similarity of the vectors, by what they are. Image embeddings are a
#: first filter (the thumbnails decide); text embeddings and raw features decide alone.
NEAR_SIMILARITY = {"image embeddings": 0.8, "text embeddings": 0.95, "features": 0.98}
#: Images: how alike two thumbnails must be. On 5,000 CIFAR photos under EfficientNet-Lite0,
#: copies re-encoded, resized or mirrored are all above 0.9995; no two different photos among
#: the pairs at embedding similarity 0.8 are above 0.99.
THUMBNAIL_SIMILARITY = 0.99
#: Thumbnails' side, in cells.
THUMBNAIL = 8
#: The outlier rule: principal components kept, and the fence in interquartile ranges.
OUTLIER_COMPONENTS = 64
#: Fewer items keep fewer components, so that the covariance stays well estimated.
ITEMS_PER_COMPONENT = 20
OUTLIER_FENCE = 3.0
#: How sure the language of a text must be for it to count as another language than most.
LANGUAGE_CONFIDENCE = 0.9
#: Items the principal components are fitted on.
COMPONENT_SAMPLE = 20_000
#: The cache entry's arrays: dtype kinds and shapes (``n``: the items).
EXPECT: dict[str, tuple[str, tuple[int | str | None, ...]]] = {
    "exact_group": ("i", ("n",)),
    "near_pairs": ("i", (None, 2)),
    "near_similarity": ("f", (None,)),
    "outlier_distance": ("f", ("n",)),
    "outlier_cutoff": ("f", ()),
    "language": ("U", ("n",)),
    "language_prob": ("f", ("n",)),
}
ARRAYS = tuple(EXPECT)
#: Dimensions the raw features of texts are reduced to (TF-IDF, then truncated SVD).
TEXT_DIMENSIONS = 256


@dataclass(frozen=True, eq=False)
class Findings:
    """What the search found, by item index.

    ``exact_group``: each item's group of identical content (``-1`` when unique);
    ``near_pairs``: ``(i, j)`` with ``i < j`` of different content at least ``threshold``
    similar, most similar first, and their ``near_similarity``; ``outlier_distance``: each
    item's distance to the nearest class (see :func:`outlier_distances`); ``outlier_cutoff``:
    the fence above which an item is an outlier (one value); texts' ``language`` (ISO 639-1,
    ``""`` where not detected) and its probability ``language_prob``."""

    exact_group: npt.NDArray[np.int64]
    near_pairs: npt.NDArray[np.int64]
    near_similarity: npt.NDArray[np.float32]
    outlier_distance: npt.NDArray[np.float32]
    outlier_cutoff: npt.NDArray[np.float32]
    language: npt.NDArray[np.str_]
    language_prob: npt.NDArray[np.float32]

    @property
    def main_language(self) -> str | None:
        """The language most texts are written in; None where none was detected."""
        import numpy as np

        known = self.language[self.language != ""]
        if not len(known):
            return None
        names, counts = np.unique(known, return_counts=True)
        return str(names[np.argmax(counts)])

    @property
    def foreign(self) -> npt.NDArray[np.bool_]:
        """Texts surely written in another language than most."""
        import numpy as np

        main = self.main_language
        if main is None:
            return np.zeros(len(self.language), dtype=bool)
        other: npt.NDArray[np.bool_] = (
            (self.language != "")
            & (self.language != main)
            & (self.language_prob >= LANGUAGE_CONFIDENCE)
        )
        return other

    @property
    def outliers(self) -> npt.NDArray[np.int64]:
        """Indices of the outliers (far from every class, or in another language), farthest
        first."""
        import numpy as np

        out = np.flatnonzero((self.outlier_distance > float(self.outlier_cutoff)) | self.foreign)
        return out[np.argsort(-self.outlier_distance[out], kind="stable")]

    def exact_groups(self) -> list[npt.NDArray[np.int64]]:
        """The groups of identical items (two or more each), by first member."""
        import numpy as np

        members = np.flatnonzero(self.exact_group >= 0)
        order = members[np.argsort(self.exact_group[members], kind="stable")]
        groups = np.split(order, np.flatnonzero(np.diff(self.exact_group[order])) + 1)
        return sorted((g for g in groups if len(g) > 1), key=lambda g: int(g[0]))

    def redundant(self) -> npt.NDArray[np.int64]:
        """Items that repeat another exactly or nearly: all but the first of each cluster."""
        import numpy as np

        n = len(self.exact_group)
        parent = np.arange(n)

        def root(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = int(parent[i])
            return i

        links = [(int(g[0]), int(j)) for g in self.exact_groups() for j in g[1:]]
        links += [(int(i), int(j)) for i, j in self.near_pairs.tolist()]
        for i, j in links:
            a, b = root(i), root(j)
            if a != b:
                parent[max(a, b)] = min(a, b)
        linked = np.unique(np.array([i for pair in links for i in pair], dtype=np.int64))
        return np.array([i for i in linked.tolist() if root(i) != i], dtype=np.int64)

    def without(self, items: npt.NDArray[np.int64]) -> Findings:
        """These findings with the groups and pairs that hold any of ``items`` taken out."""
        import numpy as np

        held = self.exact_group[items]
        exact = np.where(np.isin(self.exact_group, held[held >= 0]), -1, self.exact_group)
        keep = ~np.isin(self.near_pairs, items).any(axis=1)
        return dataclasses.replace(
            self,
            exact_group=exact,
            near_pairs=self.near_pairs[keep],
            near_similarity=self.near_similarity[keep],
        )

    def to_arrays(self) -> dict[str, Any]:
        """Arrays for the cache entry."""
        return {name: getattr(self, name) for name in ARRAYS}

    @classmethod
    def from_arrays(cls, arrays: dict[str, Any], items: int) -> Findings | None:
        """Rebuild from a cache entry; None where it does not fit ``items`` items."""
        import numpy as np

        if any(name not in arrays for name in ARRAYS):
            return None
        found = cls(**{name: arrays[name] for name in ARRAYS})
        pairs = found.near_pairs
        if (
            found.exact_group.shape != (items,)
            or found.outlier_distance.shape != (items,)
            or pairs.ndim != 2
            or pairs.shape[1] != 2
            or len(pairs) != len(found.near_similarity)
            or (pairs.size and (pairs.min() < 0 or pairs.max() >= items))
            or not np.isfinite(found.outlier_cutoff).all()
        ):
            return None
        return found


def search_features(data: Dataset) -> npt.NDArray[np.float32]:
    """Vectors of raw features for a dataset without embeddings: a text's TF-IDF reduced by
    truncated SVD, an image's pixels less the mean image, a table row's values as z-scores."""
    import numpy as np

    if data.kind is DataKind.TEXT:
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer

        tfidf = TfidfVectorizer(sublinear_tf=True).fit_transform(data.features.tolist())
        if tfidf.shape[1] <= TEXT_DIMENSIONS:
            return np.asarray(tfidf.toarray(), dtype=np.float32)
        svd = TruncatedSVD(TEXT_DIMENSIONS, random_state=0)
        return np.asarray(svd.fit_transform(tfidf), dtype=np.float32)
    flat: npt.NDArray[np.float32] = np.asarray(data.features, dtype=np.float32).reshape(
        len(data), -1
    )
    flat = flat - flat.mean(axis=0, dtype=np.float32)
    if data.kind is DataKind.TABULAR and data.image_shape is None:
        spread = flat.std(axis=0)
        flat /= np.where(spread > 0, spread, 1.0).astype(np.float32)
    return flat


def thumbnails(images: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    """Each image's :data:`THUMBNAIL` x :data:`THUMBNAIL` cell means (per colour channel), less
    their mean, as rows of length one (a blank image: zero, similar to nothing)."""
    import numpy as np

    n, height, width = images.shape[:3]
    out = np.empty((n, THUMBNAIL, THUMBNAIL, *images.shape[3:]), dtype=np.float32)
    rows = [int(np.ceil(i * height / THUMBNAIL)) for i in range(THUMBNAIL)]
    cols = [int(np.ceil(i * width / THUMBNAIL)) for i in range(THUMBNAIL)]
    row_sizes = np.diff([*rows, height]).reshape(1, -1, 1)
    col_sizes = np.diff([*cols, width]).reshape(1, 1, -1)
    for start in range(0, n, 1024):
        part = np.asarray(images[start : start + 1024], dtype=np.float32)
        sums = np.add.reduceat(np.add.reduceat(part, rows, axis=1), cols, axis=2)
        sizes = row_sizes * col_sizes
        out[start : start + 1024] = sums / (sizes if sums.ndim == 3 else sizes[..., None])
    flat = out.reshape(n, -1)
    flat -= flat.mean(axis=1, keepdims=True)
    return knn.unit_rows(flat)


@dataclass(frozen=True, eq=False)
class Previous:
    """An earlier search of the same dataset under the same vectors, and its items' contents:
    what an incremental search keeps."""

    found: Findings
    content: npt.NDArray[np.str_]
    #: Its cache entry's key, to remove once a newer one is saved.
    key: str = ""


def find(
    vectors: npt.NDArray[Any],
    content: npt.NDArray[np.str_],
    labels: npt.NDArray[np.int64],
    *,
    threshold: float,
    images: npt.NDArray[Any] | None = None,
    texts: npt.NDArray[Any] | None = None,
    seed: int = 0,
    previous: Previous | None = None,
) -> Findings:
    """Exact groups from ``content`` (one hash per item), near pairs at ``threshold`` from
    ``vectors`` (one row per item; with ``images``, pixels of the same items, only pairs whose
    thumbnails match), outlier distances from ``vectors`` and the given ``labels``, and with
    ``texts`` each text's language.

    With a ``previous`` search whose vectors of a content are these (embeddings), only the
    items of new content are searched against all: the near pairs among the others, and their
    languages, are kept (a relabelled item keeps its content)."""
    import numpy as np

    _, first, inverse, counts = np.unique(
        content, return_index=True, return_inverse=True, return_counts=True
    )
    repeated = counts[inverse] > 1
    exact_group = np.where(repeated, first[inverse], -1).astype(np.int64)
    kept_pairs, kept_similarity, queries, known = _kept(previous, content)
    units = knn.unit_rows(vectors)  # once: a copy of every vector (1.4 GiB at a million)
    graph = knn.nearest(units, queries=queries, seed=seed)
    rows = np.repeat(graph.queries, graph.neighbours.shape[1])
    cols = graph.neighbours.ravel()
    sims = graph.similarity.ravel()
    keep = (cols >= 0) & (sims >= threshold)
    rows, cols, sims = rows[keep], cols[keep], sims[keep]
    keep = content[rows] != content[cols]  # identical content is an exact duplicate
    pairs = np.sort(np.stack([rows[keep], cols[keep]], axis=1), axis=1).reshape(-1, 2)
    pairs, at = np.unique(pairs, axis=0, return_index=True)
    similarity = sims[keep][at].astype(np.float32)
    if images is not None and len(pairs):
        involved = np.unique(pairs)
        small = np.zeros((len(content), THUMBNAIL * THUMBNAIL * _channels(images)), np.float32)
        mirrored = small.copy()
        small[involved] = thumbnails(images[involved])
        mirrored[involved] = thumbnails(images[involved][:, :, ::-1])
        a, b = small[pairs[:, 0]], pairs[:, 1]
        alike = np.maximum((a * small[b]).sum(axis=1), (a * mirrored[b]).sum(axis=1))
        matched = alike >= THUMBNAIL_SIMILARITY
        pairs, similarity = pairs[matched], similarity[matched]
    if len(kept_pairs):
        pairs = np.concatenate([pairs, kept_pairs])
        similarity = np.concatenate([similarity, kept_similarity])
        pairs, at = np.unique(pairs, axis=0, return_index=True)
        similarity = similarity[at]
    # most similar first, to 4 decimals (a search of other blocks, or kept from an earlier
    # one, differs in the last bits), then by item
    order = np.lexsort((pairs[:, 1], pairs[:, 0], -np.round(similarity, 4)))
    distance = outlier_distances(units, labels, seed=seed)
    q1, q3 = np.percentile(distance, [25, 75])
    cutoff = np.array(q3 + OUTLIER_FENCE * (q3 - q1), dtype=np.float32)
    return Findings(
        exact_group=exact_group,
        near_pairs=pairs[order].astype(np.int64).reshape(-1, 2),
        near_similarity=similarity[order],
        outlier_distance=distance,
        outlier_cutoff=cutoff,
        **_languages(texts, len(content), previous, known),
    )


def _channels(images: npt.NDArray[Any]) -> int:
    return int(images.shape[3]) if images.ndim == 4 else 1


def _kept(
    previous: Previous | None, content: npt.NDArray[np.str_]
) -> tuple[
    npt.NDArray[np.int64],
    npt.NDArray[np.float32],
    npt.NDArray[np.int64] | None,
    npt.NDArray[np.int64],
]:
    """From an earlier search: its near pairs among items whose content is still here (by
    their first item of that content), the items of new content to search (None: all), and
    each item's row in the earlier search (``-1``: new)."""
    import numpy as np

    n = len(content)
    if previous is None:
        empty = np.empty((0, 2), dtype=np.int64)
        return empty, np.empty(0, np.float32), None, np.full(n, -1, dtype=np.int64)
    earlier = {str(c): i for i, c in reversed(list(enumerate(previous.content.tolist())))}
    known = np.array([earlier.get(str(c), -1) for c in content.tolist()], dtype=np.int64)
    here = {str(c): i for i, c in reversed(list(enumerate(content.tolist())))}
    old = previous.found.near_pairs
    old_content = previous.content
    mapped = [
        (here.get(str(old_content[a]), -1), here.get(str(old_content[b]), -1))
        for a, b in old.tolist()
    ]
    pairs = np.array(mapped, dtype=np.int64).reshape(-1, 2)
    keep = (pairs >= 0).all(axis=1)
    pairs = np.sort(pairs[keep], axis=1)
    return pairs, previous.found.near_similarity[keep], np.flatnonzero(known < 0), known


def _languages(
    texts: npt.NDArray[Any] | None,
    items: int,
    previous: Previous | None,
    known: npt.NDArray[np.int64],
) -> dict[str, Any]:
    """Each text's language: from the earlier search where its content was there, else now."""
    import numpy as np

    if texts is None or previous is None:
        return languages(texts, items)
    fresh = np.flatnonzero(known < 0)
    found = languages(texts[fresh], len(fresh))
    codes = previous.found.language[np.maximum(known, 0)].astype("<U8")
    probs = previous.found.language_prob[np.maximum(known, 0)].astype(np.float32)
    codes[fresh], probs[fresh] = found["language"], found["language_prob"]
    return {"language": codes, "language_prob": probs}


def languages(texts: npt.NDArray[Any] | None, items: int) -> dict[str, Any]:
    """Each text's language and its probability, by py3langid (extra ``languages``): empty
    where there are no texts, it is not installed, or a text is empty."""
    import numpy as np

    codes = np.full(items, "", dtype="<U8")
    probs = np.zeros(items, dtype=np.float32)
    if texts is None:
        return {"language": codes, "language_prob": probs}
    try:
        from py3langid.langid import MODEL_FILE, LanguageIdentifier
    except ImportError:
        return {"language": codes, "language_prob": probs}
    identify = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    for i, text in enumerate(texts.tolist()):
        if str(text).strip():
            codes[i], probs[i] = identify.classify(str(text))
    return {"language": codes, "language_prob": probs}


def outlier_distances(
    units: npt.NDArray[np.float32], labels: npt.NDArray[np.int64], *, seed: int = 0
) -> npt.NDArray[np.float32]:
    """Each item's Mahalanobis distance to the nearest class mean, on the unit vectors'
    :data:`OUTLIER_COMPONENTS` principal components under the classes' shared covariance."""
    import numpy as np
    from sklearn.covariance import LedoitWolf

    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(units), min(len(units), COMPONENT_SAMPLE), replace=False))
    sample = units[pick].astype(np.float64)
    centre = sample.mean(axis=0)
    _, _, axes = np.linalg.svd(sample - centre, full_matrices=False)
    axes = axes[: max(1, min(OUTLIER_COMPONENTS, len(units) // ITEMS_PER_COMPONENT))].T
    points = np.concatenate(
        [(units[i : i + 65536] - centre) @ axes for i in range(0, len(units), 65536)]
    )
    classes = np.unique(labels)
    means = np.stack([points[labels == c].mean(axis=0) for c in classes])
    residuals = points[pick] - means[np.searchsorted(classes, labels[pick])]
    precision = LedoitWolf().fit(residuals).precision_
    squared = np.empty((len(points), len(means)))
    for start in range(0, len(points), 65536):
        block = points[start : start + 65536]
        for k, mean in enumerate(means):
            offset = block - mean
            squared[start : start + len(block), k] = ((offset @ precision) * offset).sum(axis=1)
    distance: npt.NDArray[np.float32] = np.sqrt(np.maximum(squared.min(axis=1), 0)).astype(
        np.float32
    )
    return distance


def leaks(found: Findings, splits: npt.NDArray[np.str_]) -> list[tuple[int, int, float | None]]:
    """Pairs ``(i, j, similarity)`` of items in different splits that are exact (similarity
    None) or near duplicates, exact first."""
    pairs: list[tuple[int, int, float | None]] = []
    for group in found.exact_groups():
        for a, i in enumerate(group.tolist()):
            pairs += [(i, j, None) for j in group[a + 1 :].tolist() if splits[i] != splits[j]]
    for (i, j), s in zip(found.near_pairs.tolist(), found.near_similarity.tolist(), strict=True):
        if splits[i] != splits[j]:
            pairs.append((i, j, float(s)))
    return pairs
