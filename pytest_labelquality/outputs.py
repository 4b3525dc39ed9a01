"""The run's result files, one :class:`Output` each in :data:`OUTPUTS`: the JSON, the HTML report,
the Markdown summary and GitHub's job summary, with the rankings beside the JSON. The plugin's
options, their ini twins, the stale-file cleanup and the writing all read the registry. Each
file is written atomically from one :class:`RunResult`; a failure to write one is one
:class:`OutputError` naming it. Standard library only at import: the plugin reads the registry
at start-up."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_labelquality.errors import OutputError, os_error_message
from pytest_labelquality.files import write_bytes_atomic, write_text_atomic

if TYPE_CHECKING:
    from pytest_labelquality.result import DatasetResult, RunResult


@dataclass(frozen=True)
class Context:
    """What writers need besides the run: every output's path (the report links the JSON),
    the suspects per page of the report, and the repository the paths are relative to."""

    paths: Mapping[str, Path]
    max_suspects: int
    repository: Path


Writer = Callable[["RunResult", Path, Context], None]


@dataclass(frozen=True)
class Output:
    """One result file: ``name`` is its option (``--label-quality-<name>``) and ini key
    (``label_quality_<name>``), unless ``env`` names the variable that gives its path instead;
    ``default`` is its path relative to the rootdir (None: written only when asked); ``stale``
    says whether an earlier run's copy is removed at the start; ``write`` writes it."""

    name: str
    what: str
    write: Writer
    default: str | None = None
    hint: str = ""
    env: str | None = None
    stale: bool = True

    @property
    def option(self) -> str | None:
        """The command-line option, None for a file named by the environment."""
        return None if self.env else f"--label-quality-{self.name}"

    @property
    def ini(self) -> str:
        """The ini key (and the option's dest)."""
        return f"label_quality_{self.name}"

    @property
    def label(self) -> str:
        """How messages name where the path came from."""
        return self.option or f"${self.env}"

    def help(self) -> str:
        """The option's help text, with its default and its ini twin."""
        hint = f", {self.hint}" if self.hint else ""
        return f"{self.what}{hint} (default: {self.default or 'none'}; ini {self.ini})."


def _write_json(run: RunResult, path: Path, context: Context) -> None:
    write_json(path, run.to_json())


def _write_html(run: RunResult, path: Path, context: Context) -> None:
    from pytest_labelquality.report import render_html

    html = render_html(
        run,
        max_suspects=context.max_suspects,
        git_commit=git_commit(context.repository),
        results_path=context.paths["json"],
        root=context.repository,
    )
    write_text_atomic(path, html)


def _markdown(run: RunResult) -> str:
    from pytest_labelquality.report import render_markdown
    from pytest_labelquality.results import report_link

    return render_markdown(run, report_link=report_link(os.environ))


def _write_markdown(run: RunResult, path: Path, context: Context) -> None:
    write_text_atomic(path, _markdown(run))


def _append_markdown(run: RunResult, path: Path, context: Context) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.write(_markdown(run))


#: Every result file, in the order they are written.
OUTPUTS: tuple[Output, ...] = (
    Output("json", "results file", _write_json, default="label-quality-report/label-quality.json"),
    Output("html", "HTML report", _write_html, default="label-quality-report/index.html"),
    Output(
        "markdown",
        "Markdown summary file",
        _write_markdown,
        hint="e.g. for a pull-request comment; $GITHUB_STEP_SUMMARY gets the summary when set",
    ),
    # GitHub's job summary is the runner's file, appended to: never removed
    Output(
        "summary", "GitHub's job summary", _append_markdown, env="GITHUB_STEP_SUMMARY", stale=False
    ),
)

OUTPUT_HINT = (
    f"choose another path ({', '.join(o.label for o in OUTPUTS)}) or make this one writable"
)


def output(name: str) -> Output:
    """The output of this name."""
    (found,) = (o for o in OUTPUTS if o.name == name)
    return found


def remove_stale(paths: Mapping[str, Path]) -> None:
    """Remove the result files of an earlier run (those of outputs marked ``stale``), so that
    none outlives a run that fails before writing its own. Folders and unremovable files are
    left for the write to report."""
    for name, path in paths.items():
        if output(name).stale and path.is_file():
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
    paths: Mapping[str, Path],
    *,
    max_suspects: int,
    repository: Path,
    errors: Iterable[dict[str, str]] = (),
) -> None:
    """Write the rankings beside the JSON, then every output ``paths`` names (by output name;
    the JSON's is required), in registry order, all from one :class:`RunResult`."""
    from pytest_labelquality.result import CheckError, RunResult

    run = RunResult(
        tuple(write_rankings(results, paths["json"].parent)),
        tuple(CheckError(e["test"], e["error"]) for e in errors),
    )
    context = Context(paths, max_suspects, repository)
    for each in OUTPUTS:
        if each.name in paths:
            each.write(run, paths[each.name], context)
