"""The registry of source formats beyond the built-in arrays: one module per format.

Each module of this package defines its spec type (a frozen dataclass with a ``FORMAT``) and a
module-level ``SourceFormat`` (or several); the spec validator, the JSON Schema and the loader
find it here, so adding a format touches nothing else. Modules import only the standard library
at import time: Pillow, pyarrow, numpy and scikit-learn are imported by the functions that need
them.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pytest_labelquality.errors import DataError, install_hint

if TYPE_CHECKING:
    from pytest_labelquality.cache import CacheRoot
    from pytest_labelquality.dataset import Dataset
    from pytest_labelquality.spec import DatasetSpec


@dataclass(frozen=True)
class SourceFormat:
    """A source format: its spec type, its loader and its collection-time check.

    ``load(spec, source, cache_dir)`` returns the :class:`Dataset`; ``check(spec, source)``
    returns ``(key, problem)`` for a spec that cannot work (a missing file), else None;
    ``extras`` are the plugin's extras it needs (Parquet files need ``parquet`` in any format).
    """

    spec_type: type[Any]
    load: Callable[[DatasetSpec, Any, CacheRoot | None], Dataset]
    check: Callable[[DatasetSpec, Any], tuple[str, str] | None]
    extras: tuple[str, ...] = ()


@functools.cache
def registered() -> dict[str, SourceFormat]:
    """Every format of this package, by its ``format`` name."""
    found: dict[str, SourceFormat] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        for entry in vars(module).values():
            if isinstance(entry, SourceFormat):
                found[entry.spec_type.FORMAT] = entry
    return found


def need(module: str, extra: str) -> Any:
    """Import an optional dependency, or fail with the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise DataError(
            f"this source needs {module.split('.')[0]}, which is not installed:"
            f" {install_hint(extra)}"
        ) from None


def check_path(
    spec: DatasetSpec, relative: str, key: str, *, folder: bool = False
) -> tuple[str, str] | None:
    """``(key, problem)`` when the file (or folder) a spec names is absent."""
    path = spec.resolve(relative)
    if folder and not path.is_dir():
        return key, f"no folder {path}"
    if not folder and not path.is_file():
        return key, f"no file {path}"
    return None
