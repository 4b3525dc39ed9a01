"""The registry of source formats beyond the built-in arrays: one module per format.

Each module of this package defines its spec type (a frozen dataclass with a ``FORMAT``) and a
module-level ``SourceFormat`` (or several); the spec validator, the JSON Schema and the loader
find it here, so adding a format touches nothing else. Modules import only the standard library
at import time: Pillow, pyarrow, numpy and scikit-learn are imported by the functions that need
them.
"""

from __future__ import annotations

import errno
import functools
import importlib
import pkgutil
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
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
    """``(key, problem)`` when the file (or folder) a spec names cannot be used."""
    problem = path_problem(spec.resolve(relative), folder=folder)
    return (key, problem) if problem else None


#: The longest file name most filesystems take (ext4, APFS, NTFS: 255 bytes per name).
NAME_MAX = 255


def path_problem(path: Path, *, folder: bool = False) -> str | None:
    """Why the file (or folder) at ``path`` cannot be used, in words a spec's author can act
    on (absent, a symlink loop, a name too long for the filesystem), or None."""
    kind = "folder" if folder else "file"
    try:
        found = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return f"no {kind} {path}"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return (
                f"{path}: a symlink loop (a link that leads back to itself); point it at a {kind}"
            )
        if exc.errno == errno.ENAMETOOLONG:
            longest = max(path.parts, key=lambda part: len(part.encode()))
            if len(longest.encode()) <= NAME_MAX:  # each name fits; the whole path does not
                return f"the path is too long ({len(str(path))} characters); shorten it"
            shown = f"{longest[:12]}...{longest[-12:]}" if len(longest) > 30 else longest
            return (
                f"the path is too long for the filesystem: a name of {len(longest.encode())}"
                f" bytes ({shown!r}), the limit is {NAME_MAX} per name; shorten it"
            )
        return f"cannot use {path}: {exc.strerror or exc}"
    if folder and not stat.S_ISDIR(found.st_mode):
        return f"no folder {path} (it is a file)"
    if not folder and stat.S_ISDIR(found.st_mode):
        return f"no file {path} (it is a folder)"
    if not folder and not stat.S_ISREG(found.st_mode):  # reading a FIFO would wait forever
        return f"{path} is not a regular file (a FIFO, socket or device); name a file"
    return None
