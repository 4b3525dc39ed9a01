"""Each shown suspect's nearest items in a frozen encoder's embedding space, for a reviewer to
compare it with: the most similar items of its suggested class, and of its given class, among
the items whose given label the model agrees with (cosine similarity, the item itself excluded).

Only the items the report shows are queries, and similarities are computed a block of queries
against one class at a time, so memory stays linear in the items (:data:`BLOCK` similarities at
once). NumPy only; the runner computes them where the vectors are in memory and the detection's
cache entry keeps them, so a warm run reads them and encodes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

#: Neighbours listed per suspect and class.
NEIGHBOURS = 4
#: Similarities held at once (a block of queries against one class's items): 16 MiB of float32.
BLOCK = 1 << 22
#: The cache entry's arrays, by field.
ARRAYS = {
    "items": "neighbour_items",
    "suggested": "neighbour_suggested",
    "suggested_similarity": "neighbour_suggested_similarity",
    "given": "neighbour_given",
    "given_similarity": "neighbour_given_similarity",
}


@dataclass(frozen=True, eq=False)
class Neighbours:
    """For each of ``items`` (ascending), its nearest agreeing items of its suggested class and
    of its given class, nearest first: indices, ``-1`` where a class has fewer, and their cosine
    similarities (NaN where ``-1``)."""

    items: npt.NDArray[np.int64]
    suggested: npt.NDArray[np.int64]
    suggested_similarity: npt.NDArray[np.float32]
    given: npt.NDArray[np.int64]
    given_similarity: npt.NDArray[np.float32]

    def covers(self, items: npt.NDArray[np.int64]) -> bool:
        """Whether every one of ``items`` has its neighbours here."""
        import numpy as np

        return bool(np.isin(items, self.items).all())

    def of(self, item: int) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
        """``item``'s neighbours of its suggested and of its given class, as (index,
        similarity), nearest first; both empty when it is not among ``items``."""
        import numpy as np

        row = int(np.searchsorted(self.items, item))
        if row >= len(self.items) or self.items[row] != item:
            return [], []

        def listed(
            indices: npt.NDArray[np.int64], similarity: npt.NDArray[np.float32]
        ) -> list[tuple[int, float]]:
            return [
                (int(i), float(s))
                for i, s in zip(indices[row], similarity[row], strict=True)
                if i >= 0
            ]

        return (
            listed(self.suggested, self.suggested_similarity),
            listed(self.given, self.given_similarity),
        )

    def to_arrays(self) -> dict[str, Any]:
        """Arrays for the detection's cache entry."""
        return {name: getattr(self, field) for field, name in ARRAYS.items()}

    @classmethod
    def from_arrays(cls, arrays: dict[str, Any]) -> Neighbours | None:
        """Rebuild from a cache entry; None where it holds none (a run without embeddings)."""
        if ARRAYS["items"] not in arrays:
            return None
        return cls(**{field: arrays[name] for field, name in ARRAYS.items()})

    def problem(self, items: int) -> str:
        """Why these arrays cannot be the neighbours of a dataset of ``items`` items, or ``""``."""
        import numpy as np

        queries = self.items
        if queries.ndim != 1 or queries.dtype.kind not in "iu":
            return "holding neighbours of another shape"
        pairs = (
            (self.suggested, self.suggested_similarity),
            (self.given, self.given_similarity),
        )
        for indices, similarity in pairs:
            if (
                indices.ndim != 2
                or indices.shape[0] != len(queries)
                or indices.shape != similarity.shape
                or indices.dtype.kind not in "iu"
                or similarity.dtype.kind != "f"
            ):
                return "holding neighbours of another shape"
            if indices.size and (indices.min() < -1 or indices.max() >= items):
                return "holding neighbours outside this dataset"
            if not np.isfinite(similarity[indices >= 0]).all():
                return "holding neighbours' similarities that are not finite"
        if len(queries) and (
            queries.min() < 0 or queries.max() >= items or (np.diff(queries) <= 0).any()
        ):
            return "holding neighbours of items outside this dataset"
        return ""


def nearest(
    vectors: npt.NDArray[np.floating[Any]],
    labels: npt.NDArray[np.int64],
    suggested: npt.NDArray[np.int64],
    items: npt.NDArray[np.int64],
    *,
    k: int = NEIGHBOURS,
    block: int = BLOCK,
) -> Neighbours:
    """The ``k`` nearest neighbours of each of ``items`` by cosine similarity of ``vectors``
    (one row per item), among the items other than itself whose given label (``labels``) and
    the model's ``suggested`` label agree: those of its suggested class and those of its given
    class. Ties go to the lower index. A zero vector is similar to nothing (similarity 0)."""
    import numpy as np

    queries = np.unique(np.asarray(items, dtype=np.int64))
    norms = np.linalg.norm(vectors, axis=1).astype(np.float32)
    norms[norms == 0] = 1.0
    agreed = suggested == labels
    found: dict[str, Any] = {}
    for role, target in (("suggested", suggested[queries]), ("given", labels[queries])):
        indices = np.full((len(queries), k), -1, dtype=np.int64)
        similarity = np.full((len(queries), k), np.nan, dtype=np.float32)
        for c in np.unique(target).tolist():
            rows = np.flatnonzero(target == c)
            pool = np.flatnonzero(agreed & (labels == c))  # ascending
            if not len(pool):
                continue
            base = np.asarray(vectors[pool], dtype=np.float32) / norms[pool, None]
            step = max(1, block // len(pool))
            for start in range(0, len(rows), step):
                part = rows[start : start + step]
                asked = queries[part]
                unit = np.asarray(vectors[asked], dtype=np.float32) / norms[asked, None]
                sims = unit @ base.T  # (queries of the block, items of the class)
                at = np.minimum(np.searchsorted(pool, asked), len(pool) - 1)
                itself = pool[at] == asked
                sims[np.flatnonzero(itself), at[itself]] = -np.inf
                take = min(k, len(pool))
                if take < len(pool):
                    top = np.argpartition(-sims, take - 1, axis=1)[:, :take]
                else:
                    top = np.broadcast_to(np.arange(len(pool)), sims.shape)
                best = np.take_along_axis(sims, top, axis=1)
                order = np.lexsort((pool[top], -best), axis=1)  # nearest first, then index
                top = np.take_along_axis(top, order, axis=1)
                best = np.take_along_axis(best, order, axis=1)
                keep = np.isfinite(best)  # the item itself, in a class of k items or fewer
                indices[part, :take] = np.where(keep, pool[top], -1)
                similarity[part, :take] = np.where(keep, best, np.nan)
        found[role], found[f"{role}_similarity"] = indices, similarity
    return Neighbours(items=queries, **found)
