"""The run's result files: the JSON (from :mod:`results`), the rankings, the HTML report and the
Markdown summary (rendered by :mod:`report`), each written atomically; stale ones removed at the
start, and a failure to write one told as one :class:`OutputError` naming the file."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_labelquality.errors import OutputError, os_error_message
from pytest_labelquality.files import write_bytes_atomic, write_text_atomic
from pytest_labelquality.results import report_link

if TYPE_CHECKING:
    from pytest_labelquality.result import DatasetResult

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


def write_rankings(results: Iterable[DatasetResult], folder: Path) -> list[DatasetResult]:
    """Write each result's whole ranking to a gzipped CSV beside the JSON (every item: rank,
    index, id, given and suggested label, p(suggested), score, flagged); the results with the
    ranking replaced by its file's name (``ranking_file``)."""
    import csv
    import dataclasses
    import gzip
    import io

    taken: set[Path] = set()
    out = []
    for result in sorted(results, key=lambda r: (r.spec.file, r.spec.line)):
        columns = result.ranking
        if columns is None:
            out.append(result)
            continue
        path = ranking_path(folder, result.name, taken)
        taken.add(path)
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        names = [f.name for f in dataclasses.fields(columns)]
        writer.writerow(names)
        writer.writerows(zip(*(getattr(columns, n) for n in names), strict=True))
        write_bytes_atomic(path, gzip.compress(text.getvalue().encode(), mtime=0))
        out.append(dataclasses.replace(result, ranking=None, ranking_file=path.name))
    return out


def write_outputs(
    results: list[DatasetResult],
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
    GitHub's ``$GITHUB_STEP_SUMMARY`` when set), all from one :class:`RunResult`."""
    from pytest_labelquality.report import render_html, render_markdown
    from pytest_labelquality.result import CheckError, RunResult

    run = RunResult(
        tuple(write_rankings(results, json_path.parent)),
        tuple(CheckError(e["test"], e["error"]) for e in errors),
    )
    write_json(json_path, run.to_json())
    html = render_html(
        run,
        max_suspects=max_suspects,
        git_commit=git_commit(repository),
        results_path=json_path,
        root=repository,
    )
    write_text_atomic(html_path, html)
    if markdown_path is None and not step_summary:
        return
    markdown = render_markdown(run, report_link=report_link(os.environ))
    if markdown_path is not None:
        write_text_atomic(markdown_path, markdown)
    if step_summary:
        with Path(step_summary).open("a", encoding="utf-8") as handle:
            handle.write(markdown)
