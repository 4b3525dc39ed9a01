"""pytest glue: options, spec collection, one test item per dataset, summary and result files.

Every hook is a few lines that hand off to the domain modules, which import no pytest. This
module imports only the standard library and pytest at start-up, so a run without
``--label-quality`` pays nothing for the plugin.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_labelquality.errors import (
    GateFailure,
    LabelQualityError,
    OutputError,
    SpecError,
    UserCodeError,
    os_error_message,
)
from pytest_labelquality.outputs import OUTPUTS

if TYPE_CHECKING:
    from pytest_labelquality.cache import CacheRoot
    from pytest_labelquality.result import DatasetResult
    from pytest_labelquality.spec import DatasetSpec

CACHE_ENV = "LABEL_QUALITY_CACHE_DIR"
BACKEND_ENV = "LABEL_QUALITY_BACKEND"
DEFAULT_MAX_SUSPECTS = 100


class LabelQualityWarning(pytest.PytestWarning):
    """Something in a label-quality run deserves a look but does not fail it."""


class CacheRepairWarning(LabelQualityWarning):
    """A cache entry was unusable (corrupt, incomplete, not of this run) and was recomputed."""


@dataclass(frozen=True)
class Settings:
    """Options resolved once: command line over environment over ini over default."""

    enabled: bool
    cache_dir: CacheRoot
    #: Each result file's path by its output's name (``outputs.OUTPUTS``), those to write.
    outputs: dict[str, Path]
    max_suspects: int
    update_baseline: bool
    only: bool = False
    trusted_ref: str | None = None
    baseline_dir: Path | None = None
    decisions_ref: str | None = None
    show_top: int = 0
    backend: str = "local"
    backend_address: str | None = None

    @property
    def json_path(self) -> Path:
        """The results file."""
        return self.outputs["json"]

    @property
    def html_path(self) -> Path:
        """The HTML report."""
        return self.outputs["html"]


settings_key = pytest.StashKey[Settings]()


def _path_option(value: str) -> str:
    if not value.strip():
        raise argparse.ArgumentTypeError("must be a non-empty path")
    return value


def _count_option(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {value!r}") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {number}")
    return number


def _backend_option(value: str) -> str:
    from pytest_labelquality.backends import BackendName

    names = [b.value for b in BackendName]
    if value not in names:
        raise argparse.ArgumentTypeError(f"must be one of {', '.join(names)}, got {value!r}")
    return value


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("label-quality", "label quality of datasets (pytest-labelquality)")
    group.addoption(
        "--label-quality",
        action="store_true",
        default=None,
        help="collect *.labelquality.yaml dataset specs and gate their label noise"
        " (default: off; ini label_quality).",
    )
    group.addoption(
        "--label-quality-cache-dir",
        type=_path_option,
        metavar="DIR",
        help=f"cache of out-of-fold predictions: a folder, or an fsspec URL such as"
        f" s3://bucket/prefix that every worker shares (default: $ {CACHE_ENV}, else"
        " <cache_dir>/d/label-quality; ini label_quality_cache_dir).",
    )
    group.addoption(
        "--label-quality-backend",
        type=_backend_option,
        metavar="NAME",
        help=f"where folds train: local, ray or dask (default: ${BACKEND_ENV}, else local; ini"
        " label_quality_backend).",
    )
    group.addoption(
        "--label-quality-backend-address",
        type=_path_option,
        metavar="ADDRESS",
        help="the Ray cluster or Dask scheduler to send folds to (default: $RAY_ADDRESS or"
        " $DASK_SCHEDULER_ADDRESS, else a cluster started on this machine; ini"
        " label_quality_backend_address).",
    )
    for output in OUTPUTS:
        if output.option:
            group.addoption(output.option, type=_path_option, metavar="PATH", help=output.help())
    group.addoption(
        "--label-quality-max-suspects",
        type=_count_option,
        metavar="N",
        help=f"suspect items shown per dataset in the HTML report (default:"
        f" {DEFAULT_MAX_SUSPECTS}; ini label_quality_max_suspects).",
    )
    group.addoption(
        "--label-quality-show-top",
        type=_count_option,
        metavar="N",
        help="also show the items among the N most suspect of each ranking that are below the"
        " estimated count, marked as such (default: 0; ini label_quality_show_top).",
    )
    group.addoption(
        "--label-quality-update-baseline",
        action="store_true",
        default=False,
        help="write each spec's baseline (x.labelquality.baseline.json, or into"
        " --label-quality-baseline-dir) from this run's results, once, at the end (default: off).",
    )
    group.addoption(
        "--label-quality-baseline-dir",
        type=_path_option,
        metavar="DIR",
        help="read and write baselines in this folder, under each spec's path relative to the"
        " rootdir, instead of beside the specs: a store CI saves per commit, so that nobody"
        " commits a baseline (default: beside the specs; ini label_quality_baseline_dir).",
    )
    group.addoption(
        "--label-quality-only",
        action="store_true",
        default=None,
        help="collect *.labelquality.yaml specs and nothing else, so the repository's own tests"
        " neither run nor abort the gate; implies --label-quality (default: off; ini"
        " label_quality_only).",
    )
    group.addoption(
        "--label-quality-trusted-ref",
        type=_path_option,
        metavar="REF",
        help="read baselines and reviews as they are at this git commit (a pull request's base),"
        " not from the working tree, whose edits to them then take effect after merge (default:"
        " the working tree; ini label_quality_trusted_ref).",
    )
    group.addoption(
        "--label-quality-decisions-ref",
        type=_path_option,
        metavar="REF",
        help="also read reviews as they are at this git ref, where maintainers' decisions are"
        " recorded (the branch the accept command of a pull-request comment pushes to), by"
        " each review file's path relative to the rootdir (default: none; ini"
        " label_quality_decisions_ref).",
    )
    parser.addini("label_quality", "run label-quality checks (default: false)", type="bool")
    parser.addini(
        "label_quality_only", "collect only label-quality specs (default: false)", type="bool"
    )
    parser.addini(
        "label_quality_trusted_ref", "commit to read baselines and reviews from", default=""
    )
    parser.addini(
        "label_quality_baseline_dir", "folder of baselines (default: beside the specs)", default=""
    )
    parser.addini(
        "label_quality_decisions_ref",
        "git ref of maintainers' decisions (default: none)",
        default="",
    )
    parser.addini("label_quality_cache_dir", "cache of out-of-fold predictions", default="")
    parser.addini("label_quality_backend", "where folds train (default: local)", default="")
    parser.addini(
        "label_quality_backend_address",
        "the Ray cluster or Dask scheduler (default: the engine's address variable)",
        default="",
    )
    for output in OUTPUTS:
        if output.option:
            default = output.default or "none"
            parser.addini(output.ini, f"{output.what} (default: {default})", default="")
    parser.addini(
        "label_quality_max_suspects",
        f"suspects shown per dataset (default: {DEFAULT_MAX_SUSPECTS})",
        default=str(DEFAULT_MAX_SUSPECTS),
    )
    parser.addini(
        "label_quality_show_top",
        "show the N most suspect items even below the estimate (default: 0)",
        default="0",
    )


def pytest_configure(config: pytest.Config) -> None:
    settings = config.stash[settings_key] = _resolve_settings(config)
    if settings.enabled:
        _check_distinct_outputs(settings)
        config.pluginmanager.register(Controller(config, settings), "labelquality-controller")
    config.addinivalue_line(
        "markers", "label_quality: a dataset checked by pytest-labelquality (set automatically)"
    )


def _check_distinct_outputs(settings: Settings) -> None:
    """Two result files at one path would overwrite each other: a usage error."""
    seen: dict[str, str] = {}
    for output in OUTPUTS:
        path = settings.outputs.get(output.name)
        if path is None:
            continue
        real = os.path.realpath(path)
        if real in seen:
            raise pytest.UsageError(
                f"{seen[real]} and {output.label} (or their ini twins) both name {path}: give"
                " each result file its own path"
            )
        seen[real] = output.label


def _resolve_settings(config: pytest.Config) -> Settings:
    option = config.getoption("label_quality")
    only_option = config.getoption("label_quality_only")
    try:
        only = bool(only_option if only_option is not None else config.getini("label_quality_only"))
    except (ValueError, pytest.UsageError) as exc:  # pytest >= 8.4 raises UsageError itself
        raise pytest.UsageError(f"ini label_quality_only: {exc}; use true or false") from None
    try:
        enabled = only or bool(option if option is not None else config.getini("label_quality"))
    except (ValueError, pytest.UsageError) as exc:  # pytest >= 8.4 raises UsageError itself
        raise pytest.UsageError(f"ini label_quality: {exc}; use true or false") from None
    trusted_ref = config.getoption("label_quality_trusted_ref") or config.getini(
        "label_quality_trusted_ref"
    )
    here, root = config.invocation_params.dir, config.rootpath

    def pick(cli: str | None, env: str | None, ini: str, default: Path) -> Path:
        if cli:
            return here / cli
        if env:
            return Path(env)
        return root / ini if ini else default

    def pick_cache(cli: str | None, env: str | None, ini: str, default: Path) -> CacheRoot:
        from pytest_labelquality.cache import is_url

        chosen = cli or env or ini
        return chosen if chosen and is_url(chosen) else pick(cli, env, ini, default)

    outputs: dict[str, Path] = {}
    for output in OUTPUTS:
        cli = config.getoption(output.ini) if output.option else None
        env = os.environ.get(output.env) if output.env else None
        ini = str(config.getini(output.ini)) if output.option else ""
        if cli or env or ini or output.default:
            outputs[output.name] = pick(cli, env, ini, root / (output.default or ""))
    decisions_ref = config.getoption("label_quality_decisions_ref") or config.getini(
        "label_quality_decisions_ref"
    )
    cli_baselines = config.getoption("label_quality_baseline_dir")
    ini_baselines = config.getini("label_quality_baseline_dir")
    try:
        cache_root = root / str(config.getini("cache_dir"))
    except ValueError:  # the cacheprovider plugin is disabled; keep its usual place
        cache_root = root / ".pytest_cache"
    return Settings(
        enabled=enabled,
        cache_dir=pick_cache(
            config.getoption("label_quality_cache_dir"),
            os.environ.get(CACHE_ENV),
            config.getini("label_quality_cache_dir"),
            cache_root / "d" / "label-quality",
        ),
        outputs=outputs,
        max_suspects=_count_setting(config, "label_quality_max_suspects"),
        update_baseline=bool(config.getoption("label_quality_update_baseline")),
        only=only,
        trusted_ref=str(trusted_ref) if trusted_ref else None,
        baseline_dir=pick(cli_baselines, None, ini_baselines, root)
        if cli_baselines or ini_baselines
        else None,
        decisions_ref=str(decisions_ref) if decisions_ref else None,
        show_top=_count_setting(config, "label_quality_show_top"),
        backend=_backend_setting(config) if enabled else "local",
        backend_address=config.getoption("label_quality_backend_address")
        or config.getini("label_quality_backend_address")
        or None,
    )


def _backend_setting(config: pytest.Config) -> str:
    """The backend's name, its engine checked to be installed."""
    from pytest_labelquality.backends import BackendName, missing_extra

    name = config.getoption("label_quality_backend") or os.environ.get(BACKEND_ENV)
    where = f"${BACKEND_ENV}" if name else "ini label_quality_backend"
    name = name or str(config.getini("label_quality_backend")) or "local"
    try:
        name = _backend_option(name)
    except argparse.ArgumentTypeError as exc:
        raise pytest.UsageError(f"{where} {exc}") from None
    problem = missing_extra(BackendName(name))
    if problem:
        raise pytest.UsageError(problem)
    return name


