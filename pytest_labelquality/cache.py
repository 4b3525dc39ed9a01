"""A content-addressed, disposable cache of arrays: atomic writes, checked reads; an entry that
is corrupt or does not fit the run is recomputed, never trusted."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_labelquality.errors import CacheError, os_error_message

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Arrays = Mapping[str, npt.NDArray[Any]]

#: An entry's expected arrays: name -> (dtype kinds such as "iu", shape of sizes or size names).
Expect = Mapping[str, tuple[str, tuple[int | str | None, ...]]]
DIGEST = "__digest__"
CACHE_HINT = (
    "point --label-quality-cache-dir (or $LABEL_QUALITY_CACHE_DIR) at a writable folder with"
    " free space"
)


def fingerprint(*parts: Any) -> str:
    """A hex digest of strings, bytes, JSON-able values and arrays (dtype and shape included)."""
    import numpy as np

    digest = hashlib.blake2b(digest_size=20)
    for part in parts:
        if isinstance(part, np.ndarray) and part.dtype == object:  # texts
            digest.update(f"objects:{part.shape}".encode())
            for value in part.reshape(-1):
                digest.update(str(value).encode() + b"\x00")
        elif isinstance(part, np.ndarray):
            array = np.ascontiguousarray(part)
            digest.update(f"ndarray:{array.dtype.str}:{array.shape}".encode())
            digest.update(array.reshape(-1).view(np.uint8).data)
        elif isinstance(part, bytes):
            digest.update(b"bytes:" + part)
        else:
            digest.update(b"json:" + json.dumps(part, sort_keys=True, default=str).encode())
        digest.update(b"\x00")
    return digest.hexdigest()


class ArrayCache:
    """Entries of named arrays under ``root``, one ``.npz`` file per key.

    Each entry carries a digest of its arrays. An entry that cannot be read, fails its digest
    or does not have the names, types and shapes the caller expects counts as missing: it is
    removed and ``on_repair`` hears why, so the caller recomputes it and can warn.
    """

    def __init__(self, root: Path, on_repair: Callable[[str], None] | None = None) -> None:
        self.root = root
        self.on_repair = on_repair

    def path(self, key: str) -> Path:
        """Where the entry for ``key`` lives."""
        return self.root / key[:2] / f"{key}.npz"

    def check_usable(self) -> None:
        """Raise :class:`CacheError` unless entries can be written under ``root``."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=self.root, prefix=".probe-"):
                pass
        except OSError as exc:
            message = os_error_message(exc, "cannot use the cache folder", CACHE_HINT, self.root)
            raise CacheError(message) from None

    def load(self, key: str, expect: Expect | None = None) -> dict[str, npt.NDArray[Any]] | None:
        """The entry's arrays, or None if absent or unusable (then removed and reported).

        ``expect`` maps array names to ``(dtype kinds, shape)``; a dimension is a number, a
        name that must be the same size wherever it appears, or None for any size."""
        import numpy as np

        path = self.path(key)
        if not path.exists() and not path.is_symlink():
            return None
        try:
            with path.open("rb") as handle, np.load(handle, allow_pickle=False) as archive:
                arrays = {name: archive[name] for name in archive.files}
        except Exception as exc:  # truncated, garbage, a folder: recomputed, never trusted
            self.discard(key, f"unreadable ({type(exc).__name__}: {exc})")
            return None
        digest = arrays.pop(DIGEST, None)
        if digest is None or str(digest) != _digest(arrays):
            self.discard(key, "failed its checksum")
            return None
        problem = mismatch(arrays, expect or {})
        if problem:
            self.discard(key, problem)
            return None
        return arrays

    def discard(self, key: str, why: str) -> None:
        """Remove an unusable entry (and the model saved beside it) and report why."""
        path = self.path(key)
        for stale in (path, *path.parent.glob(f"{key}.*")):
            with contextlib.suppress(OSError):
                if stale.is_dir() and not stale.is_symlink():
                    shutil.rmtree(stale)
                else:
                    stale.unlink(missing_ok=True)
        if self.on_repair is not None:
            self.on_repair(f"cache entry {path} was {why}; recomputed it")

    def save(self, key: str, arrays: Arrays) -> None:
        """Write an entry atomically: a temporary file in the same folder, then ``os.replace``.

        Raises :class:`CacheError` when the cache cannot take it (full disk, no permission)."""
        import numpy as np

        path = self.path(key)
        tmp = None
        try:
            if path.parent.is_file():  # something else squats on the shard's name: ours to clear
                path.parent.unlink()
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".npz")
            with os.fdopen(fd, "wb") as handle:
                entry = {**arrays, DIGEST: np.array(_digest(arrays))}
                typing.cast(Any, np.savez)(handle, **entry)
            os.replace(tmp, path)
        except OSError as exc:
            message = os_error_message(exc, "cannot write the cache entry", CACHE_HINT, path)
            raise CacheError(message) from None
        finally:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)


def _digest(arrays: Arrays) -> str:
    return fingerprint(*[part for name in sorted(arrays) for part in (name, arrays[name])])


def mismatch(arrays: Mapping[str, npt.NDArray[Any]], expect: Expect) -> str:
    """Why ``arrays`` do not match ``expect`` (see :meth:`ArrayCache.load`), or ``""``."""
    sizes: dict[str, int] = {}
    for name, (kinds, shape) in expect.items():
        if name not in arrays:
            return f"missing its array {name!r}"
        array = arrays[name]
        if array.dtype.kind not in kinds or array.ndim != len(shape):
            return f"holding {name!r} as {array.dtype}{list(array.shape)}"
        for want, got in zip(shape, array.shape, strict=True):
            if isinstance(want, str):
                want = sizes.setdefault(want, got)
            if want is not None and want != got:
                return f"holding {name!r} of shape {list(array.shape)}, not what this run needs"
    return ""


def as_array(value: Any) -> np.ndarray[Any, Any]:
    """A JSON document stored as a 0-d string array, so metadata sits in the same entry."""
    import numpy as np

    return np.array(json.dumps(value, sort_keys=True))


def from_array(array: npt.NDArray[Any]) -> Any:
    """The inverse of :func:`as_array`."""
    return json.loads(str(array))
