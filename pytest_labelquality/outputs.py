"""The run's result files as a whole: stale ones removed at the start, and a failure to write
one told as one :class:`OutputError` naming the file."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from pathlib import Path

from pytest_labelquality.errors import OutputError, os_error_message

OUTPUT_HINT = (
    "choose another path (--label-quality-json, --label-quality-html, --label-quality-markdown,"
    " $GITHUB_STEP_SUMMARY) or make this one writable"
)


def remove_stale(paths: Iterable[Path | None]) -> None:
    """Remove the result files of an earlier run, so that none outlives a run that fails
    before writing its own. Folders and unremovable files are left for the write to report."""
    for path in paths:
        if path is not None and path.is_file():
            with contextlib.suppress(OSError):
                path.unlink()


@contextlib.contextmanager
def written(*paths: Path | str | None) -> Iterator[None]:
    """Turn a failure to write a result file into one :class:`OutputError` naming it (or all
    of ``paths`` when the error does not say which, as when the disk is full)."""
    try:
        yield
    except OSError as exc:
        every = ", ".join(str(p) for p in paths if p)
        raise OutputError(os_error_message(exc, "cannot write", OUTPUT_HINT, every)) from None
