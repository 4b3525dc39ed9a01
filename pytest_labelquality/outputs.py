"""The run's result files: the JSON (from :mod:`results`), the rankings, the HTML report and the
Markdown summary (rendered by :mod:`report`), each written atomically; stale ones removed at the
start, and a failure to write one told as one :class:`OutputError` naming the file."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pytest_labelquality.errors import OutputError, os_error_message
from pytest_labelquality.results import report_link, results_document

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


def git_commit(path: Path) -> str | None:
    """The ``HEAD`` commit of the repository holding ``path``; None outside one or without git."""
    folder = path if path.is_dir() else path.parent
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = done.stdout.strip()
    if done.returncode != 0 or not re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", commit):
        return None
    return commit


def write_json(path: Path, document: dict[str, Any]) -> None:
    """Write the results file atomically, so a reader never sees half a file."""
    write_text_atomic(path, json.dumps(document, indent=1) + "\n")


def ranking_path(folder: Path, name: str, taken: set[Path]) -> Path:
    """Where a dataset's ranking goes: ``label-quality-ranking.<name>.csv.gz``, numbered when
    two spec files use the same dataset name."""
    path = folder / f"label-quality-ranking.{name}.csv.gz"
    number = 2
    while path in taken:
        path = folder / f"label-quality-ranking.{name}.{number}.csv.gz"
        number += 1
    return path


def write_rankings(results: Iterable[dict[str, Any]], folder: Path) -> None:
    """Move each result's whole ranking into a gzipped CSV beside the JSON (every item: rank,
    index, id, given and suggested label, p(suggested), score, flagged), and record its file
    name in the result as ``ranking_file``."""
    import csv
    import gzip
    import io

    taken: set[Path] = set()
    for result in sorted(results, key=lambda r: (r["spec"]["file"], r["spec"]["line"])):
        columns = result.pop("ranking", None)
        if columns is None:
            continue
        path = ranking_path(folder, result["name"], taken)
        taken.add(path)
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(zip(*columns.values(), strict=True))
        write_bytes_atomic(path, gzip.compress(text.getvalue().encode(), mtime=0))
        result["ranking_file"] = path.name


def write_outputs(
    results: list[dict[str, Any]],
    *,
    json_path: Path,
    html_path: Path,
    markdown_path: Path | None,
    step_summary: str | None,
    max_suspects: int,
    repository: Path,
    errors: Iterable[dict[str, str]] = (),
) -> None:
    """Write the JSON, the HTML report and the Markdown summary (to a file, and appended to
    GitHub's ``$GITHUB_STEP_SUMMARY`` when set)."""
    from pytest_labelquality.report import render_html, render_markdown

    write_rankings(results, json_path.parent)
    document = results_document(results, errors)
    write_json(json_path, document)
    html = render_html(
        document,
        max_suspects=max_suspects,
        git_commit=git_commit(repository),
        results_path=json_path,
        root=repository,
    )
    write_text_atomic(html_path, html)
    if markdown_path is None and not step_summary:
        return
    markdown = render_markdown(document, report_link=report_link(os.environ))
    if markdown_path is not None:
        write_text_atomic(markdown_path, markdown)
    if step_summary:
        with Path(step_summary).open("a", encoding="utf-8") as handle:
            handle.write(markdown)