def _count_setting(config: pytest.Config, name: str) -> int:
    option = config.getoption(name)
    if option is not None:
        return int(option)
    try:
        return _count_option(str(config.getini(name)))
    except argparse.ArgumentTypeError as exc:
        raise pytest.UsageError(f"ini {name} {exc}") from None


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    settings = config.stash.get(settings_key, None)
    if settings is None or not settings.only or collection_path.is_dir():
        return None
    from pytest_labelquality.spec import is_spec_file

    return None if is_spec_file(collection_path) else True


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if not parent.config.stash[settings_key].enabled:
        return None
    from pytest_labelquality.spec import is_spec_file

    return SpecFile.from_parent(parent, path=file_path) if is_spec_file(file_path) else None


class SpecFile(pytest.File):
    """A ``*.labelquality.yaml`` file: one item per dataset."""

    def collect(self) -> Iterator[DatasetItem]:
        from pytest_labelquality.spec import load_spec

        try:
            datasets = load_spec(self.path)
        except SpecError as exc:
            raise self.CollectError(str(exc)) from None
        except LabelQualityError as exc:
            raise self.CollectError(f"{self.path}: {exc}") from None
        for spec in datasets:
            yield DatasetItem.from_parent(self, name=spec.name, spec=spec)


class DatasetItem(pytest.Item):
    """One dataset's label-quality check."""

    def __init__(self, *, spec: DatasetSpec, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spec = spec
        self.result: DatasetResult | None = None
        self.add_marker("label_quality")

    def runtest(self) -> None:
        from pytest_labelquality.backends import resolve
        from pytest_labelquality.results import failure_message, rule_text
        from pytest_labelquality.runner import check_dataset

        settings = self.config.stash[settings_key]
        self.result = result = check_dataset(
            self.spec,
            backend=resolve(settings.backend, settings.backend_address),
            cache_dir=settings.cache_dir,
            progress=_progress_writer(self.config),
            keep_items=settings.update_baseline,
            trusted_ref=settings.trusted_ref,
            baseline_dir=settings.baseline_dir,
            decisions_ref=settings.decisions_ref,
            show_top=settings.show_top,
            root=self.config.rootpath,
        )
        for notice in result.warnings:
            self.warn(LabelQualityWarning(f"{self.spec.name}: {notice.message}"))
        for text in result.cache.repaired:
            self.warn(CacheRepairWarning(f"{self.spec.name}: {text}"))
        self.user_properties += [
            ("label_quality_noise_rate", round(result.noise.rate, 6)),
            ("label_quality_noise_count", result.noise.count),
            ("label_quality_max_noise_rate", result.gate.max_noise_rate),
            ("label_quality_oof_accuracy", round(result.oof_accuracy, 6)),
            ("label_quality_items", result.items),
            ("label_quality_cache", result.cache.status),
            ("label_quality_failed_rules", "; ".join(map(rule_text, result.gate.failed_rules))),
        ]
        if not result.passed:
            raise GateFailure(failure_message(result, settings.html_path, settings.json_path))

    def repr_failure(
        self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None
    ) -> str | Any:
        from pytest_labelquality.files import portable_text, relative_path

        root = self.config.rootpath
        error = excinfo.value
        where = f"{relative_path(self.spec.spec_path, root)}:{self.spec.line}: dataset"
        where += f" {self.spec.name!r}"
        failure = self._failure(error, where, excinfo, style)
        return portable_text(failure, root) if isinstance(failure, str) else failure

    def _failure(
        self,
        error: BaseException,
        where: str,
        excinfo: pytest.ExceptionInfo[BaseException],
        style: Any,
    ) -> str | Any:
        if isinstance(error, GateFailure):
            return str(error)
        if isinstance(error, UserCodeError) and error.frames:
            return f"{where}: {error}\n{error.frames}"
        if isinstance(error, LabelQualityError):
            return f"{where}: {error}"
        if isinstance(error, OSError):  # the data, a folder or a disk the user can fix
            hint = "check that the path exists, is readable, and the disk has space"
            return f"{where}: {os_error_message(error, 'cannot use', hint)}"
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, self.spec.line - 1, f"label quality: {self.spec.name}"


def _progress_writer(config: pytest.Config) -> Callable[[str], None]:
    """Print progress lines live, with output capture suspended (as live logging does)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")

    def write(line: str) -> None:
        if reporter is None or (line.startswith("  epoch") and config.get_verbosity() < 1):
            return
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            reporter.ensure_newline()
            reporter.write_line(f"[label-quality] {line}")

    return write


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if call.when == "call" and isinstance(item, DatasetItem) and item.result is not None:
        report.label_quality = item.result.to_json()  # travels to the xdist controller as JSON
    return report


class Controller:
    """Gathers each dataset's result as its report arrives, then writes the files and summary.

    Registered only when the plugin is enabled. Results ride on the reports, so under xdist
    the controller sees every worker's datasets and is the only process that writes.
    """

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.results: list[DatasetResult] = []
        self.baselines: dict[Path, dict[str, dict[str, Any]]] = {}
        self.baselines_written: list[Path] = []
        self.errors: list[dict[str, str]] = []
        self.output_error: str | None = None

    def _first_line(self, report: pytest.TestReport | pytest.CollectReport) -> str:
        """A failed report's first line, with paths relative to the rootdir."""
        from pytest_labelquality.files import portable_text

        return portable_text(_first_line(report), self.config.rootpath)

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        """Remove the last run's result files: a run that fails or errors before writing its own
        must not leave an old report saying PASS."""
        if hasattr(self.config, "workerinput"):
            return
        from pytest_labelquality.outputs import remove_stale

        remove_stale(self.settings.outputs)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if hasattr(self.config, "workerinput"):  # the controller gathers; a worker only sends
            return
        sent = getattr(report, "label_quality", None)
        if report.failed and sent is None and "label_quality" in report.keywords:
            self.errors.append({"test": report.nodeid, "error": self._first_line(report)})
        if sent is not None:
            from pytest_labelquality.result import DatasetResult

            result = DatasetResult.from_json(sent)
            if result.baseline_entry is not None:
                spec = self.config.rootpath / result.spec.file
                self.baselines.setdefault(spec, {})[result.name] = result.baseline_entry
                result = dataclasses.replace(result, baseline_entry=None)
            self.results.append(result)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        from pytest_labelquality.spec import is_spec_file

        error = {"test": report.nodeid, "error": self._first_line(report)}
        if report.failed and is_spec_file(Path(report.fspath)) and error not in self.errors:
            self.errors.append(error)  # under xdist every worker reports it

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        from pytest_labelquality.outputs import write_outputs, written

        if hasattr(self.config, "workerinput") or not (self.results or self.errors):
            return
        settings = self.settings
        try:
            with written(*settings.outputs.values()):
                if self.baselines:
                    from pytest_labelquality.baseline import write_baselines
                    from pytest_labelquality.outputs import git_commit

                    self.baselines_written = write_baselines(
                        self.baselines,
                        git_commit(self.config.rootpath),
                        store=settings.baseline_dir,
                        root=self.config.rootpath,
                    )
                write_outputs(
                    self.results,
                    settings.outputs,
                    errors=self.errors,
                    max_suspects=settings.max_suspects,
                    repository=self.config.rootpath,
                )
        except OutputError as exc:
            self.output_error = str(exc)
            if session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        from pytest_labelquality.backends import close_engines

        close_engines()

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        from pytest_labelquality.results import format_table, summary_notes, summary_row

        if not (self.results or self.errors):
            return
        terminalreporter.section("label quality")
        rows = [summary_row(r) for r in sorted(self.results, key=lambda r: r.name)]
        lines = format_table(rows)
        if lines:
            terminalreporter.write_line(lines[0])
        for row, line in zip(rows, lines[1:], strict=True):
            passed = row["verdict"] == "PASS"
            terminalreporter.write_line(line, green=passed, red=not passed)
        if self.errors:
            count = len(self.errors)
            what = "dataset or spec file" if count == 1 else "datasets or spec files"
            terminalreporter.write_line(f"{count} {what} could not be checked", red=True)
        for result in sorted(self.results, key=lambda r: r.name):
            for note in summary_notes(result):
                terminalreporter.write_line(note, red=True, bold=True)
        for path in sorted(self.baselines_written):
            from pytest_labelquality.files import relative_path

            shown = relative_path(path, self.config.rootpath)
            terminalreporter.write_line(f"label-quality baseline written: {shown}")
        if self.output_error:
            terminalreporter.write_line(f"label-quality: {self.output_error}", red=True, bold=True)
            return
        terminalreporter.write_line(f"label-quality results: {self.settings.json_path}")
        terminalreporter.write_line(f"label-quality report: {self.settings.html_path.as_uri()}")


def _first_line(report: pytest.TestReport | pytest.CollectReport) -> str:
    """A failed report's message, first line."""
    text = str(report.longrepr).strip() if report.longrepr else ""
    return text.splitlines()[0] if text else "error"
