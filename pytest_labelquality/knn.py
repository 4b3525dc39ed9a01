"""Each item's nearest other items by cosine similarity: what duplicates, leaks and outliers
are found from.

Up to :data:`EXACT_ITEMS` items the search is exact: a block of queries against every item at
a time (:data:`BLOCK` similarities held at once). Above, the items are first split into cells
by spherical k-means on a sample (a coarse partition, as an IVF index does), and each query is
compared exactly with the members of its :data:`PROBES` nearest cells: about
``n * PROBES * n / cells`` similarities instead of ``n²``, so a million items take minutes on
two cores. Near copies sit a small angle apart and share a probed cell; a partition can be
kept and reused, so a change's items are searched against the rest without rebuilding it.
NumPy only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

#: Neighbours found per item.
K = 10
#: Above this many items the search goes through a partition.
EXACT_ITEMS = 30_000
#: Similarities held at once: 64 MiB of float32.
BLOCK = 1 << 24
#: Cells each query is compared with.
PROBES = 6
#: Sample points per cell that k-means fits the partition on, and its iterations.
SAMPLE_PER_CELL = 32
ITERATIONS = 8


@dataclass(frozen=True, eq=False)
class Graph:
    """For each of ``queries`` (ascending item indices), its nearest other items, nearest
    first (ties to the lower index): indices, ``-1`` where there are fewer, and cosine
    similarities (NaN where ``-1``)."""

    queries: npt.NDArray[np.int64]
    neighbours: npt.NDArray[np.int64]
    similarity: npt.NDArray[np.float32]


@dataclass(frozen=True, eq=False)
class Partition:
    """Unit ``centroids`` of the cells and the cell of each item."""

    centroids: npt.NDArray[np.float32]
    cells: npt.NDArray[np.int64]


def unit_rows(vectors: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    """``vectors`` as float32 rows of length one (a zero row stays zero: similar to nothing)."""
    import numpy as np

    units = np.asarray(vectors, dtype=np.float32).reshape(len(vectors), -1).copy()
    norms = np.linalg.norm(units, axis=1)
    norms[norms == 0] = 1.0
    units /= norms[:, None]
    return units


def nearest(
    units: npt.NDArray[np.float32],
    *,
    k: int = K,
    queries: npt.NDArray[np.int64] | None = None,
    partition: Partition | None = None,
    seed: int = 0,
) -> Graph:
    """The ``k`` nearest other items of each of ``queries`` (default: every item) among all
    of ``units`` (rows of length one, see :func:`unit_rows`). Exact up to
    :data:`EXACT_ITEMS` items unless a ``partition`` is given; above, through one (built here
    with ``seed`` when none is given)."""
    import numpy as np

    n = len(units)
    asked = np.arange(n, dtype=np.int64) if queries is None else np.unique(queries)
    if partition is None and n <= EXACT_ITEMS:
        return _exact(units, asked, k)
    return _through(units, asked, k, partition or build_partition(units, seed=seed))


def _exact(units: npt.NDArray[np.float32], asked: npt.NDArray[np.int64], k: int) -> Graph:
    import numpy as np

    n = len(units)
    found = _empty(len(asked), k)
    step = max(1, BLOCK // max(n, 1))
    everyone = np.arange(n, dtype=np.int64)
    for start in range(0, len(asked), step):
        rows = asked[start : start + step]
        sims = units[rows] @ units.T
        sims[np.arange(len(rows)), rows] = -np.inf
        _merge(found, slice(start, start + len(rows)), sims, everyone, k)
    return _graph(asked, found)


def build_partition(units: npt.NDArray[np.float32], *, seed: int = 0) -> Partition:
    """Cells of about ``sqrt(n)`` items each, by spherical k-means on a sample."""
    import numpy as np

    n = len(units)
    cells = max(1, int(np.sqrt(n)))
    rng = np.random.default_rng(seed)
    sample = units[np.sort(rng.choice(n, min(n, cells * SAMPLE_PER_CELL), replace=False))]
    centroids = sample[rng.choice(len(sample), cells, replace=False)].copy()
    for _ in range(ITERATIONS):
        owner = np.argmax(sample @ centroids.T, axis=1)
        sums = np.zeros_like(centroids)
        np.add.at(sums, owner, sample)
        counts = np.bincount(owner, minlength=cells)
        empty = np.flatnonzero(counts == 0)
        sums[empty] = sample[rng.choice(len(sample), len(empty), replace=False)]
        centroids = unit_rows(sums)
    return Partition(centroids, _assign(units, centroids, 1)[:, 0])


def _assign(
    units: npt.NDArray[np.float32], centroids: npt.NDArray[np.float32], probes: int
) -> npt.NDArray[np.int64]:
    """Each row's ``probes`` nearest cells."""
    import numpy as np

    probes = min(probes, len(centroids))
    out = np.empty((len(units), probes), dtype=np.int64)
    step = max(1, BLOCK // len(centroids))
    for start in range(0, len(units), step):
        sims = units[start : start + step] @ centroids.T
        if probes < len(centroids):
            out[start : start + step] = np.argpartition(-sims, probes - 1, axis=1)[:, :probes]
        else:
            out[start : start + step] = np.argsort(-sims, axis=1)
    return out


def _through(
    units: npt.NDArray[np.float32],
    asked: npt.NDArray[np.int64],
    k: int,
    partition: Partition,
) -> Graph:
    import numpy as np

    found = _empty(len(asked), k)
    order = np.argsort(partition.cells, kind="stable")
    bounds = np.searchsorted(partition.cells[order], np.arange(len(partition.centroids) + 1))
    probed = _assign(units[asked], partition.centroids, PROBES)
    query_rows = np.repeat(np.arange(len(asked)), probed.shape[1])
    by_cell = np.argsort(probed.ravel(), kind="stable")
    query_rows, probed_cells = query_rows[by_cell], probed.ravel()[by_cell]
    starts = np.searchsorted(probed_cells, np.arange(len(partition.centroids) + 1))
    for cell in range(len(partition.centroids)):
        members = order[bounds[cell] : bounds[cell + 1]]
        rows_of_cell = query_rows[starts[cell] : starts[cell + 1]]
        if not len(members) or not len(rows_of_cell):
            continue
        step = max(1, BLOCK // len(members))
        for start in range(0, len(rows_of_cell), step):
            rows = rows_of_cell[start : start + step]
            items = asked[rows]
            sims = units[items] @ units[members].T
            sims[items[:, None] == members[None, :]] = -np.inf
            _merge(found, rows, sims, members, k)
    return _graph(asked, found)


def _empty(m: int, k: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    import numpy as np

    return np.full((m, k), -1, dtype=np.int64), np.full((m, k), -np.inf, dtype=np.float32)


def _merge(
    found: tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]],
    rows: Any,
    sims: npt.NDArray[np.float32],
    candidates: npt.NDArray[np.int64],
    k: int,
) -> None:
    """Keep, for each of ``rows``, the ``k`` best of what it had and ``sims`` against
    ``candidates``: nearest first, ties to the lower index."""
    import numpy as np

    take = min(k, sims.shape[1])
    if take < sims.shape[1]:
        top = np.argpartition(-sims, take - 1, axis=1)[:, :take]
    else:
        top = np.broadcast_to(np.arange(sims.shape[1]), sims.shape)
    indices = np.concatenate([found[0][rows], candidates[top]], axis=1)
    similarity = np.concatenate([found[1][rows], np.take_along_axis(sims, top, axis=1)], axis=1)
    tie = np.where(indices < 0, np.iinfo(np.int64).max, indices)
    best = np.lexsort((tie, -similarity), axis=1)[:, :k]
    found[0][rows] = np.take_along_axis(indices, best, axis=1)
    found[1][rows] = np.take_along_axis(similarity, best, axis=1)


def _graph(
    asked: npt.NDArray[np.int64],
    found: tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]],
) -> Graph:
    import numpy as np

    indices, similarity = found
    missing = ~np.isfinite(similarity)
    indices[missing] = -1
    similarity[missing] = np.nan
    return Graph(asked, indices, similarity)
