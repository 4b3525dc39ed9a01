"""Files written whole or not at all: atomic writes through a temporary file, and a lock on a
folder for writers that read, change and replace a file in it. Standard library only."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from pytest_labelquality.errors import OutputError


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write through a temporary file in the same folder, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


#: How long a writer waits for another to finish changing a file in the same folder.
LOCK_TIMEOUT = 60.0


@contextlib.contextmanager
def folder_lock(folder: Path, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` while a file in it is read, changed and replaced,
    so that concurrent writers each see the others' changes. The lock is ``flock`` on the
    folder itself, which leaves nothing behind; where there is no ``flock`` (Windows) it is
    not taken. Waiting past ``timeout`` seconds is an :class:`OutputError`."""
    import time

    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise OutputError(
                        f"{folder}: another process has been changing a file here for over"
                        f" {timeout:g} s; let it finish, or end it"
                    ) from None
                time.sleep(0.02)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def write_text_atomic(path: Path, text: str) -> None:
    """Write UTF-8 text atomically (see :func:`write_bytes_atomic`)."""
    write_bytes_atomic(path, text.encode())


def relative_path(path: str | Path, root: Path | None) -> str:
    """``path`` as outputs show it: relative to ``root`` (pytest's rootdir, the repository)
    when inside it, so that a report from any machine reads the same in any checkout; a path
    already relative stays as it is; one outside ``root`` stays absolute. POSIX separators."""
    candidate = Path(path)
    if root is None or not candidate.is_absolute():
        return candidate.as_posix()
    for base in {root, root.resolve()}:
        with contextlib.suppress(ValueError):
            return candidate.relative_to(base).as_posix()
    with contextlib.suppress(ValueError, OSError):
        return candidate.resolve().relative_to(root.resolve()).as_posix()
    return candidate.as_posix()


def portable_text(text: str, root: Path | None) -> str:
    """``text`` with the absolute ``root`` taken out of every path in it (messages from the
    gate, the data's readers and third-party libraries name files by absolute path)."""
    if root is None:
        return text
    for base in sorted({str(root), str(root.resolve())}, key=len, reverse=True):
        text = text.replace(base.rstrip("/") + "/", "")
    return text
