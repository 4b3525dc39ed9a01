"""The typed result: the results file a real run writes validates against the schema derived
from the dataclasses, reads back into the same object, and a file of another shape is one
error naming the key."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest
from sklearn.datasets import load_iris, load_wine

from pytest_labelquality.result import (
    DatasetResult,
    ResultShapeError,
    RunResult,
    WarningCode,
    json_schema,
)

SCHEMA_FILE = Path(__file__).resolve().parents[1] / "pytest_labelquality" / "results.schema.json"

SPEC = """\
datasets:
  - name: iris
    source: {format: npz, path: iris.npz, flip: {rate: 0.1, seed: 3}}
    model: {name: logistic_regression}
    gate: {max_noise_rate: 0.02, max_class_noise_rate: {"0": 0.5}}
  - name: wine
    source: {format: npz, path: wine.npz}
    model: {name: logistic_regression}
    gate: {max_noise_rate: 0.5, max_new_suspects: 3}
"""


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The results file of one real run of two datasets (one fails, one warns)."""
    folder = tmp_path_factory.mktemp("typed")
    for name, load in (("iris", load_iris), ("wine", load_wine)):
        x, y = load(return_X_y=True)
        np.savez(folder / f"{name}.npz", x=x, y=y)
    (folder / "data.labelquality.yaml").write_text(SPEC)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "--label-quality", "-p", "no:cacheprovider", "-q"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 1, run.stdout + run.stderr  # iris fails its gate
    document: dict[str, Any] = json.loads(
        (folder / "label-quality-report" / "label-quality.json").read_text()
    )
    return document


def test_the_results_file_of_a_real_run_validates_against_the_schema(
    written: dict[str, Any],
) -> None:
    jsonschema.Draft202012Validator.check_schema(json_schema())
    jsonschema.validate(written, json_schema())
    assert [d["name"] for d in written["datasets"]] == ["iris", "wine"]


def test_the_results_file_reads_back_into_the_object_it_was_written_from(
    written: dict[str, Any],
) -> None:
    run = RunResult.from_json(written)
    assert run.to_json() == written
    iris, wine = run.datasets
    assert not run.passed
    assert run.failed == (iris,)
    assert iris.gate.failed_rules[0].rule == "max_noise_rate"
    assert iris.noise.count == len(iris.counted_suspects) > 0
    assert iris.injected is not None
    assert iris.injected.count == 15
    assert iris.ranking is None  # written to its own file beside the JSON
    assert iris.ranking_file == "label-quality-ranking.iris.csv.gz"
    assert iris.noise.method.temperature is None  # logistic regression's are counted as given
    assert wine.has_warning(WarningCode.NO_BASELINE)
    assert not iris.has_warning(WarningCode.NO_BASELINE)


def test_the_published_schema_is_the_generated_one() -> None:
    assert json.loads(SCHEMA_FILE.read_text()) == json_schema(), (
        "regenerate with: python -m pytest_labelquality.result >"
        " pytest_labelquality/results.schema.json"
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["datasets"][0]["noise"].update(rate="high"),
         r"results\.datasets\[0\]\.noise\.rate: expected float"),
        (lambda d: d["datasets"][0]["gate"].pop("passed"),
         r"results\.datasets\[0\]\.gate\.passed: missing"),
        (lambda d: d["datasets"][0].update(flagged={}),
         r"results\.datasets\[0\]\.flagged: expected a list"),
        (lambda d: d["datasets"][0]["warnings"].append({"code": "x", "message": "m"}),
         r"results\.datasets\[0\]\.warnings\[\d+\]\.code: unknown value 'x'"),
        (lambda d: d.update(datasets=None), r"results\.datasets: expected a list"),
    ],
)  # fmt: skip
def test_a_results_file_of_another_shape_names_the_key(
    written: dict[str, Any], change: Any, message: str
) -> None:
    document = copy.deepcopy(written)
    change(document)
    with pytest.raises(ResultShapeError, match=message):
        RunResult.from_json(document)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, json_schema())


def test_reviews_add_on_a_results_file_of_another_shape_is_one_line(
    written: dict[str, Any], tmp_path: Path
) -> None:
    broken = copy.deepcopy(written)
    del broken["datasets"][0]["flagged"]
    results = tmp_path / "label-quality.json"
    results.write_text(json.dumps(broken))
    spec = tmp_path / "data.labelquality.yaml"
    spec.write_text(SPEC)
    run = subprocess.run(
        [sys.executable, "-m", "pytest_labelquality.reviews", "add", str(spec), "iris", "x",
         "--decision", "correct", "--by", "me", "--results", str(results)],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert run.returncode != 0
    assert "Traceback" not in run.stderr
    assert run.stderr == (
        f"error: cannot read the results {results}: results.datasets[0].flagged: missing\n"
    )


def test_a_dataset_result_crosses_as_its_json(written: dict[str, Any]) -> None:
    entry = written["datasets"][0]
    result = DatasetResult.from_json(json.loads(json.dumps(entry)))
    assert result.to_json() == entry


def test_every_setting_a_model_records_has_its_typed_field() -> None:
    """The model's settings are read from what its cache key holds: a setting added there and
    not to :class:`ModelUse` would be lost from the results, so nothing may be left over."""
    from pytest_labelquality.models import ModelConfig
    from pytest_labelquality.result import ModelUse

    config = ModelConfig(
        "encoder_linear",
        "module:make",
        3,
        16,
        0.01,
        params={"C": 0.5, "layers": [8, 4], "name": None},
        mirror=True,
        encoder="all-MiniLM-L6-v2",
        tokenizer="tokenizer.json",
        encoder_identity={"encoder": "minilm", "reads": "pixels"},
        members=("a", "b"),
    )
    recorded = config.as_dict()
    assert set(recorded) == {f for f in ModelUse.__dataclass_fields__ if f not in ("auto", "blend")}
    assert ModelUse.from_json(recorded).to_json() == recorded
    with pytest.raises(ResultShapeError, match=r"ModelUse\.epochs: expected int, got str"):
        ModelUse.from_json({**recorded, "epochs": "3"})
