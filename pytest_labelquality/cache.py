"""A content-addressed, disposable cache of arrays: atomic writes, corrupt entries recomputed."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Arrays = Mapping[str, npt.NDArray[Any]]


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
    """Entries of named arrays under ``root``, one ``.npz`` file per key."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str) -> Path:
        """Where the entry for ``key`` lives."""
        return self.root / key[:2] / f"{key}.npz"

    def load(self, key: str) -> dict[str, npt.NDArray[Any]] | None:
        """The entry's arrays, or None if absent or unreadable (a corrupt entry is removed)."""
        import numpy as np

        path = self.path(key)
        try:
            with path.open("rb") as handle, np.load(handle, allow_pickle=False) as archive:
                return {name: archive[name] for name in archive.files}
        except FileNotFoundError:
            return None
        except Exception:  # a truncated or corrupt entry is recomputed, never trusted
            path.unlink(missing_ok=True)
            return None

    def save(self, key: str, arrays: Arrays) -> None:
        """Write an entry atomically: a temporary file in the same folder, then ``os.replace``."""
        import numpy as np

        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".npz")
        try:
            with os.fdopen(fd, "wb") as handle:
                typing.cast(Any, np.savez)(handle, **arrays)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def as_array(value: Any) -> np.ndarray[Any, Any]:
    """A JSON document stored as a 0-d string array, so metadata sits in the same entry."""
    import numpy as np

    return np.array(json.dumps(value, sort_keys=True))


def from_array(array: npt.NDArray[Any]) -> Any:
    """The inverse of :func:`as_array`."""
    return json.loads(str(array))
