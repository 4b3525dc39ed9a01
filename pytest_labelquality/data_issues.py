"""Defects beside wrong labels, found from each item's vector and content hash: exact
duplicates (and those whose labels conflict), near duplicates, leaks between splits, outliers.

- **Exact duplicates** share a content hash (a file's bytes, a text, a row's values).
- **Near duplicates** are pairs of other items whose cosine similarity is at least the
  threshold (:data:`NEAR_SIMILARITY` by what the vectors are, calibrated in
  ``benchmarks/data_issues.py``): a photo re-encoded, resized or mirrored, a text re-spaced.
- **Redundant items**: in each cluster of items joined by exact or near pairs, all but one; their
  share is what a gate on near duplicates reads.
- **Leaks**: an exact or near pair whose items sit in different splits.
- **Outliers**: items whose mean cosine distance to their :data:`knn.K` nearest items lies above
  the upper fence ``Q3 + OUTLIER_FENCE * IQR`` of all items' distances (the rule, and the
  factor 1.7, of cleanlab Datalab's outlier check on features).

Everything here is NumPy on arrays; the runner caches :class:`Findings` beside the detection.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pytest_labelquality import knn
from pytest_labelquality.dataset import DataKind

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from pytest_labelquality.dataset import Dataset

#: Default near-duplicate similarity by what the vectors are. Encoder embeddings: on 1,000
#: CIFAR photos the nearest other photo's similarity has its 99.9th percentile at 0.88, a
#: mirrored or 10%-resized copy's 1st at 0.86-0.88; raw features (pixels, table rows) of
#: distinct items are rarely this close.
NEAR_SIMILARITY = {"embeddings": 0.9, "features": 0.98}
#: Upper fence of the outlier rule, in interquartile ranges above the third quartile.
OUTLIER_FENCE = 1.7
#: The cache entry's arrays: dtype kinds and shapes (``n``: the items).
EXPECT: dict[str, tuple[str, tuple[int | str | None, ...]]] = {
    "exact_group": ("i", ("n",)),
    "near_pairs": ("i", (None, 2)),
    "near_similarity": ("f", (None,)),
    "outlier_distance": ("f", ("n",)),
    "outlier_cutoff": ("f", ()),
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
    item's mean cosine distance to its nearest items; ``outlier_cutoff``: the fence above
    which an item is an outlier (one value)."""

    exact_group: npt.NDArray[np.int64]
    near_pairs: npt.NDArray[np.int64]
    near_similarity: npt.NDArray[np.float32]
    outlier_distance: npt.NDArray[np.float32]
    outlier_cutoff: npt.NDArray[np.float32]

    @property
    def outliers(self) -> npt.NDArray[np.int64]:
        """Indices of the outliers, farthest first."""
        import numpy as np

        out = np.flatnonzero(self.outlier_distance > float(self.outlier_cutoff))
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


def find(
    vectors: npt.NDArray[Any],
    content: npt.NDArray[np.str_],
    *,
    threshold: float,
    seed: int = 0,
) -> Findings:
    """Exact groups from ``content`` (one hash per item), near pairs at ``threshold`` and
    outlier distances from ``vectors`` (one row per item)."""
    import numpy as np

    _, first, inverse, counts = np.unique(
        content, return_index=True, return_inverse=True, return_counts=True
    )
    repeated = counts[inverse] > 1
    exact_group = np.where(repeated, first[inverse], -1).astype(np.int64)
    graph = knn.nearest(knn.unit_rows(vectors), seed=seed)
    rows = np.repeat(graph.queries, graph.neighbours.shape[1])
    cols = graph.neighbours.ravel()
    sims = graph.similarity.ravel()
    keep = (cols >= 0) & (sims >= threshold)
    rows, cols, sims = rows[keep], cols[keep], sims[keep]
    keep = content[rows] != content[cols]  # identical content is an exact duplicate
    pairs = np.sort(np.stack([rows[keep], cols[keep]], axis=1), axis=1)
    pairs, at = np.unique(pairs.reshape(-1, 2), axis=0, return_index=True)
    similarity = sims[keep][at].astype(np.float32)
    order = np.lexsort((pairs[:, 1], pairs[:, 0], -similarity))
    distance = np.nanmean(1.0 - graph.similarity, axis=1).astype(np.float32)
    distance = np.nan_to_num(distance, nan=0.0)
    q1, q3 = np.percentile(distance, [25, 75])
    cutoff = np.array(q3 + OUTLIER_FENCE * (q3 - q1), dtype=np.float32)
    return Findings(
        exact_group=exact_group,
        near_pairs=pairs[order].astype(np.int64).reshape(-1, 2),
        near_similarity=similarity[order],
        outlier_distance=distance,
        outlier_cutoff=cutoff,
    )


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
