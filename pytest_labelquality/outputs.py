"""The run's files as a whole: stale ones removed at the start, and every one written at the
end, with a failure to write told as one :class:`OutputError` naming the file."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

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


def write_all(
    results: list[dict[str, Any]],
    baselines: dict[Path, dict[str, dict[str, Any]]],
    *,
    errors: list[dict[str, str]],
    json_path: Path,
    html_path: Path,
    markdown_path: Path | None,
    step_summary: str | None,
    max_suspects: int,
    repository: Path,
) -> None:
    """Write the baselines (when asked), the JSON, the HTML and the Markdown summary."""
    from pytest_labelquality.report import git_commit
    from pytest_labelquality.results import write_outputs

    try:
        if baselines:
            from pytest_labelquality.baseline import write_baselines

            write_baselines(baselines, git_commit(repository))
        write_outputs(
            results,
            errors=errors,
            json_path=json_path,
            html_path=html_path,
            markdown_path=markdown_path,
            step_summary=step_summary,
            max_suspects=max_suspects,
            repository=repository,
        )
    except OSError as exc:
        raise OutputError(os_error_message(exc, "cannot write", OUTPUT_HINT)) from None
