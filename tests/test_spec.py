"""Spec parsing: defaults, located errors, and the published JSON Schema."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from pytest_labelquality.errors import SpecError
from pytest_labelquality.source_specs import QuickDrawSource, SklearnSource
from pytest_labelquality.spec import (
    SCHEMA_FILE,
    CountMethod,
    FilterBy,
    RankedBy,
    is_spec_file,
    json_schema,
    load_spec,
)

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def write(tmp_path: Path, text: str, name: str = "data.labelquality.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def spec_error(tmp_path: Path, text: str) -> SpecError:
    with pytest.raises(SpecError) as info:
        load_spec(write(tmp_path, text))
    return info.value


def test_minimal_spec_gets_documented_defaults(tmp_path: Path) -> None:
    (ds,) = load_spec(
        write(
            tmp_path,
            "datasets:\n"
            "  - name: d\n"
            "    source: {format: sklearn, name: iris}\n"
            "    gate: {max_noise_rate: 0.1}\n",
        )
    )
    assert ds.name == "d"
    assert ds.line == 2
    assert isinstance(ds.source, SklearnSource)
    assert (ds.cv.folds, ds.cv.seed, ds.cv.jobs) == (5, 0, 1)
    assert ds.detection.ranked_by is RankedBy.GIVEN_VS_RIVAL
    assert ds.detection.filter_by is FilterBy.ESTIMATE
    assert ds.detection.count is CountMethod.AUTO
    assert ds.model.name is None
    assert ds.gate.max_noise_rate == 0.1


def test_quickdraw_paths_resolve_against_the_spec(tmp_path: Path) -> None:
    (tmp_path / "bits").mkdir()
    for name in ("cat", "dog"):
        (tmp_path / "bits" / f"{name}.npy").write_bytes(b"")
    (ds,) = load_spec(
        write(
            tmp_path,
            "datasets:\n"
            "  - name: qd\n"
            "    source: {format: quickdraw, dir: bits, classes: [cat, dog], limit: 10}\n"
            "    model: {name: walkthrough_cnn, epochs: 2}\n"
            "    gate: {max_noise_rate: 0.1, max_class_noise_rate: {dog: 0.2}}\n",
        )
    )
    assert isinstance(ds.source, QuickDrawSource)
    assert ds.resolve(ds.source.dir) == (tmp_path / "bits").resolve()
    assert ds.source.shape == (28, 28)
    assert ds.model.name == "walkthrough_cnn"
    assert ds.gate.max_class_noise_rate == {"dog": 0.2}


@pytest.mark.parametrize(
    ("text", "line", "key", "words"),
    [
        (
            "datasets:\n  - name: d\n    source: {format: sklearn, name: iris}\n"
            "    gate: {max_noise_rate: 0.1}\n    modle: {name: cnn}\n",
            5,
            "datasets[0].modle",
            "did you mean 'model'?",
        ),
        (
            "datasets:\n  - name: d\n    source: {format: sklearn, name: iris}\n"
            "    gate:\n      max_noise_rate: lots\n",
            5,
            "datasets[0].gate.max_noise_rate",
            "expected a number, got 'lots'",
        ),
        (
            "datasets:\n  - name: d\n    source: {format: sklearn, name: iris}\n"
            "    gate: {max_noise_rate: 1.5}\n",
            4,
            "datasets[0].gate.max_noise_rate",
            "must be >= 0 and <= 1",
        ),
        (
            "datasets:\n  - name: d\n    source: {format: sklearn, name: mnist}\n"
            "    gate: {max_noise_rate: 0.1}\n",
            3,
            "datasets[0].source.name",
            "'mnist' is not one of: digits, iris, wine, breast_cancer",
        ),
        (
            "datasets:\n  - name: d\n    source: {format: hdf5, path: x}\n"
            "    gate: {max_noise_rate: 0.1}\n",
            3,
            "datasets[0].source.format",
            "'hdf5' is not one of: quickdraw, npz, csv, sklearn, images, jsonl, parquet, text",
        ),
        (
            "datasets:\n  - name: d\n    source: {format: sklearn, name: iris}\n",
            2,
            "datasets[0].gate",
            "missing required key",
        ),
        (
            "datasets:\n  - name: d\n    source: {format: csv, path: nowhere.csv, label: y}\n"
            "    gate: {max_noise_rate: 0.1}\n",
            3,
            "datasets[0].source.path",
            "no file",
        ),
        (
            "datasets:\n  - name: d\n    source: {format: sklearn, name: iris}\n"
            "    gate: {max_noise_rate: 0.1}\n    detection: {ranked_by: margin}\n",
            5,
            "datasets[0].detection.ranked_by",
            "given_vs_rival, normalized_margin, self_confidence, confidence_weighted_entropy",
        ),
        (
            "datasets:\n  - name: d\n    source: {format: sklearn, name: iris}\n"
            "    gate: {max_noise_rate: 0.1}\n"
            "  - name: d\n    source: {format: sklearn, name: iris}\n"
            "    gate: {max_noise_rate: 0.1}\n",
            5,
            "datasets[1].name",
            "duplicate dataset name 'd'",
        ),
        (
            "datasets:\n  - name: d\n    source: {format: sklearn, name: iris}\n"
            "    gate: {max_noise_rate: 0.1}\n    model: {factory: 'not a factory'}\n",
            5,
            "datasets[0].model.factory",
            "does not match",
        ),
        (
            "datasets:\n  - name: d\n    source: {format: sklearn, name: iris}\n"
            "    gate: {max_noise_rate: 0.1}\n    cv: {folds: 1}\n",
            5,
            "datasets[0].cv.folds",
            "must be >= 2",
        ),
        (
            "datasets:\n  - name: d\n    source: {format: npz, path: data.labelquality.yaml,\n"
            "      classes: [a, b],"
            " flip: {rate: 0.1, pairs: {a: c}}}\n    gate: {max_noise_rate: 0.1}\n",
            4,
            "datasets[0].source.flip.pairs.a",
            "unknown class 'c'; classes: a, b",
        ),
        (
            "datasets:\n  - name: d\n    source: {format: npz, path: data.labelquality.yaml,\n"
            "      classes: [a, b],"
            " flip: {rate: 0.1, pairs: {a: a}}}\n    gate: {max_noise_rate: 0.1}\n",
            4,
            "datasets[0].source.flip.pairs.a",
            "a class cannot be flipped into itself",
        ),
    ],
)
def test_errors_name_file_line_key_and_what_is_valid(
    tmp_path: Path, text: str, line: int, key: str, words: str
) -> None:
    error = spec_error(tmp_path, text)
    assert (error.line, error.key) == (line, key)
    assert str(error).startswith(f"{tmp_path / 'data.labelquality.yaml'}:{line}: {key}: ")
    assert words in str(error)


def test_yaml_booleans_as_class_names_ask_for_quotes(tmp_path: Path) -> None:
    error = spec_error(
        tmp_path,
        "datasets:\n  - name: d\n    source: {format: npz, path: d.npz, classes: [no, yes]}\n"
        "    gate: {max_noise_rate: 0.1}\n",
    )
    assert error.key == "datasets[0].source.classes[0]"
    assert "expected a string, got False (quote it: 'no')" in str(error)


def test_invalid_yaml_names_its_line(tmp_path: Path) -> None:
    error = spec_error(tmp_path, "datasets:\n  - name: d\n    source: {format: [\n")
    assert error.line == 4
    assert "invalid YAML" in str(error)


def test_quickdraw_class_without_file(tmp_path: Path) -> None:
    (tmp_path / "bits").mkdir()
    (tmp_path / "bits" / "cat.npy").write_bytes(b"")
    error = spec_error(
        tmp_path,
        "datasets:\n  - name: qd\n    source:\n      format: quickdraw\n      dir: bits\n"
        "      classes: [cat, unicorn]\n    gate: {max_noise_rate: 0.1}\n",
    )
    assert (error.line, error.key) == (6, "datasets[0].source.classes")
    assert "unicorn.npy" in str(error)


def test_only_the_namespaced_pattern_is_a_spec() -> None:
    assert is_spec_file(Path("x/quickdraw.labelquality.yaml"))
    assert is_spec_file(Path("x/quickdraw.labelquality.yml"))
    assert not is_spec_file(Path("x/quickdraw.yaml"))
    assert not is_spec_file(Path("x/labelquality.yaml"))


def test_published_schema_is_the_generated_one() -> None:
    assert json.loads(SCHEMA_FILE.read_text()) == json_schema(), (
        "regenerate with: python -m pytest_labelquality.spec > "
        "pytest_labelquality/labelquality.schema.json"
    )


def test_schema_accepts_the_examples_and_rejects_a_typo() -> None:
    schema = json_schema()
    examples = sorted(EXAMPLES.glob("*/*.labelquality.yaml"))
    assert examples
    for path in examples:
        jsonschema.validate(yaml.safe_load(path.read_text()), schema)
    bad = {
        "datasets": [
            {
                "name": "d",
                "source": {"format": "sklearn", "name": "iris"},
                "gate": {"max_noise_rate": 0.1, "max_noise": 1},
            }
        ]
    }
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def test_the_docs_document_every_spec_key() -> None:
    """Every key of the published schema is in the reference (docs/spec.md), which
    docs/_generate/reference.py writes from the dataclasses (tests/test_docs.py checks it is
    current); this walk of the JSON Schema checks the generator from the other side."""
    reference = (Path(__file__).resolve().parents[1] / "docs" / "spec.md").read_text()

    def keys(schema: dict[str, object], prefix: str) -> set[str]:
        found: set[str] = set()
        variants = schema.get("oneOf") or schema.get("anyOf") or [schema]
        for variant in variants:  # type: ignore[union-attr]
            for name, sub in variant.get("properties", {}).items():
                key = f"{prefix}{name}" if prefix != "datasets." else name
                found.add(key)
                items = sub.get("items") if isinstance(sub, dict) else None
                target = items if isinstance(items, dict) and "properties" in items else sub
                found |= keys(target, f"{key}." if key != "datasets" else "datasets.")
        return found

    undocumented = {k for k in keys(json_schema(), "") if f"| `{k}` |" not in reference}
    assert undocumented == set(), "give their meaning in docs/_generate/spec_keys.yaml"
