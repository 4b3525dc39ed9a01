"""Read a PyTorch checkpoint's tensors without torch: both the zip format (torch >= 1.6) and
the legacy pickle stream. Only tensors, plain containers and numbers are accepted; any other
class named in the pickle is refused, so reading a checkpoint runs none of its code."""

from __future__ import annotations

import collections
import pickle
import struct
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

if TYPE_CHECKING:
    import numpy.typing as npt

_DTYPES = {
    "FloatStorage": "<f4",
    "DoubleStorage": "<f8",
    "HalfStorage": "<f2",
    "LongStorage": "<i8",
    "IntStorage": "<i4",
    "ShortStorage": "<i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "?",
}
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


class _Storage:
    def __init__(self, dtype: str, key: str) -> None:
        self.dtype, self.key = dtype, key
        self.array: npt.NDArray[Any] | None = None


class _Tensor:
    def __init__(self, storage: _Storage, offset: int, size: tuple[int, ...], stride: Any) -> None:
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), stride


def _rebuild_tensor(storage: _Storage, offset: int, size: Any, stride: Any, *_: Any) -> _Tensor:
    return _Tensor(storage, offset, size, stride)


class _Unpickler(pickle.Unpickler):
    def __init__(self, handle: BinaryIO) -> None:
        super().__init__(handle)
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor
        if module == "torch" and name in _DTYPES:
            return name
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        raise pickle.UnpicklingError(f"a checkpoint may hold tensors only, not {module}.{name}")

    def persistent_load(self, pid: Any) -> _Storage:
        kind, storage_type, key = pid[0], pid[1], str(pid[2])
        if kind != "storage" or storage_type not in _DTYPES:
            raise pickle.UnpicklingError(f"unsupported storage {pid[:2]!r}")
        return self.storages.setdefault(key, _Storage(_DTYPES[storage_type], key))


def read_state_dict(path: str | Path) -> dict[str, npt.NDArray[Any]]:
    """The checkpoint's ``name -> array`` mapping (a ``state_dict``, or the one found under a
    ``state_dict`` or ``model`` key)."""
    import numpy as np

    path = Path(path)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            pickled = next(n for n in archive.namelist() if n.endswith("/data.pkl"))
            root = pickled[: -len("data.pkl")]
            with archive.open(pickled) as handle:
                unpickler = _Unpickler(handle)  # type: ignore[arg-type]
                obj = unpickler.load()
            for storage in unpickler.storages.values():
                raw = archive.read(f"{root}data/{storage.key}")
                storage.array = np.frombuffer(raw, dtype=storage.dtype)
    else:
        with open(path, "rb") as handle:
            if pickle.load(handle) != _LEGACY_MAGIC:
                raise ValueError(f"{path} is not a PyTorch checkpoint")
            pickle.load(handle)  # protocol version
            pickle.load(handle)  # system info
            unpickler = _Unpickler(handle)
            obj = unpickler.load()
            for key in pickle.load(handle):
                storage = unpickler.storages[str(key)]
                (count,) = struct.unpack("<q", handle.read(8))
                width = np.dtype(storage.dtype).itemsize
                storage.array = np.frombuffer(handle.read(count * width), dtype=storage.dtype)
    for wrapper in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(wrapper), dict):
            obj = obj[wrapper]
    return {name: _array(value) for name, value in obj.items() if isinstance(value, _Tensor)}


def _array(tensor: _Tensor) -> npt.NDArray[Any]:
    import numpy as np

    data = tensor.storage.array
    assert data is not None
    width = data.itemsize
    strides = tuple(int(s) * width for s in tensor.stride)
    view = np.lib.stride_tricks.as_strided(
        data[tensor.offset :], shape=tensor.size, strides=strides, writeable=False
    )
    return np.ascontiguousarray(view)
