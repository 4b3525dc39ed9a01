"""Embeddings of a dataset's items by a frozen encoder, cached per item content.

A dataset's embeddings are one cache entry keyed by the encoder's identity and the items'
content hashes (a warm run reads it and encodes nothing). A lineage entry per dataset and
encoder points at the last one, so a changed dataset encodes only the items whose content is
new: a moved or relabelled file keeps its vector. The superseded entry is removed once its
successor is saved. Entries share the cache's atomic writes, checksums and repair, locally or
at an fsspec URL; vectors are stored as float16.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from pytest_labelquality.cache import ArrayCache, as_array, from_array
from pytest_labelquality.cache_keys import embeddings_key, embeddings_lineage_key

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from pytest_labelquality.encoders.base import Encoder

#: Files are read and encoded this many at a time, so that images decoded at an encoder's
#: resolution never all sit in memory at once.
CHUNK = 512
Progress = Callable[[str], None]


class Items(Protocol):
    """What :func:`embed` encodes: an array, or files decoded on demand, indexed by rows."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: Any) -> Any: ...


@dataclass(frozen=True)
class Embedded:
    """A dataset's vectors and how they were obtained."""

    vectors: npt.NDArray[np.float32]
    encoded: int
    reused: int
    seconds: float


def embed(
    items: Items,
    content: npt.NDArray[np.str_],
    encoder: Encoder,
    *,
    cache: ArrayCache,
    dataset: str,
    progress: Progress,
    identity: dict[str, str] | None = None,
) -> Embedded:
    """Every item's vector: from the cache where its content was encoded before, else
    encoded now (only those items), then saved. ``identity`` defaults to the encoder's."""
    import numpy as np

    start = time.perf_counter()
    identity = identity or encoder.identity()
    key = embeddings_key(identity, content)
    n = len(content)
    entry = cache.load(key, {"vectors": ("f", (n, None))})
    if entry is not None:
        return Embedded(entry["vectors"].astype(np.float32), 0, n, time.perf_counter() - start)
    pointer = embeddings_lineage_key(identity, dataset)
    known: dict[str, int] = {}
    previous: dict[str, Any] | None = None
    last = cache.load(pointer, {"meta": ("U", ())})
    if last is not None:
        old_key = str(from_array(last["meta"]).get("key", ""))
        previous = cache.load(old_key, {"vectors": ("f", (None, None)), "content": ("U", (None,))})
        if previous is not None and len(previous["content"]) == len(previous["vectors"]):
            known = {str(c): i for i, c in enumerate(previous["content"])}
        else:
            previous = None
    reuse = np.array([known.get(str(c), -1) for c in content], dtype=np.int64)
    missing = np.flatnonzero(reuse < 0)
    fresh = None
    if len(missing):
        progress(f"  encoding {len(missing)} of {n} items (the others are cached)")
        if isinstance(items, np.ndarray):  # in memory already: one call, batched by the encoder
            fresh = encoder.encode(items[missing], progress=progress)
        else:
            parts = []
            for first in range(0, len(missing), CHUNK):  # not ``start``: the clock's
                parts.append(_encoded(encoder, items[missing[first : first + CHUNK]]))
                progress(f"  encoded {min(first + CHUNK, len(missing))} of {len(missing)}")
            fresh = np.concatenate(parts)
    source = fresh if fresh is not None else previous["vectors"]  # type: ignore[index]
    dim = int(source.shape[1])
    vectors = np.empty((n, dim), np.float16)
    if fresh is not None:
        vectors[missing] = fresh
    if previous is not None:
        kept = reuse >= 0
        vectors[kept] = previous["vectors"][reuse[kept]]
    cache.save(key, {"vectors": vectors, "content": np.asarray(content, dtype=np.str_)})
    cache.save(pointer, {"meta": as_array({"key": key})})
    if previous is not None and old_key != key:  # one entry per dataset, not one per change
        ArrayCache(cache.root).discard(old_key, "superseded")
    return Embedded(
        vectors.astype(np.float32), len(missing), n - len(missing), time.perf_counter() - start
    )


def _encoded(encoder: Encoder, rows: Any) -> npt.NDArray[np.float32]:
    """The vectors of an array of rows, or of a list of arrays (images of several sizes),
    encoded a size at a time."""
    import numpy as np

    if not isinstance(rows, list):
        return encoder.encode(rows)
    out: npt.NDArray[np.float32] | None = None
    for shape in {row.shape for row in rows}:
        at = [i for i, row in enumerate(rows) if row.shape == shape]
        vectors = encoder.encode(np.stack([rows[i] for i in at]))
        if out is None:
            out = np.empty((len(rows), vectors.shape[1]), np.float32)
        out[at] = vectors
    assert out is not None
    return out
