"""Release readiness: one version, a changelog entry for it, and an sdist and a wheel that build
offline in seconds, pass ``twine check --strict`` and hold every file the plugin reads at run time.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

from pytest_labelquality import __version__

ROOT = Path(__file__).resolve().parents[1]
CHANGELOG = ROOT / "CHANGELOG.md"
#: What the plugin opens at run time besides its modules: a wheel without one of these installs
#: and imports, then fails on the first report, spec schema or MiniLM tokenisation.
RUNTIME_FILES = (
    "pytest_labelquality/py.typed",
    "pytest_labelquality/labelquality.schema.json",
    "pytest_labelquality/results.schema.json",
    "pytest_labelquality/templates/report.html.j2",
    "pytest_labelquality/templates/report.css",
    "pytest_labelquality/templates/report.js",
    "pytest_labelquality/encoders/data/minilm_l6_vocab.txt",
    "pytest_labelquality/encoders/data/NOTICE",
)
HEADING = re.compile(r"^## \[(?P<name>[^\]]+)\](?: - (?P<date>.+))?$", re.MULTILINE)


def test_the_version_is_written_once() -> None:
    """pyproject.toml reads the version from ``__version__``, the one cache keys record."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" not in pyproject["project"]
    assert pyproject["project"]["dynamic"] == ["version"]
    dynamic = pyproject["tool"]["setuptools"]["dynamic"]
    assert dynamic["version"] == {"attr": "pytest_labelquality.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+((a|b|rc)\d+)?", __version__), __version__


def test_the_changelog_has_a_section_for_this_version() -> None:
    text = CHANGELOG.read_text(encoding="utf-8")
    assert "[Keep a Changelog](https://keepachangelog.com/en/1.1.0/)" in text
    sections = {m["name"]: m["date"] for m in HEADING.finditer(text)}
    assert __version__ in sections, f"CHANGELOG.md: add a '## [{__version__}]' section"
    date = sections[__version__]
    # Dated when it is tagged (the release workflow refuses a tag whose section has no date).
    assert date == "Unreleased" or re.fullmatch(r"\d{4}-\d{2}-\d{2}", date or ""), date
    versions = [tuple(map(int, n.split("."))) for n in sections if n != "Unreleased"]
    assert versions == sorted(versions, reverse=True), "newest version first"


def tracked_files() -> list[Path]:
    """The files a release is built from: tracked, or new and not ignored."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: cannot tell which files a release holds")
    listing = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return [Path(name) for name in listing.split("\0") if name and (ROOT / name).is_file()]


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An sdist, and a wheel built from it, of a copy of the checkout: offline, in seconds."""
    base = tmp_path_factory.mktemp("release")
    source, out = base / "source", base / "dist"
    for name in tracked_files():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    # --no-isolation: the backend of [build-system] is in the dev extra, so nothing is fetched.
    run = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(source)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return out


def one(folder: Path, pattern: str) -> Path:
    (found,) = folder.glob(pattern)
    return found


def test_twine_check_passes(dist: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *map(str, sorted(dist.iterdir()))],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.count("PASSED") == 2, run.stdout


def test_the_wheel_holds_the_package_data_and_the_metadata(dist: Path) -> None:
    wheel = one(dist, f"pytest_labelquality-{__version__}-py3-none-any.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        info = f"pytest_labelquality-{__version__}.dist-info"
        metadata = Parser().parsestr(archive.read(f"{info}/METADATA").decode())
        entry_points = archive.read(f"{info}/entry_points.txt").decode()
    assert not [f for f in RUNTIME_FILES if f not in names]
    # every file of the package in the checkout, a new template or data file included
    package = [str(f) for f in tracked_files() if f.parts[0] == "pytest_labelquality"]
    assert not [f for f in package if f not in names], "add it to [tool.setuptools.package-data]"
    assert f"{info}/licenses/LICENSE" in names
    assert metadata["Version"] == __version__
    assert metadata["License-Expression"] == "MIT"
    assert metadata["Description-Content-Type"] == "text/markdown"
    assert any(r.startswith("cleanlab<3,>=2.8") for r in metadata.get_all("Requires-Dist") or [])
    assert "labelquality = pytest_labelquality.plugin" in entry_points


def test_the_sdist_holds_what_a_wheel_is_built_from(dist: Path) -> None:
    sdist = one(dist, f"pytest_labelquality-{__version__}.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    wanted = {"pyproject.toml", "README.md", "LICENSE", "CHANGELOG.md", *RUNTIME_FILES}
    assert not wanted - names
