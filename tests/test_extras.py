"""Which of the plugin's extras a set of specs needs (what the GitHub Action installs), and the
install hint that names the action's input when the gate runs inside it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pytest_labelquality.errors import IN_ACTION, install_hint
from pytest_labelquality.extras import main, needed, spec_files
from pytest_labelquality.spec import DatasetSpec, load_spec


def datasets(tmp_path: Path, entries: str) -> list[DatasetSpec]:
    (tmp_path / "photos" / "cat").mkdir(parents=True, exist_ok=True)
    for name in ("news.csv", "news.parquet", "rows.parquet"):
        (tmp_path / name).write_text("label,text\na,x\n")
    path = tmp_path / "x.labelquality.yaml"
    path.write_text("datasets:\n" + entries)
    return load_spec(path)


def one(source: str, model: str = "") -> str:
    lines = f"  - name: d\n    source: {source}\n    gate: {{max_noise_rate: 0.1}}\n"
    return lines + (f"    model: {model}\n" if model else "")


@pytest.mark.parametrize(
    ("source", "model", "extras"),
    [
        # photos and texts with the default model: the encoder judges them best
        ("{format: images, dir: photos}", "", ["encoders", "images"]),
        ("{format: images, dir: photos}", "{name: auto}", ["encoders", "images"]),
        ("{format: images, dir: photos, mode: grey}", "", ["images"]),
        ("{format: images, dir: photos}", "{name: hog_boosting}", ["images"]),
        ("{format: images, dir: photos}", "{name: small_cnn}", ["images", "keras"]),
        ("{format: images, dir: photos}", "{name: ensemble}", ["images", "keras"]),
        (
            "{format: images, dir: photos}",
            "{name: ensemble, members: [encoder_linear, hog_boosting]}",
            ["encoders", "images"],
        ),
        (
            "{format: images, dir: photos}",
            "{name: encoder_linear, encoder: efficientnet_lite2}",
            ["encoders", "encoders-lite2", "images"],
        ),
        ("{format: text, path: news.csv, text: text, label: label}", "", ["encoders", "languages"]),
        (
            "{format: text, path: news.parquet, text: text, label: label}",
            "",
            ["encoders", "languages", "parquet"],
        ),
        (
            "{format: text, path: news.csv, text: text, label: label}",
            "{name: tfidf_linear}",
            ["languages"],
        ),
        ("{format: parquet, path: rows.parquet, label: label}", "", ["parquet"]),
        ("{format: sklearn, name: digits}", "", []),
        ("{format: sklearn, name: digits}", "{factory: 'my_models:build'}", []),
    ],
)
def test_what_each_spec_needs(tmp_path: Path, source: str, model: str, extras: list[str]) -> None:
    assert needed(datasets(tmp_path, one(source, model))) == extras


def test_the_command_reads_every_spec_under_its_paths_and_skips_broken_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    datasets(tmp_path, one("{format: images, dir: photos}"))
    (tmp_path / "more").mkdir()
    (tmp_path / "more" / "t.labelquality.yaml").write_text(
        "datasets:\n" + one("{format: text, path: ../news.parquet, text: text, label: label}")
    )
    (tmp_path / "broken.labelquality.yaml").write_text("datasets: [")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "h.labelquality.yaml").write_text(
        "datasets:\n" + one("{format: sklearn, name: digits}", "{name: small_cnn}")
    )
    assert len(list(spec_files([tmp_path]))) == 3  # the hidden folder is not searched
    assert main([str(tmp_path)]) == 0
    assert capsys.readouterr().out == "encoders,images,languages,parquet\n"


def test_inside_the_action_a_missing_extra_names_the_actions_input(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pillow made unimportable in a real child process, as on a runner without the extra."""
    (pytester.path / "photos" / "cat").mkdir(parents=True)
    pytester.makefile(
        ".labelquality.yaml",
        photos="datasets:\n" + one("{format: images, dir: photos}", "{name: hog_boosting}"),
    )
    blocker = (
        "import sys\n"
        "class NoPillow:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'PIL' or name.startswith('PIL.'):\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, NoPillow())\n"
        "import pytest\nsys.exit(pytest.main(sys.argv[1:]))\n"
    )
    monkeypatch.setenv(IN_ACTION, "true")
    run = pytester.run(sys.executable, "-c", blocker, "--label-quality", "-p", "no:cacheprovider")
    assert run.ret == pytest.ExitCode.TESTS_FAILED
    run.stdout.fnmatch_lines(
        [
            "*this source needs PIL, which is not installed: install the images extra: add it to"
            " the pytest-labelquality action's extras input (with: extras: images)*"
        ]
    )
    assert "Traceback" not in run.stdout.str()


def test_outside_the_action_the_hint_is_pip(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(IN_ACTION, raising=False)
    assert (
        install_hint("images")
        == "install the images extra, pip install 'pytest-labelquality[images]'"
    )
