"""The documentation: the site builds with warnings as errors, its generated tables are current,
and the README keeps the two commands CI runs at its top and stays short."""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
GENERATOR = ROOT / "docs" / "_generate" / "reference.py"
LINK = re.compile(r"\]\((?!https?://|mailto:|#)([^)\s]+)\)")


@pytest.fixture(scope="module")
def reference() -> ModuleType:
    """docs/_generate/reference.py, imported as a module."""
    spec = importlib.util.spec_from_file_location("docs_reference", GENERATOR)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while they are made
    spec.loader.exec_module(module)
    return module


def test_the_generated_tables_are_current(reference: ModuleType) -> None:
    stale = [
        str(page.relative_to(ROOT)) for page, (old, new) in reference.pages().items() if old != new
    ]
    assert not stale, f"regenerate them: python docs/_generate/reference.py ({stale})"


def test_a_spec_key_without_a_meaning_stops_the_generator(
    reference: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    meanings = reference.meanings()
    del meanings["gate.max_increase"]
    meanings["gate.max_noise"] = "a key the spec does not have"
    monkeypatch.setattr(reference, "meanings", lambda: meanings)
    with pytest.raises(reference.MissingMeaning) as caught:
        reference.keys_table()
    message = str(caught.value)
    assert "docs/_generate/spec_keys.yaml" in message
    assert "give the meaning of gate.max_increase" in message
    assert "remove gate.max_noise, which the spec no longer has" in message
    assert reference.main(["--check"]) == 1


def test_the_site_builds_with_warnings_as_errors(tmp_path: Path) -> None:
    """mkdocs build --strict: a broken link or anchor, or a page missing from the navigation,
    fails (mkdocs.yml's validation settings make each a warning)."""
    site = tmp_path / "site"
    run = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,  # the snippets of example workflows are read relative to the repository
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    pages = {p.parent.name for p in site.glob("*/index.html")}
    expected = {p.stem for p in (ROOT / "docs").glob("*.md")} - {"index"}
    assert pages >= expected
    # the example workflows are shown as they are
    actions = (site / "github-actions" / "index.html").read_text(encoding="utf-8")
    assert "label-quality-comment" in actions
    assert "updateComment" in actions


def fenced_blocks(text: str) -> list[tuple[int, str]]:
    """Each fenced block of Markdown with the line it starts on."""
    return [
        (text[: m.start()].count("\n") + 1, m.group(1).strip())
        for m in re.finditer(r"^```\w*\n(.*?)^```$", text, re.MULTILINE | re.DOTALL)
    ]


def command(block: str) -> str:
    """A block's one command, without its comment lines."""
    (line,) = [line for line in block.splitlines() if not line.startswith("#")]
    return line


def test_the_readme_starts_with_the_two_commands_ci_runs() -> None:
    """.ci/run installs the project as the README says and runs the README's test command; the
    first command runs the gate on the bundled example."""
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    (ci_command,) = [line for line in ci.splitlines() if line.startswith("python3 -m venv")]
    (_, gate), (second_line, tests) = fenced_blocks(README.read_text(encoding="utf-8"))[:2]
    assert command(tests) == ci_command
    install, _, pytest_command = ci_command.rpartition(" && ")
    assert command(gate) == f"{install} && {pytest_command} --label-quality examples/digits"
    assert second_line < 40, "keep both commands at the top of the README"
    assert (ROOT / "examples" / "digits" / "digits.labelquality.yaml").is_file()
    assert shlex.split(install)[-1] == ".[dev]"


def test_the_readme_stays_short() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 200, "move the details to a page of docs/ and link it"


@pytest.mark.parametrize("name", ["README.md", "CONTRIBUTING.md", "CHANGELOG.md"])
def test_the_links_of_the_top_level_files_resolve(name: str) -> None:
    text = (ROOT / name).read_text(encoding="utf-8")
    broken = [target for target in LINK.findall(text) if not (ROOT / target.split("#")[0]).exists()]
    assert not broken, f"{name} links to files that do not exist: {broken}"
