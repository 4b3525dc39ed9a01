"""Bad inputs and faults, each with the kind of outcome a user can act on.

A corpus of bad specs, data files, cache states, model code and environments. Each case asserts
its outcome: a one-line error naming the file (and line and key, or row and path), a cache entry
recomputed with a warning and the same answer as a clean run, or a reported failure; never a
traceback of the plugin, and nothing on disk lost. Most cases run in-process against the domain
functions; a handful run pytest in a subprocess.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.datasets import load_iris

from pytest_labelquality.cache import ArrayCache
from pytest_labelquality.errors import (
    CacheError,
    DataError,
    ModelError,
    OutputError,
    SpecError,
    UserCodeError,
)
from pytest_labelquality.outputs import remove_stale, write_outputs, written
from pytest_labelquality.resources import cores, cpu_quota, current_load, set_passive_openmp
from pytest_labelquality.result import DatasetResult
from pytest_labelquality.runner import check_dataset
from pytest_labelquality.spec import DatasetSpec, load_spec

PLUGIN_FRAME = "pytest_labelquality" + os.sep  # a traceback line inside the plugin's own code
IRIS_X, IRIS_Y = load_iris(return_X_y=True)


def write_spec(folder: Path, body: str, name: str = "s") -> Path:
    path = folder / f"{name}.labelquality.yaml"
    path.write_text(body)
    return path


def iris_spec(folder: Path, *, model: str = "{name: logistic_regression}", extra: str = "") -> Path:
    np.savez(folder / "iris.npz", x=IRIS_X, y=IRIS_Y)
    return write_spec(
        folder,
        "datasets:\n  - name: iris\n    source: {format: npz, path: iris.npz}\n"
        f"    model: {model}\n    cv: {{folds: 3}}\n    gate: {{max_noise_rate: 0.1}}\n{extra}",
    )


def run(spec: DatasetSpec, cache: Path) -> dict[str, Any]:
    return check_dataset(spec, cache_dir=cache, progress=lambda _: None).to_json()


def answer(result: dict[str, Any]) -> tuple[Any, ...]:
    """What a run concluded: the flagged items, the estimate, the suggested classes."""
    return (
        [(f["index"], f["suggested"]) for f in result["flagged"]],
        result["noise"]["rate"],
        result["gate"]["passed"],
        result["oof_accuracy"],
    )


# --- specs -----------------------------------------------------------------------------------

GOOD_DATASET = """\
datasets:
  - name: iris
    source: {format: npz, path: iris.npz}
    gate: {max_noise_rate: 0.1}
"""

#: (what, the spec's text, the line of the error, text the message must hold)
BAD_SPECS = [
    ("negative cv seed", "    cv: {seed: -1}\n", 5, "datasets[0].cv.seed: -1 is out of range"),
    ("cv seed past numpy's", "    cv: {seed: 4294967296}\n", 5, "must be >= 0 and <= 4294967295"),
    ("negative flip seed", None, 3, "datasets[0].source.flip.seed: -3 is out of range"),
    (
        "epochs on a linear model",
        "    model: {name: logistic_regression, epochs: 3}\n",
        5,
        "datasets[0].model.epochs: applies to Keras models",
    ),
    (
        "batch size on the default model",
        "    model: {batch_size: 32}\n",
        5,
        "not to the default model",
    ),
    (
        "learning rate on a forest",
        "    model:\n      name: random_forest\n      learning_rate: 0.1\n",
        7,
        "model.learning_rate: applies to Keras models",
    ),
    (
        "params on a Keras CNN",
        "    model: {name: cnn, params: {C: 1}}\n",
        5,
        "model.params: cnn takes no params",
    ),
    ("a date YAML cannot build", "    cv: {seed: 2020-13-45}\n", 5, "cannot read this value"),
    ("an infinite threshold", None, 4, "gate.max_noise_rate: inf is out of range"),
    (
        "an unknown YAML tag",
        "    model: !!python/object:os.system {}\n",
        5,
        "cannot read this value",
    ),
    ("a list as the format", None, 3, "source.format: ['npz'] is not one of"),
    ("zero jobs", "    cv: {jobs: 0}\n", 5, "cv.jobs: 0 is out of range"),
    ("a mapping as a key", "    ? {a: 1}\n    : 2\n", 5, "keys must be strings"),
    (
        "a factory that is not module:callable",
        "    model: {factory: 'no colon'}\n",
        5,
        "model.factory: 'no colon' does not match",
    ),
    (
        "name and factory both",
        "    model: {name: cnn, factory: 'm:f'}\n",
        5,
        "set name or factory, not both",
    ),
    ("a huge number for a rate", None, 4, "too large for a number"),
]


def _bad_spec_text(what: str, extra: str | None) -> str:
    if extra is not None:
        return GOOD_DATASET + extra
    lines = GOOD_DATASET.splitlines(keepends=True)
    if what == "negative flip seed":
        lines[2] = "    source: {format: npz, path: iris.npz, flip: {rate: 0.1, seed: -3}}\n"
    elif what == "an infinite threshold":
        lines[3] = "    gate: {max_noise_rate: .inf}\n"
    elif what == "a list as the format":
        lines[2] = "    source: {format: [npz], path: iris.npz}\n"
    elif what == "a huge number for a rate":
        lines[3] = f"    gate: {{max_noise_rate: {10**400}}}\n"
    return "".join(lines)


@pytest.mark.parametrize(
    ("what", "extra", "line", "message"), BAD_SPECS, ids=[c[0] for c in BAD_SPECS]
)
def test_bad_spec_is_one_located_error(
    tmp_path: Path, what: str, extra: str | None, line: int, message: str
) -> None:
    np.savez(tmp_path / "iris.npz", x=IRIS_X, y=IRIS_Y)
    path = write_spec(tmp_path, _bad_spec_text(what, extra))
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    text = str(caught.value)
    assert text.startswith(f"{path}:{line}: ")
    assert message in text
    assert "\n" not in text


@pytest.mark.parametrize(
    ("what", "content", "message"),
    [
        ("bytes that are not UTF-8", b"datasets:\n  - name: \xff\xfe\n", "not UTF-8 text"),
        ("a control character", b"datasets:\n  - name: a\x07b\n", "invalid YAML"),
        ("a recursive alias", b"datasets: &a [*a]\n", "expected a mapping, got a list"),
        ("a tab for indentation", b"datasets:\n\t- name: a\n", "invalid YAML"),
    ],
)
def test_unreadable_spec_text_is_one_error_naming_the_file(
    tmp_path: Path, what: str, content: bytes, message: str
) -> None:
    path = tmp_path / "x.labelquality.yaml"
    path.write_bytes(content)
    with pytest.raises(SpecError, match=message) as caught:
        load_spec(path)
    assert str(caught.value).startswith(f"{path}:")


SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(["npz", "csv", "quickdraw", "sklearn", "iris", "cnn", "x:y", "iris.npz"])
)
KEYS = st.sampled_from(
    [
        "datasets",
        "name",
        "source",
        "format",
        "path",
        "gate",
        "max_noise_rate",
        "model",
        "cv",
        "seed",
        "folds",
        "flip",
        "rate",
        "epochs",
        "params",
        "classes",
        "detection",
        "max_class_noise_rate",
        "factory",
        "dir",
        "limit",
        "shape",
        "jobs",
        "count",
    ]
) | st.text(max_size=8)
YAML_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=5),
    max_leaves=25,
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=st.dictionaries(KEYS, YAML_VALUES, max_size=4) | YAML_VALUES)
def test_random_yaml_never_raises_anything_but_a_spec_error(document: Any) -> None:
    with tempfile.TemporaryDirectory() as folder:
        np.savez(Path(folder) / "iris.npz", x=IRIS_X[:10], y=IRIS_Y[:10])
        path = write_spec(Path(folder), yaml.safe_dump(document, allow_unicode=False))
        error = None
        try:
            load_spec(path)
        except SpecError as exc:
            error = str(exc)
        assert error is None or error.startswith(f"{path}:")


VALID_SPEC: dict[str, Any] = {
    "datasets": [
        {
            "name": "iris",
            "source": {"format": "npz", "path": "iris.npz", "flip": {"rate": 0.1, "seed": 1}},
            "model": {"name": "random_forest", "params": {"n_estimators": 5}},
            "cv": {"folds": 3, "seed": 0, "jobs": 1},
            "detection": {"ranked_by": "self_confidence", "count": "auto"},
            "gate": {"max_noise_rate": 0.1, "max_class_noise_rate": {"0": 0.2}},
        }
    ]
}


def _slots(node: Any) -> list[tuple[Any, Any]]:
    """Every (container, key or index) below ``node``: the places a value can be replaced."""
    pairs = list(node.items()) if isinstance(node, dict) else list(enumerate(node))
    out = []
    for key, value in pairs:
        out.append((node, key))
        if isinstance(value, dict | list):
            out += _slots(value)
    return out


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(where=st.integers(0, 10**6), value=YAML_VALUES, new_key=st.none() | KEYS)
def test_a_valid_spec_with_one_value_replaced_loads_or_is_one_spec_error(
    where: int, value: Any, new_key: str | None
) -> None:
    document = copy.deepcopy(VALID_SPEC)
    slots = _slots(document)
    container, key = slots[where % len(slots)]
    if new_key is not None and isinstance(container, dict):
        key = new_key
    container[key] = value
    with tempfile.TemporaryDirectory() as folder:
        np.savez(Path(folder) / "iris.npz", x=IRIS_X[:10], y=IRIS_Y[:10])
        path = write_spec(Path(folder), yaml.safe_dump(document))
        with contextlib.suppress(SpecError):
            load_spec(path)


@settings(max_examples=60, deadline=None)
@given(position=st.integers(0, 10_000), junk=st.binary(min_size=1, max_size=6))
def test_a_valid_spec_with_random_bytes_inside_is_read_or_refused_cleanly(
    position: int, junk: bytes
) -> None:
    text = (
        GOOD_DATASET + "    cv: {folds: 3, seed: 7}\n    model: {name: random_forest}\n"
    ).encode()
    at = position % len(text)
    with tempfile.TemporaryDirectory() as folder:
        np.savez(Path(folder) / "iris.npz", x=IRIS_X[:10], y=IRIS_Y[:10])
        path = Path(folder) / "s.labelquality.yaml"
        path.write_bytes(text[:at] + junk + text[at:])
        with contextlib.suppress(SpecError):
            load_spec(path)


# --- data files ------------------------------------------------------------------------------


def _npz(**arrays: Any) -> Callable[[Path], str]:
    def write(folder: Path) -> str:
        np.savez(folder / "d.npz", **arrays)
        return "{format: npz, path: d.npz}"

    return write


def _csv(text: str | bytes) -> Callable[[Path], str]:
    def write(folder: Path) -> str:
        path = folder / "d.csv"
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        return "{format: csv, path: d.csv, label: label}"

    return write


def _quickdraw(cat: Any, dog: Any | bytes) -> Callable[[Path], str]:
    def write(folder: Path) -> str:
        (folder / "qd").mkdir()
        np.save(folder / "qd" / "cat.npy", cat)
        if isinstance(dog, bytes):
            (folder / "qd" / "dog.npy").write_bytes(dog)
        else:
            np.save(folder / "qd" / "dog.npy", dog)
        return "{format: quickdraw, dir: qd, classes: [cat, dog]}"

    return write


def _damaged_npz(change: Callable[[bytes], bytes] | None) -> Callable[[Path], str]:
    """An iris ``.npz`` with its bytes changed (None: a ``.npy`` of the features instead)."""

    def write(folder: Path) -> str:
        path = folder / "d.npz"
        if change is None:
            with path.open("wb") as handle:
                np.save(handle, IRIS_X)
        else:
            np.savez(path, x=IRIS_X, y=IRIS_Y)
            path.write_bytes(change(path.read_bytes()))
        return "{format: npz, path: d.npz}"

    return write


DRAWINGS = np.zeros((12, 784), np.uint8)
BAD_DATA = [
    ("npz without labels", _npz(x=IRIS_X), "d.npz: no array 'y'"),
    ("npz with pickled labels", _npz(x=IRIS_X, y=np.array([{}] * 150, dtype=object)), "d.npz"),
    (
        "npz with no items",
        _npz(x=IRIS_X[:0], y=IRIS_Y[:0]),
        "d.npz: the feature array 'x' holds no items",
    ),
    (
        "npz with text features",
        _npz(x=np.full((150, 2), "abc"), y=IRIS_Y),
        "d.npz: the features are not numbers",
    ),
    (
        "npz with infinite features",
        _npz(x=np.where(IRIS_X > 7, np.inf, IRIS_X), y=IRIS_Y),
        "NaN or infinite",
    ),
    ("npz with 2-D labels", _npz(x=IRIS_X, y=np.stack([IRIS_Y, IRIS_Y], 1)), "labels must be 1-D"),
    ("npz with fewer labels", _npz(x=IRIS_X, y=IRIS_Y[:100]), "mismatched lengths"),
    ("npz with one class", _npz(x=IRIS_X, y=np.zeros(150)), "at least 2"),
    (
        "npz with a missing label",
        _npz(x=IRIS_X, y=np.where(np.arange(150) == 7, np.nan, IRIS_Y)),
        "d.npz: 1 item(s) have no label (NaN), e.g. row 7",
    ),
    ("csv that is not UTF-8", _csv(b"a,b,label\n1,\xff,x\n"), "d.csv: not UTF-8 text"),
    ("csv with a short row", _csv("a,b,label\n1,2,x\n3,4\n"), "d.csv:3: 2 fields"),
    (
        "csv with an empty number",
        _csv("a,label\n1,x\n,y\n"),
        "d.csv: 1 item(s) have NaN or infinite features",
    ),
    ("csv with only a header", _csv("a,b,label\n"), "d.csv"),
    ("csv with an overflowing number", _csv("a,label\n" + "1e999,x\n2,y\n" * 4), "NaN or infinite"),
    (
        "drawings as floats",
        _quickdraw(DRAWINGS.astype(float), DRAWINGS),
        "cat.npy: expected a 2-D uint8",
    ),
    (
        "a truncated drawing file",
        _quickdraw(DRAWINGS, b"\x93NUMPY\x01\x00v\x00{'descr'"),
        "dog.npy",
    ),
    ("a class without drawings", _quickdraw(DRAWINGS, DRAWINGS[:0]), "class 'dog' has 0"),
    ("an empty drawing file", _quickdraw(DRAWINGS, b""), "dog.npy: not a readable NumPy .npy file"),
    (
        "a truncated npz",
        _damaged_npz(lambda data: data[: len(data) // 2]),
        "d.npz: not a readable .npz file (truncated or damaged",
    ),
    (
        "an npz with a damaged member",
        _damaged_npz(lambda data: _flip_byte(data, len(data) // 3)),
        "d.npz: not a readable .npz file (truncated or damaged: Bad CRC-32",
    ),
    ("an empty npz", _damaged_npz(lambda data: b""), "d.npz: not a readable .npz file (the file"),
    ("one .npy array as the npz", _damaged_npz(None), "d.npz: one .npy array, not a .npz archive"),
]


@pytest.mark.parametrize(("what", "write", "message"), BAD_DATA, ids=[c[0] for c in BAD_DATA])
def test_unusable_data_is_one_error_naming_the_file(
    tmp_path: Path, what: str, write: Callable[[Path], str], message: str
) -> None:
    source = write(tmp_path)
    path = write_spec(
        tmp_path,
        f"datasets:\n  - name: d\n    source: {source}\n    gate: {{max_noise_rate: 0.1}}\n",
    )
    (spec,) = load_spec(path)
    with pytest.raises(DataError) as caught:
        run(spec, tmp_path / "cache")
    assert message in str(caught.value)
    assert str(tmp_path) in str(caught.value)
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*.npz"))


# --- cache states ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A spec over iris with 10% flips, its warm cache and its clean answer, made once."""
    folder = tmp_path_factory.mktemp("pristine")
    path = iris_spec(folder, extra="")
    text = path.read_text().replace("path: iris.npz}", "path: iris.npz, flip: {rate: 0.1}}")
    path.write_text(text)
    (spec,) = load_spec(path)
    return folder, run(spec, folder / "cache")


@pytest.fixture
def warm(
    pristine: tuple[Path, dict[str, Any]], tmp_path: Path
) -> tuple[DatasetSpec, Path, dict[str, Any]]:
    """A copy of the pristine project: its spec, its cache folder and the clean answer."""
    folder, clean = pristine
    shutil.copytree(folder, tmp_path / "p")
    (spec,) = load_spec(tmp_path / "p" / "s.labelquality.yaml")
    return spec, tmp_path / "p" / "cache", clean


def _entries(cache: Path, kind: str) -> list[Path]:
    """The cache's fold entries (``fold``) or detection entries (``detection``)."""
    marker = {"fold": "test", "detection": "scores"}[kind]
    out = []
    for path in sorted(cache.rglob("*.npz")):
        with np.load(path) as archive:
            if marker in archive.files:
                out.append(path)
    return out


def _rewrite(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    """Rewrite an entry through the cache itself (its checksum valid), changed by ``change``."""
    with np.load(path) as archive:
        arrays = {k: archive[k] for k in archive.files if k != "__digest__"}
    change(arrays)
    ArrayCache(path.parent.parent).save(path.stem, arrays)


def _drop(name: str) -> Callable[[dict[str, Any]], None]:
    return lambda arrays: arrays.pop(name)


def _set(name: str, value: Callable[[Any], Any]) -> Callable[[dict[str, Any]], None]:
    def change(arrays: dict[str, Any]) -> None:
        arrays[name] = value(arrays[name])

    return change


FOLD_FAULTS: list[tuple[str, Callable[[Path], None]]] = [
    ("a fold entry without its probabilities", lambda p: _rewrite(p, _drop("probs"))),
    (
        "a fold entry with fewer rows than its fold",
        lambda p: _rewrite(p, _set("probs", lambda a: a[:-3])),
    ),
    ("a fold entry with a class too few", lambda p: _rewrite(p, _set("probs", lambda a: a[:, :2]))),
    (
        "fold probabilities as integers",
        lambda p: _rewrite(p, _set("probs", lambda a: a.astype(np.int64))),
    ),
    ("fold probabilities that are NaN", lambda p: _rewrite(p, _set("probs", lambda a: a * np.nan))),
    ("fold indices past the dataset", lambda p: _rewrite(p, _set("test", lambda a: a + 1000))),
    ("a fold holding other labels", lambda p: _rewrite(p, _set("labels", lambda a: (a + 1) % 3))),
    (
        "a fold holding another fold's items",
        lambda p: _rewrite(p, _set("test", lambda a: np.sort(a)[::-1] * 0 + a[0])),
    ),
    ("a truncated fold entry", lambda p: p.write_bytes(p.read_bytes()[:200])),
    (
        "a fold entry with one byte changed",
        lambda p: p.write_bytes(_flip_byte(p.read_bytes(), len(p.read_bytes()) // 2)),
    ),
    (
        "a folder where a fold entry belongs",
        lambda p: (p.unlink(), p.mkdir(), (p / "x").write_text("x")),
    ),
    ("an empty fold entry", lambda p: p.write_bytes(b"")),
]
DETECTION_FAULTS: list[tuple[str, Callable[[Path], None]]] = [
    ("a detection entry without its metadata", lambda p: _rewrite(p, _drop("meta"))),
    (
        "a detection entry with garbage metadata",
        lambda p: _rewrite(p, _set("meta", lambda a: np.array("{not json"))),
    ),
    (
        "a detection flagging items past the dataset",
        lambda p: _rewrite(p, _set("flagged", lambda a: np.append(a, 10_000))),
    ),
    (
        "a detection suggesting a class that does not exist",
        lambda p: _rewrite(p, _set("suggested", lambda a: a + 5)),
    ),
    ("a detection for fewer items", lambda p: _rewrite(p, _set("scores", lambda a: a[:10]))),
    ("a detection entry made of text", lambda p: p.write_text("hello")),
]


def _flip_byte(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]


@pytest.mark.parametrize(
    ("what", "fault"),
    FOLD_FAULTS + DETECTION_FAULTS,
    ids=[c[0] for c in FOLD_FAULTS + DETECTION_FAULTS],
)
def test_a_bad_cache_entry_is_recomputed_with_a_warning_and_the_same_answer(
    warm: tuple[DatasetSpec, Path, dict[str, Any]], what: str, fault: Callable[[Path], None]
) -> None:
    spec, cache, clean = warm
    kind = "detection" if (what, fault) in DETECTION_FAULTS else "fold"
    target = _entries(cache, kind)[0]
    if kind == "fold":  # the detection must miss for the folds to be read
        for entry in _entries(cache, "detection"):
            entry.unlink()
    folds = [p for p in _entries(cache, "fold") if p != target]
    others = {p: p.read_bytes() for f in folds for p in f.parent.glob(f"{f.stem}.*")}
    fault(target)
    result = run(spec, cache)
    assert answer(result) == answer(clean)
    (warning,) = result["cache"]["repaired"]
    assert str(target) in warning
    assert "recomputed" in warning
    for path, content in others.items():  # the other folds' entries and models are untouched
        assert path.read_bytes() == content, path
    assert run(spec, cache)["cache"]["status"] == "hit"


def test_unreadable_fold_models_mean_a_full_run_not_a_guess(tmp_path: Path) -> None:
    (spec,) = load_spec(iris_spec(tmp_path))
    run(spec, tmp_path / "cache")
    for model in (tmp_path / "cache").rglob("*.joblib"):
        model.write_bytes(b"not a model")
    grown = np.vstack([IRIS_X, IRIS_X[:1] + 0.01])  # one new item, for the fold models to score
    np.savez(tmp_path / "iris.npz", x=grown, y=np.append(IRIS_Y, IRIS_Y[0]))
    result = run(spec, tmp_path / "cache")
    assert result["cache"]["status"] == "miss"
    assert any("without a readable model" in w for w in result["cache"]["repaired"])
    assert answer(result) == answer(run(spec, tmp_path / "fresh"))


def test_a_file_where_a_cache_shard_belongs_is_replaced(
    warm: tuple[DatasetSpec, Path, dict[str, Any]],
) -> None:
    spec, cache, clean = warm
    shard = _entries(cache, "detection")[0].parent
    shutil.rmtree(shard)
    shard.write_text("not a folder")
    assert answer(run(spec, cache)) == answer(clean)
    assert shard.is_dir()


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    which=st.integers(0, 20),
    cut=st.floats(0, 1),
    flips=st.lists(st.tuples(st.floats(0, 1), st.integers(1, 255)), max_size=4),
)
def test_random_corruption_of_cache_entries_never_gives_a_wrong_answer(
    pristine: tuple[Path, dict[str, Any]], which: int, cut: float, flips: list[tuple[float, int]]
) -> None:
    folder, clean = pristine
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / "p"
        shutil.copytree(folder, copy)
        entries = sorted((copy / "cache").rglob("*.npz"))
        target = entries[which % len(entries)]
        data = bytearray(target.read_bytes())
        for where, mask in flips:
            data[int(where * (len(data) - 1))] ^= mask
        target.write_bytes(bytes(data[: max(1, int(cut * len(data)))] if cut < 0.5 else data))
        (spec,) = load_spec(copy / "s.labelquality.yaml")
        assert answer(run(spec, copy / "cache")) == answer(clean)


def _file_as_cache(folder: Path) -> Path:
    (folder / "cache").write_text("a file")
    return folder / "cache"


def _cache_under_a_file(folder: Path) -> Path:
    (folder / "f").write_text("a file")
    return folder / "f" / "cache"


def _read_only_cache(folder: Path) -> Path:
    (folder / "cache").mkdir(mode=0o500)
    return folder / "cache"


@pytest.mark.parametrize("make", [_file_as_cache, _cache_under_a_file, _read_only_cache])
def test_an_unusable_cache_folder_is_one_clear_error(
    tmp_path: Path, make: Callable[[Path], Path]
) -> None:
    if make is _read_only_cache and hasattr(os, "geteuid") and os.geteuid() == 0:
        pytest.skip("root writes anywhere")
    (spec,) = load_spec(iris_spec(tmp_path))
    cache = make(tmp_path)
    try:
        with pytest.raises(CacheError) as caught:
            run(spec, cache)
    finally:
        if cache.is_dir():
            cache.chmod(0o700)
    text = str(caught.value)
    assert text.startswith("cannot use the cache folder ")
    assert str(tmp_path) in text
    assert "--label-quality-cache-dir" in text
    assert "\n" not in text


FULL_DISK = """
import resource, signal, sys
from pathlib import Path
from pytest_labelquality.errors import LabelQualityError
from pytest_labelquality.runner import check_dataset
from pytest_labelquality.spec import load_spec

(spec,) = load_spec(Path(sys.argv[1]))
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))
try:
    check_dataset(spec, cache_dir=Path(sys.argv[2]), progress=lambda _: None)
except LabelQualityError as exc:
    print(type(exc).__name__, exc)
"""


@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="needs POSIX file-size limits")
def test_a_full_disk_is_one_cache_error(tmp_path: Path) -> None:
    spec = iris_spec(tmp_path)
    cache = tmp_path / "cache"
    command = [sys.executable, "-c", FULL_DISK, str(spec), str(cache)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.startswith(f"CacheError cannot write the cache entry {cache}")
    assert "File too large" in done.stdout
    assert not list(cache.rglob(".tmp-*"))  # no half-written entry left behind


def test_data_removed_after_collection_is_one_error_naming_it(tmp_path: Path) -> None:
    (spec,) = load_spec(iris_spec(tmp_path))
    (tmp_path / "iris.npz").unlink()
    with pytest.raises(DataError, match=f"cannot read {tmp_path / 'iris.npz'}: No such file"):
        run(spec, tmp_path / "cache")


# --- result files ----------------------------------------------------------------------------


def _folder_at(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


def _file_at(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("a file")
    return path


OUTPUT_FAULTS = {
    "the HTML path is a folder": ("html", lambda t: _folder_at(t / "index.html"), "index.html"),
    "the JSON lies under a file": ("json", lambda t: _file_at(t / "f") / "r.json", "f"),
    "the step summary is a folder": ("summary", lambda t: _folder_at(t / "summary"), "summary"),
    "the Markdown lies under a file": ("markdown", lambda t: _file_at(t / "m") / "x.md", "m"),
}


@pytest.mark.parametrize("what", sorted(OUTPUT_FAULTS))
def test_a_result_file_that_cannot_be_written_is_one_error_naming_it(
    pristine: tuple[Path, dict[str, Any]], tmp_path: Path, what: str
) -> None:
    kind, make, name = OUTPUT_FAULTS[what]
    paths = {"json": tmp_path / "out" / "r.json", "html": tmp_path / "out" / "r.html"}
    paths[kind] = make(tmp_path)
    with pytest.raises(OutputError) as caught, written():
        write_outputs(
            [DatasetResult.from_json(pristine[1])], paths, max_suspects=5, repository=tmp_path
        )
    text = str(caught.value)
    assert text.startswith(f"cannot write {tmp_path / name}")
    assert "choose another path" in text
    assert "\n" not in text


def test_stale_result_files_go_but_folders_and_the_job_summary_stay(tmp_path: Path) -> None:
    old = _file_at(tmp_path / "r" / "label-quality.json")
    folder = _folder_at(tmp_path / "index.html")
    summary = _file_at(tmp_path / "step_summary")  # GitHub's file: earlier steps wrote to it
    paths = {"json": old, "html": folder, "markdown": tmp_path / "absent.md", "summary": summary}
    remove_stale(paths)
    assert not old.exists()
    assert folder.is_dir()
    assert summary.read_text() == "a file"


# --- user model code -------------------------------------------------------------------------

FACTORY_HEAD = """\
import numpy as np
from sklearn.linear_model import LogisticRegression


class Wrapped(LogisticRegression):
    def predict_proba(self, x):
        return self.change(super().predict_proba(x))
"""

#: (what, the factory module's body, the error, text the message must hold, a user frame shown)
BAD_FACTORIES = [
    ("a syntax error", "def make(:\n    pass\n", UserCodeError, "SyntaxError", True),
    (
        "an error on import",
        "raise RuntimeError('no GPU here')\n",
        UserCodeError,
        "RuntimeError: no GPU here",
        True,
    ),
    (
        "an error in the factory",
        "def make():\n    return 1 / 0\n",
        UserCodeError,
        "ZeroDivisionError",
        True,
    ),
    ("no such callable", "def other():\n    pass\n", ModelError, "has no callable 'make'", False),
    (
        "a factory returning None",
        "def make():\n    return None\n",
        ModelError,
        "returned NoneType",
        False,
    ),
    (
        "fit raises",
        "class M:\n    def predict_proba(self, x): ...\n    def fit(self, x, y):\n"
        "        raise ValueError('bad fit')\ndef make():\n    return M()\n",
        UserCodeError,
        "ValueError: bad fit",
        True,
    ),
    (
        "no classes_ after fit",
        "class M:\n    def fit(self, x, y): return self\n"
        "    def predict_proba(self, x): return np.full((len(x), 3), 1 / 3)\n"
        "def make():\n    return M()\n",
        ModelError,
        "has no classes_ after fit",
        False,
    ),
    (
        "a column too few",
        "def make():\n    m = Wrapped()\n    m.change = lambda p: p[:, :2]\n    return m\n",
        ModelError,
        "expected [50, 3]",
        False,
    ),
    (
        "a column too many",
        "def make():\n    m = Wrapped()\n"
        "    m.change = lambda p: np.hstack([p, p[:, :1]])\n    return m\n",
        ModelError,
        "predict_proba returned an array of shape [50, 4]",
        False,
    ),
    (
        "NaN probabilities",
        "def make():\n    m = Wrapped()\n    m.change = lambda p: p * np.nan\n    return m\n",
        ModelError,
        "expected probabilities between 0 and 1",
        False,
    ),
    (
        "rows that do not sum to 1",
        "def make():\n    m = Wrapped()\n    m.change = lambda p: p * 0.5\n    return m\n",
        ModelError,
        "rows must sum to 1",
        False,
    ),
    (
        "classes_ that are not label indices",
        "def make():\n    m = Wrapped()\n    m.change = lambda p: p\n"
        "    names = np.array(['a', 'b', 'c'])\n"
        "    m.fit = lambda x, y: (LogisticRegression.fit(m, x, names[y]), m)[1]\n    return m\n",
        ModelError,
        "expected distinct label indices",
        False,
    ),
]


@pytest.mark.parametrize(
    ("what", "body", "error", "message", "frames"), BAD_FACTORIES, ids=[c[0] for c in BAD_FACTORIES]
)
def test_a_bad_factory_is_named_with_the_users_own_frames(
    tmp_path: Path, what: str, body: str, error: type[Exception], message: str, frames: bool
) -> None:
    module = f"factory_{abs(hash(what))}"
    (tmp_path / f"{module}.py").write_text(FACTORY_HEAD + body)
    (spec,) = load_spec(iris_spec(tmp_path, model=f"{{factory: '{module}:make'}}"))
    with pytest.raises(error) as caught:
        run(spec, tmp_path / "cache")
    text = str(caught.value)
    assert f"model.factory '{module}:make'" in text
    assert message in text
    assert "\n" not in text
    if frames:
        assert isinstance(caught.value, UserCodeError)
        assert f"{module}.py" in caught.value.frames
        assert PLUGIN_FRAME not in caught.value.frames


# --- settings and environments ----------------------------------------------------------------


def test_cgroup_quota_and_load_bound_the_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert cpu_quota(tmp_path) == 1.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cpu_quota(tmp_path) is None
    assert cpu_quota(tmp_path / "absent") is None
    monkeypatch.delenv("PYTEST_XDIST_WORKER_COUNT", raising=False)
    monkeypatch.delenv("LABEL_QUALITY_THREADS", raising=False)
    idle = cores(load=0.0)
    assert idle >= 1
    assert cores(load=idle + 0.5) == idle  # a run's own threads do not make it shrink
    assert 1 <= cores(load=idle + 4.0) < max(2, idle)  # four busy processes beside the run
    assert cores(load=idle * 50.0) == 1
    assert cores(load=idle * 50.0, spinning=False) == idle  # sleeping threads keep their share
    monkeypatch.setenv("LABEL_QUALITY_THREADS", "3")
    assert cores(load=100.0) == 3
    (tmp_path / "loadavg").write_text("0.00 0.00 0.00 7/300 4242\n")  # six others runnable now
    assert current_load(tmp_path / "loadavg") >= 6.0
    (tmp_path / "loadavg").write_text("garbage")
    assert current_load(tmp_path / "loadavg") == pytest.approx(os.getloadavg()[0], abs=1.0)


def test_openmp_threads_sleep_unless_the_runtime_loaded_first(tmp_path: Path) -> None:
    maps = tmp_path / "maps"
    maps.write_text("7f00-7f01 r-xp 0 0:0 0 /usr/lib/libc.so.6\n")
    environ: dict[str, str] = {}
    assert set_passive_openmp(environ, maps)
    assert environ == {"OMP_WAIT_POLICY": "PASSIVE"}
    environ = {"OMP_WAIT_POLICY": "active"}  # the user's choice stays
    assert not set_passive_openmp(environ, maps)
    assert environ == {"OMP_WAIT_POLICY": "active"}
    maps.write_text("7f00-7f01 r-xp 0 0:0 0 /site-packages/scikit_learn.libs/libgomp-a34b3233.so\n")
    environ = {}
    assert not set_passive_openmp(environ, maps)  # too late: the runtime read its settings
    assert not environ
    assert not set_passive_openmp({}, tmp_path / "absent")


RUN_PROBE = """
import json, pytest

def pytest_sessionfinish(session, exitstatus):
    if not hasattr(session.config, "workerinput"):
        with open("exit.json", "w") as handle:
            json.dump(int(exitstatus), handle)
"""


def _iris_project(pytester: pytest.Pytester, names: tuple[str, ...] = ("iris",)) -> None:
    np.savez(pytester.path / "iris.npz", x=IRIS_X, y=IRIS_Y)
    body = "".join(
        f"  - name: {name}\n    source: {{format: npz, path: iris.npz}}\n"
        f"    model: {{name: logistic_regression}}\n    cv: {{folds: 3}}\n"
        f"    gate: {{max_noise_rate: 0.1}}\n"
        for name in names
    )
    pytester.makefile(".labelquality.yaml", iris="datasets:\n" + body)


def _no_plugin_traceback(output: str) -> None:
    assert PLUGIN_FRAME not in output.replace("pytest_labelquality" + os.sep + "labelquality", "")
    assert "Traceback" not in output


def test_every_error_of_one_run_is_one_line_and_the_json_says_not_passed(
    pytester: pytest.Pytester,
) -> None:
    """A bad spec, bad data, a raising factory and a good dataset in one run."""
    _iris_project(pytester)
    np.savez(pytester.path / "short.npz", x=IRIS_X, y=IRIS_Y[::30])
    pytester.makefile(
        ".labelquality.yaml",
        bad="datasets:\n  - name: b\n    source: {format: npz, path: iris.npz}\n"
        "    cv: {seed: -1}\n    gate: {max_noise_rate: 0.1}\n",
        data="datasets:\n  - name: short\n    source: {format: npz, path: short.npz}\n"
        "    gate: {max_noise_rate: 0.1}\n"
        "  - name: raising\n    source: {format: npz, path: iris.npz}\n"
        "    model: {factory: 'user_models:make'}\n    cv: {folds: 3}\n"
        "    gate: {max_noise_rate: 0.1}\n",
    )
    pytester.makepyfile(
        user_models="def make():\n    return helper()\n\n"
        "def helper():\n    raise KeyError('weights')\n"
    )
    stale = pytester.path / "label-quality-report"
    stale.mkdir()
    (stale / "label-quality.json").write_text(json.dumps({"passed": True, "datasets": []}))
    result = pytester.runpytest_subprocess(
        "--label-quality", "--continue-on-collection-errors", "--label-quality-markdown=summary.md"
    )
    result.assert_outcomes(passed=1, failed=2, errors=1)
    output = result.stdout.str()
    assert "3 datasets or spec files could not be checked" in output
    assert "bad.labelquality.yaml:4: datasets[0].cv.seed: -1 is out of range" in output
    assert "data.labelquality.yaml:2: dataset 'short': " in output
    assert "short.npz: mismatched lengths" in output
    assert (
        "model.factory 'user_models:make': building the model raised KeyError: 'weights'" in output
    )
    assert 'user_models.py", line 5, in helper' in output
    _no_plugin_traceback(output)
    document = json.loads((stale / "label-quality.json").read_text())
    assert document["passed"] is False
    assert {e["test"].split("::")[-1] for e in document["errors"]} >= {"short", "raising"}
    assert [d["name"] for d in document["datasets"]] == ["iris"]
    # the reviewer's page and the pull-request comment name them too, and say FAIL
    summary = (pytester.path / "summary.md").read_text()
    assert summary.startswith("## Label quality: FAIL")
    assert "3 datasets or spec files could not be checked" in summary
    assert "1 of 4 datasets passed (3 could not be checked)." in summary.splitlines()
    assert "data.labelquality.yaml::short: " in summary
    html = (stale / "index.html").read_text()
    assert 'id="overall-verdict">FAIL<' in html
    assert "could not be checked" in html
    assert "1 of 4 datasets passed (3 could not be checked)." in html
    assert "short.npz: mismatched lengths" in html


def test_outputs_that_cannot_be_written_fail_the_run_but_the_verdict_is_printed(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    _iris_project(pytester)
    (pytester.path / "report.html").mkdir()
    (pytester.path / "summary").mkdir()
    baseline = pytester.path / "iris.labelquality.baseline.json"
    result = pytester.runpytest_subprocess(
        "--label-quality",
        "--label-quality-html=report.html",
        "--label-quality-markdown=summary/x/y.md",
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=1)
    output = result.stdout.str()
    assert [x for x in output.splitlines() if x.startswith("iris ") and "PASS" in x]
    (line,) = [x for x in output.splitlines() if x.startswith("label-quality: cannot write")]
    assert "report.html" in line
    assert "choose another path" in line
    assert not baseline.exists()
    _no_plugin_traceback(output)


@pytest.mark.parametrize(
    ("options", "named"),
    [
        (["--label-quality-json=out.txt", "--label-quality-html=out.txt"], "json.*html"),
        (
            ["--label-quality-html=r/index.html", "--label-quality-markdown=r/./index.html"],
            "html.*markdown",
        ),
        (["--label-quality-markdown=label-quality-report/label-quality.json"], "json.*markdown"),
        (["--label-quality-markdown=r/summary.md"], "markdown and \\$GITHUB_STEP_SUMMARY"),
    ],
    ids=[
        "json-html",
        "html-markdown-spelled-differently",
        "markdown-on-the-default-json",
        "markdown-on-the-job-summary",
    ],
)
def test_two_result_files_at_one_path_are_a_usage_error_before_any_work(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, options: list[str], named: str
) -> None:
    _iris_project(pytester)
    (pytester.path / "r").mkdir()
    # GitHub's job summary is a result file too: overwriting it would erase earlier steps'
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(pytester.path / "r" / "summary.md"))
    result = pytester.runpytest_subprocess("--label-quality", *options)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.re_match_lines([rf".*--label-quality-{named}.* both name .*: give each result"])
    assert not (pytester.path / "label-quality-report").exists()  # nothing ran, nothing written
    _no_plugin_traceback(result.stdout.str() + result.stderr.str())


def test_a_run_that_only_errors_replaces_an_old_report_saying_pass(
    pytester: pytest.Pytester,
) -> None:
    np.savez(pytester.path / "short.npz", x=IRIS_X, y=IRIS_Y[::30])
    pytester.makefile(
        ".labelquality.yaml",
        data="datasets:\n  - name: short\n    source: {format: npz, path: short.npz}\n"
        "    gate: {max_noise_rate: 0.1}\n",
    )
    pytester.makeini("[pytest]\nlabel_quality = maybe\n")
    result = pytester.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert (
        "ini label_quality: invalid truth value 'maybe'; use true or false" in result.stderr.str()
    )
    pytester.makeini("[pytest]\nlabel_quality = true\n")
    report = pytester.path / "label-quality-report"
    report.mkdir()
    for name in ("label-quality.json", "index.html"):
        (report / name).write_text('{"passed": true}')
    result = pytester.runpytest_subprocess("-n", "2", "--label-quality-markdown=s.md")
    result.assert_outcomes(failed=1)
    assert "short.npz: mismatched lengths" in result.stdout.str()
    assert "1 dataset or spec file could not be checked" in result.stdout.str()
    document = json.loads((report / "label-quality.json").read_text())
    assert document["passed"] is False
    assert document["datasets"] == []
    assert [e["test"].split("::")[-1] for e in document["errors"]] == ["short"]
    assert 'id="overall-verdict">FAIL<' in (report / "index.html").read_text()
    summary = (pytester.path / "s.md").read_text()
    assert summary.startswith("## Label quality: FAIL")
    assert "0 of 1 dataset passed (1 could not be checked)." in summary.splitlines()


def test_xdist_baseline_holds_every_dataset_and_errors_keep_file_names(
    pytester: pytest.Pytester,
) -> None:
    _iris_project(pytester, ("first", "second", "third"))
    review = pytester.path / "iris.labelquality.reviews.yaml"
    review.write_text("[]\n")
    result = pytester.runpytest_subprocess(
        "--label-quality", "-n", "2", "--label-quality-update-baseline"
    )
    result.assert_outcomes(passed=3)
    baseline = json.loads((pytester.path / "iris.labelquality.baseline.json").read_text())
    assert sorted(baseline["datasets"]) == ["first", "second", "third"]
    assert review.read_text() == "[]\n"


def _descendants(pid: int) -> set[int]:
    children: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with open(task / "children") as handle:
            children |= {int(c) for c in handle.read().split()}
    return children | {d for c in children for d in _descendants(c)}


def _command(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux's /proc")
def test_no_joblib_worker_outlives_a_killed_run(pytester: pytest.Pytester) -> None:
    x = np.random.default_rng(0).normal(size=(3000, 40))
    np.savez(pytester.path / "big.npz", x=x, y=(x[:, 0] > 0).astype(int))
    pytester.makefile(
        ".labelquality.yaml",
        big="datasets:\n  - name: big\n    source: {format: npz, path: big.npz}\n"
        "    model: {name: random_forest, params: {n_estimators: 4000}}\n"
        "    cv: {folds: 4, jobs: 2}\n    gate: {max_noise_rate: 0.5}\n",
    )
    workers: set[int] = set()
    run_ = subprocess.Popen(
        [sys.executable, "-m", "pytest", "--label-quality", "-p", "no:cacheprovider"],
        cwd=pytester.path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 90
        helpers: set[int] = set()  # joblib's workers and resource trackers
        while time.monotonic() < deadline and run_.poll() is None:
            time.sleep(0.3)
            helpers = _descendants(run_.pid)
            if sum(b"LokyProcess" in _command(p) for p in helpers) >= 2:
                break
        workers = helpers
        assert len(workers) >= 2, "the joblib workers never started"
        os.kill(run_.pid, signal.SIGKILL)
        run_.wait()
        deadline = time.monotonic() + 20
        while any(_alive(p) for p in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [p for p in workers if _alive(p)]
    finally:
        if run_.poll() is None:
            run_.kill()
        for pid in [p for p in workers if _alive(p)]:
            os.kill(pid, signal.SIGKILL)  # a failed check leaves nothing running either


# --- The dataset's folder is a boundary: nothing outside it is read, nor shown in the report.


def _photos(root: Path, per_class: int = 4) -> None:
    """Two classes of small real PNGs (noise around a colour) under ``root``."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for name, colour in {"red": (200, 30, 30), "blue": (30, 30, 200)}.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = np.clip(np.array(colour) + rng.integers(-20, 20, (12, 12, 3)), 0, 255)
            Image.fromarray(pixels.astype(np.uint8)).save(root / name / f"{i}.png")


def _secret(folder: Path) -> Path:
    """An image outside the dataset, as a file on the runner a pull request should not reach."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "secret.png"
    Image.fromarray(np.full((12, 12, 3), 77, dtype=np.uint8)).save(path)
    return path


def _labels_table(secret: Path) -> dict[str, str]:
    return {
        "dotdot": "../outside/secret.png",
        "absolute": str(secret),
        "nested dotdot": "red/../../outside/secret.png",
    }


@pytest.mark.parametrize("row", ["dotdot", "absolute", "nested dotdot"])
def test_a_labels_table_row_outside_the_folder_is_refused_naming_the_row(
    tmp_path: Path, row: str
) -> None:
    _photos(tmp_path / "imgs")
    secret = _secret(tmp_path / "outside")
    bad = _labels_table(secret)[row]
    lines = [f"red/{i}.png,red" for i in range(4)] + [f"blue/{i}.png,blue" for i in range(4)]
    (tmp_path / "labels.csv").write_text("path,label\n" + "\n".join([*lines, f"{bad},red"]) + "\n")
    source = "{format: images, dir: imgs, labels: labels.csv}"
    spec = load_spec(write_spec(tmp_path, _images_spec(source)))[0]
    with pytest.raises(DataError, match=r"labels\.csv:10: .* is outside the dataset's folder"):
        run(spec, tmp_path / "cache")


def _images_spec(source: str) -> str:
    return f"datasets:\n  - name: photos\n    source: {source}\n    cv: {{folds: 2}}\n" \
        "    model: {name: logistic_regression}\n    gate: {max_noise_rate: 1}\n"  # fmt: skip


def _link_file(root: Path, secret: Path) -> None:
    (root / "red" / "9.png").symlink_to(secret)


def _link_folder(root: Path, secret: Path) -> None:
    (root / "red" / "more").symlink_to(secret.parent, target_is_directory=True)


def _link_class(root: Path, secret: Path) -> None:
    shutil.rmtree(root / "blue")
    (secret.parent / "blue").mkdir()
    _photos(secret.parent / "tmp")
    shutil.move(secret.parent / "tmp" / "blue", secret.parent / "blue" / "x")
    (root / "blue").symlink_to(secret.parent / "blue" / "x", target_is_directory=True)


@pytest.mark.parametrize("make", [_link_file, _link_folder, _link_class])
def test_a_symlink_out_of_the_folder_is_refused_naming_it(
    tmp_path: Path, make: Callable[[Path, Path], None]
) -> None:
    _photos(tmp_path / "imgs")
    secret = _secret(tmp_path / "outside")
    make(tmp_path / "imgs", secret)
    spec = load_spec(write_spec(tmp_path, _images_spec("{format: images, dir: imgs}")))[0]
    with pytest.raises(DataError, match=r"imgs/(red|blue)\S*: .* is outside the dataset's folder"):
        run(spec, tmp_path / "cache")


def test_symlinks_inside_the_folder_and_an_explicit_opt_out_are_read(tmp_path: Path) -> None:
    _photos(tmp_path / "imgs")
    (tmp_path / "imgs" / "red" / "again.png").symlink_to(tmp_path / "imgs" / "red" / "0.png")
    spec = load_spec(write_spec(tmp_path, _images_spec("{format: images, dir: imgs}")))[0]
    assert run(spec, tmp_path / "cache")["items"] == 9  # a link that stays inside is fine

    secret = _secret(tmp_path / "outside")
    rows = ["red/0.png,red", "red/1.png,red", "blue/0.png,blue", "blue/1.png,blue"]
    (tmp_path / "labels.csv").write_text("path,label\n" + "\n".join([*rows, f"{secret},blue"]))
    source = "{format: images, dir: imgs, labels: labels.csv, outside: true}"
    spec = load_spec(write_spec(tmp_path, _images_spec(source), name="opt"))[0]
    assert run(spec, tmp_path / "cache2")["items"] == 5  # the spec said so, in review


# --- No silent reinterpretation of labels and columns.


def _table_spec(folder: Path, name: str, text: str | None = None) -> DatasetSpec:
    fmt = name.rsplit(".", 1)[1]
    source = (
        f"{{format: text, path: {name}, text: [t], label: y}}"
        if text
        else f"{{format: {fmt}, path: {name}, label: y}}"
    )
    return load_spec(
        write_spec(
            folder,
            f"datasets:\n  - name: d\n    source: {source}\n    gate: {{max_noise_rate: 1}}\n",
        )
    )[0]


def _jsonl(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def _rows(labels: list[Any], key: str = "a") -> list[dict[str, Any]]:
    return [{key: i * 0.5, "t": f"text {i}", "y": y} for i, y in enumerate(labels)]


MISSING_LABELS = {
    "csv empty": ("t.csv", "a,y\n1,x\n2,\n3,z\n4,x\n", r"t\.csv:3: no label in column 'y'; 1 of 4"),
    "csv blank": (
        "t.csv",
        "a,y\n1,x\n2,  \n3,z\n4,\n",
        r"t\.csv:3: .* 2 of 4 rows have none \(at 3, 5\)",
    ),
    "jsonl null": ("t.jsonl", _jsonl(_rows(["x", None, "z", "x"])), r"t\.jsonl:2: no label"),
    "jsonl NaN": ("t.jsonl", _jsonl(_rows([1.0, float("nan"), 2.0, 1.0])), r"t\.jsonl:2: no label"),
    "jsonl absent": ("t.jsonl", '{"a": 1, "y": "x"}\n{"a": 2}\n', r"t\.jsonl:2: no label"),
}


@pytest.mark.parametrize("case", sorted(MISSING_LABELS))
def test_a_missing_label_is_an_error_naming_its_rows_not_a_class(tmp_path: Path, case: str) -> None:
    from pytest_labelquality.sources import load_dataset

    name, text, message = MISSING_LABELS[case]
    (tmp_path / name).write_text(text)
    with pytest.raises(DataError, match=message):
        load_dataset(_table_spec(tmp_path, name))


def test_a_missing_label_in_parquet_and_in_texts_is_named_too(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pytest_labelquality.sources import load_dataset

    pq.write_table(pa.Table.from_pylist(_rows(["x", "z", None, "x"])), tmp_path / "t.parquet")
    with pytest.raises(DataError, match=r"t\.parquet:row 2: no label in column 'y'"):
        load_dataset(_table_spec(tmp_path, "t.parquet"))
    (tmp_path / "t.jsonl").write_text(_jsonl(_rows(["x", "z", "x", None])))
    with pytest.raises(DataError, match=r"t\.jsonl:4: no label in column 'y'"):
        load_dataset(_table_spec(tmp_path, "t.jsonl", text="t"))


@pytest.mark.parametrize(
    ("name", "text", "classes"),
    [
        ("t.jsonl", _jsonl(_rows([2, 2.0, "2.0", 1, 1.0, 2])), ("1", "2")),
        ("t.csv", "a,y\n1,2\n2,2.0\n3,1\n4,1.00\n5,2\n", ("1", "2")),
        ("t.jsonl", _jsonl(_rows([2, 2.0, "cat", "cat", 2, "cat"])), ("2", "cat")),
        ("t.jsonl", _jsonl(_rows([0.5, "0.50", 1, 1.0, 0.5, 1])), ("0.5", "1")),
        ("t.csv", "a,y\n1,cat\n2,Cat\n3,cat\n4,Cat\n", ("Cat", "cat")),  # text stays as written
    ],
    ids=["jsonl-2-and-2.0", "csv-2-and-2.0", "numbers-beside-text", "fractions", "case-kept"],
)
def test_labels_are_compared_as_the_values_they_hold(
    tmp_path: Path, name: str, text: str, classes: tuple[str, ...]
) -> None:
    from pytest_labelquality.sources import load_dataset

    (tmp_path / name).write_text(text)
    assert load_dataset(_table_spec(tmp_path, name)).class_names == classes


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("t.csv", "f,f,y\n1,2,a\n3,4,b\n", r"t\.csv:1: column 'f' appears 2 times"),
        ("t.csv", "f,g,y,g,g\n1,2,a,3,4\n", r"t\.csv:1: column 'g' appears 3 times"),
        (
            "t.jsonl",
            '{"f": 1, "y": "a"}\n{"f": 1, "f": 2, "y": "b"}\n',
            r"t\.jsonl:2: key 'f' appears twice",
        ),
        ("t.jsonl", '{"f": {"x": 1, "x": 2}, "y": "b"}\n', r"t\.jsonl:1: key 'x' appears twice"),
    ],
    ids=["csv-header", "csv-three-times", "jsonl-key", "jsonl-nested-key"],
)
def test_a_name_used_twice_is_an_error_not_the_first_column_read_twice(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    from pytest_labelquality.sources import load_dataset

    (tmp_path / name).write_text(text)
    with pytest.raises(DataError, match=message):
        load_dataset(_table_spec(tmp_path, name))


@given(st.lists(st.one_of(st.integers(-5, 5), st.sampled_from([0.5, -1.5, 2.0, 3.0])), min_size=1))
def test_label_texts_map_equal_numbers_to_one_class_and_unequal_to_two(values: list[Any]) -> None:
    from pytest_labelquality.formats.readers import Table, label_texts

    table = Table(Path("t.jsonl"), {"y": values}, [str(i + 1) for i in range(len(values))])
    texts = label_texts(table, "y")
    for first, text_a in zip(values, texts, strict=True):
        for second, text_b in zip(values, texts, strict=True):
            assert (float(first) == float(second)) == (text_a == text_b)
    as_strings = Table(Path("t.csv"), {"y": [str(v) for v in values]}, table.rows)
    assert label_texts(as_strings, "y") == texts  # "2.0" read from a CSV is the JSON 2.0


def test_an_empty_class_folder_is_an_error_not_a_class_dropped_without_a_word(
    tmp_path: Path,
) -> None:
    _photos(tmp_path / "imgs")
    (tmp_path / "imgs" / "green").mkdir()
    (tmp_path / "imgs" / "green" / "notes.txt").write_text("to do")
    spec = load_spec(write_spec(tmp_path, _images_spec("{format: images, dir: imgs}")))[0]
    with pytest.raises(DataError, match=r"imgs/green: the folder of class 'green' holds no image"):
        run(spec, tmp_path / "cache")
    source = "{format: images, dir: imgs, classes: [red, blue]}"  # the way to leave it out
    spec = load_spec(write_spec(tmp_path, _images_spec(source), name="named"))[0]
    assert run(spec, tmp_path / "cache")["classes"] == ["red", "blue"]


def _transparent_drawings(root: Path) -> None:
    """Black strokes on a transparent background, as drawing tools export them: a vertical
    bar is class 'one', a horizontal bar class 'minus'."""
    from PIL import Image

    for name, (rows, cols) in {
        "one": (slice(2, 14), slice(7, 9)),
        "minus": (slice(7, 9), slice(2, 14)),
    }.items():
        (root / name).mkdir(parents=True)
        for i in range(4):
            pixels = np.zeros((16, 16, 4), dtype=np.uint8)  # transparent black everywhere
            pixels[rows, cols] = (0, 0, 0, 255)
            pixels[i, i] = (0, 0, 0, 255)  # each drawing a little different
            Image.fromarray(pixels, "RGBA").save(root / name / f"{i}.png")


def test_transparent_drawings_are_composited_on_white_not_read_as_black(tmp_path: Path) -> None:
    from pytest_labelquality.sources import load_dataset

    _transparent_drawings(tmp_path / "imgs")
    data = load_dataset(
        load_spec(write_spec(tmp_path, _images_spec("{format: images, dir: imgs}")))[0]
    )
    assert data.stats["mode"] == "grey"
    one = data.features[data.labels == data.class_names.index("one")][0]
    assert one[15, 0] == 255  # the background is the white page
    assert one[8, 7] == 0  # the stroke stays black
    minus = data.features[data.labels == data.class_names.index("minus")][0]
    assert not np.array_equal(one, minus)  # before, both decoded all black


def _laughs(depth: int) -> str:
    """A spec whose params nest aliases ``depth`` deep, nine wide: 9**depth values expanded."""
    lines = ['        l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"        l{d}: &l{d} [{', '.join([f'*l{d - 1}'] * 9)}]" for d in range(1, depth)]
    return (
        "datasets:\n  - name: d\n    source: {format: sklearn, name: iris}\n"
        "    model:\n      name: logistic_regression\n      params:\n"
        + "\n".join(lines)
        + "\n    gate: {max_noise_rate: 0.1}\n"
    )


def test_yaml_aliases_that_expand_without_bound_are_one_error_at_once(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"expands to more than 100,000 values through its alias"):
        load_spec(write_spec(tmp_path, _laughs(10)))  # 9**10: 3.5 billion values, never built
    spec = load_spec(write_spec(tmp_path, _laughs(3), name="small"))[0]  # 729 values: fine
    assert len(spec.model.params["l2"]) == 9


# --- What used to end in a traceback: each is one line naming the file, the key or row, the fix.


def _texts_csv(folder: Path, long_row: int | None = None, size: int = 0) -> None:
    rows = [f"text {i} {'ab'[i % 2]},{'ab'[i % 2]}" for i in range(20)]
    if long_row is not None:
        rows[long_row] = "word " * (size // 5) + f",{'ab'[long_row % 2]}"
    (folder / "t.csv").write_text("t,y\n" + "\n".join(rows) + "\n")


def _text_spec(folder: Path, extra: str = "", name: str = "s") -> Path:
    return write_spec(
        folder,
        "datasets:\n  - name: d\n"
        f"    source: {{format: text, path: t.csv, text: t, label: y{extra}}}\n"
        "    gate: {max_noise_rate: 1}\n",
        name,
    )


def test_a_csv_text_longer_than_the_csv_modules_128_kib_is_read(tmp_path: Path) -> None:
    import csv

    from pytest_labelquality.sources import load_dataset

    _texts_csv(tmp_path, long_row=3, size=300_000)  # the csv module stops at 131,072
    limit = csv.field_size_limit()
    data = load_dataset(load_spec(_text_spec(tmp_path))[0])
    assert len(data.features[3]) > 290_000
    assert csv.field_size_limit() == limit  # the process-wide limit is put back


def test_an_unclosed_quote_past_the_field_limit_is_one_error_naming_the_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_labelquality.formats import readers
    from pytest_labelquality.sources import load_dataset

    monkeypatch.setattr(readers, "CSV_FIELD_LIMIT", 150_000)  # the bound, made small to test
    lines = ["t,y", "first,a", "second,b", '"an unclosed quote,a'] + ["more text,b"] * 20_000
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as caught:
        load_dataset(load_spec(_text_spec(tmp_path))[0])
    text = str(caught.value)
    assert text.startswith(f"{tmp_path / 't.csv'}:")
    assert 'a field is longer than 150,000 characters; an unclosed quote (") makes' in text
    assert "\n" not in text


@pytest.mark.parametrize(
    ("extra", "key", "message"),
    [
        (", encoding: utf-99", "encoding", "'utf-99' is not an encoding Python knows; use"),
        (", encoding: base64", "encoding", "'base64' is a base64 codec, not a text encoding"),
        (", delimiter: ';;'", "delimiter", "';;' has 2 characters; must have exactly 1; e.g."),
        (", delimiter: ''", "delimiter", "'' has 0 characters; must have exactly 1"),
        (", quotechar: ''", "quotechar", "'' has 0 characters; must have exactly 1; the char"),
        (", quotechar: '<<'", "quotechar", "'<<' has 2 characters"),
    ],
)
def test_csv_options_python_cannot_read_with_are_spec_errors_naming_the_key(
    tmp_path: Path, extra: str, key: str, message: str
) -> None:
    _texts_csv(tmp_path)
    path = _text_spec(tmp_path, extra)
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert str(caught.value).startswith(f"{path}:3: datasets[0].source.{key}: {message}")
    assert "\n" not in str(caught.value)


def test_csv_options_that_work_still_load(tmp_path: Path) -> None:
    from pytest_labelquality.sources import load_dataset

    rows = ["t;y", "'un; deux';a", "trois;b", "quatre;a", "cinq;b"]
    (tmp_path / "t.csv").write_bytes(("\n".join(rows) + "\n").encode("latin-1"))
    path = _text_spec(tmp_path, ", delimiter: ';', quotechar: \"'\", encoding: Latin_1")
    data = load_dataset(load_spec(path)[0])
    assert data.features[0] == "un; deux"


BASELINES = {
    "a list": ("[]", "the file holds a list, expected an object with 'datasets'"),
    "null datasets": ('{"version": 1, "datasets": null}', "'datasets' is null, expected"),
    "no datasets": ('{"version": 1}', "the object has no 'datasets'"),
    "an entry without fields": ('{"version": 1, "datasets": {"d": {}}}', "d has no 'noise_rate'"),
    "an entry that is a list": ('{"version": 1, "datasets": {"d": []}}', "datasets.d is a list"),
    "text for a number": (
        '{"version": 1, "datasets": {"d": {"noise_rate": "0.1", "noise_count": 1,'
        ' "items": {}, "suspects": []}}}',
        "datasets.d.noise_rate is a string, expected a number",
    ),
    "an item that is not a pair": (
        '{"version": 1, "datasets": {"d": {"noise_rate": 0.1, "noise_count": 1,'
        ' "items": {"a": "x"}, "suspects": []}}}',
        "datasets.d.items.a is not [content hash, label]",
    ),
    "an old version": ('{"version": 0, "datasets": {}}', "baseline version 0, expected 1"),
    "not JSON": ("{", "not a readable baseline (Expecting"),
}


@pytest.mark.parametrize("what", sorted(BASELINES))
def test_a_baseline_of_the_wrong_shape_is_one_error_naming_it(tmp_path: Path, what: str) -> None:
    body, message = BASELINES[what]
    (spec,) = load_spec(iris_spec(tmp_path))
    baseline = tmp_path / "s.labelquality.baseline.json"
    baseline.write_text(body)
    with pytest.raises(DataError) as caught:
        run(spec, tmp_path / "cache")
    text = str(caught.value)
    assert text.startswith(f"{baseline}: ")
    assert message in text
    assert text.endswith("; delete it and write a new one with --label-quality-update-baseline")
    assert "\n" not in text
    assert baseline.read_text() == body  # an unreadable baseline is not overwritten


def _loop(folder: Path, name: str) -> None:
    (folder / name).symlink_to(folder / name)


PATH_KEYS = {
    "an npz path that loops": (
        "{format: npz, path: loop.npz}",
        lambda f: _loop(f, "loop.npz"),
        "path",
        "loop.npz: a symlink loop (a link that leads back to itself); point it at a file",
    ),
    "a text table that loops": (
        "{format: text, path: loop.csv, text: t, label: y}",
        lambda f: _loop(f, "loop.csv"),
        "path",
        "loop.csv: a symlink loop",
    ),
    "an image folder that loops": (
        "{format: images, dir: imgs}",
        lambda f: _loop(f, "imgs"),
        "dir",
        "imgs: a symlink loop (a link that leads back to itself); point it at a folder",
    ),
    "a drawings folder that loops": (
        "{format: quickdraw, dir: qd, classes: [cat, dog]}",
        lambda f: _loop(f, "qd"),
        "dir",
        "qd: a symlink loop",
    ),
    "a labels table that loops": (
        "{format: images, dir: ., labels: l.csv}",
        lambda f: _loop(f, "l.csv"),
        "labels",
        "l.csv: a symlink loop",
    ),
    "a file name too long": (
        "{format: npz, path: " + "n" * 300 + ".npz}",
        lambda f: None,
        "path",
        "the path is too long for the filesystem: a name of 304 bytes"
        " ('nnnnnnnnnnnn...nnnnnnnn.npz'), the limit is 255 per name; shorten it",
    ),
    "a folder name too long": (
        "{format: images, dir: " + "d" * 256 + "/x}",
        lambda f: None,
        "dir",
        "a name of 256 bytes",
    ),
    "a class name too long": (
        "{format: quickdraw, dir: qd, classes: [cat, " + "c" * 300 + "]}",
        lambda f: _quickdraw(DRAWINGS, DRAWINGS)(f),
        "classes",
        "the path is too long for the filesystem: a name of 304 bytes",
    ),
    "a path far too long": (
        "{format: npz, path: " + "/".join(["p" * 200] * 25) + "}",
        lambda f: None,
        "path",
        "the path is too long (",
    ),
    "a FIFO as the data": (
        "{format: npz, path: pipe.npz}",
        lambda f: os.mkfifo(f / "pipe.npz"),
        "path",
        "pipe.npz is not a regular file (a FIFO, socket or device); name a file",
    ),
}


@pytest.mark.parametrize("what", sorted(PATH_KEYS))
def test_a_path_key_the_filesystem_refuses_is_a_spec_error_naming_the_key(
    tmp_path: Path, what: str
) -> None:
    source, make, key, message = PATH_KEYS[what]
    if "FIFO" in what and not hasattr(os, "mkfifo"):
        pytest.skip("needs POSIX FIFOs")
    make(tmp_path)
    path = write_spec(
        tmp_path, f"datasets:\n  - name: d\n    source: {source}\n    gate: {{max_noise_rate: 1}}\n"
    )
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    text = str(caught.value)
    assert text.startswith(f"{path}:3: datasets[0].source.{key}: ")
    assert message in text
    assert "\n" not in text


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX FIFOs")
def test_a_fifo_among_the_images_is_an_error_not_a_read_that_waits_forever(tmp_path: Path) -> None:
    _photos(tmp_path / "imgs")
    os.mkfifo(tmp_path / "imgs" / "red" / "pipe.png")
    os.mkfifo(tmp_path / "imgs" / "red" / "notes")  # not an image: ignored as other files are
    spec = load_spec(write_spec(tmp_path, _images_spec("{format: images, dir: imgs}")))[0]
    with pytest.raises(DataError, match=r"imgs/red/pipe\.png: not a regular file \(a FIFO"):
        run(spec, tmp_path / "cache")


def test_the_old_tracebacks_are_one_line_each_in_a_real_run(pytester: pytest.Pytester) -> None:
    """The user's view: a truncated npz, a bad encoding and a baseline that is a list."""
    _iris_project(pytester)
    (pytester.path / "iris.labelquality.baseline.json").write_text("[]")
    np.savez(pytester.path / "cut.npz", x=IRIS_X, y=IRIS_Y)
    cut = pytester.path / "cut.npz"
    cut.write_bytes(cut.read_bytes()[:300])
    _texts_csv(pytester.path)
    pytester.makefile(
        ".labelquality.yaml",
        cut="datasets:\n  - name: cut\n    source: {format: npz, path: cut.npz}\n"
        "    gate: {max_noise_rate: 0.1}\n",
        enc="datasets:\n  - name: enc\n"
        "    source: {format: text, path: t.csv, text: t, label: y, encoding: utf-99}\n"
        "    gate: {max_noise_rate: 0.1}\n",
    )
    result = pytester.runpytest_subprocess("--label-quality", "--continue-on-collection-errors")
    result.assert_outcomes(failed=2, errors=1)
    output = result.stdout.str()
    assert "enc.labelquality.yaml:3: datasets[0].source.encoding: 'utf-99' is not an" in output
    assert "cut.labelquality.yaml:2: dataset 'cut': cut.npz: not a readable .npz file" in output
    assert (
        "iris.labelquality.yaml:2: dataset 'iris': iris.labelquality.baseline.json: not a"
        " baseline: the file holds a list" in output
    )
    _no_plugin_traceback(output)


# --- Memory: an image is decoded no larger than its working size needs, within a budget.

BIG_PNGS = """
import sys
from pathlib import Path
from PIL import Image
from pytest_labelquality.sources import load_dataset
from pytest_labelquality.spec import load_spec

Image.MAX_IMAGE_PIXELS = None  # Pillow warns past 89 million pixels; the files are written here
root = Path(sys.argv[1])
for i, name in enumerate(["black", "black", "white", "white"]):  # 20 to 50 KB each
    (root / "imgs" / name).mkdir(parents=True, exist_ok=True)
    Image.new("1", (13000, 13000), i % 2).save(root / "imgs" / name / f"{i}.png")


def peak():  # this process's own high-water mark (ru_maxrss counts its parent's at the fork)
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0]) // 1024


before = peak()
data = load_dataset(load_spec(root / "s.labelquality.yaml")[0])
print(data.features.shape, before, peak())
"""


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc; glibc's malloc_trim")
def test_four_13000_pixel_pngs_decode_in_a_bounded_amount_of_memory(tmp_path: Path) -> None:
    """Each 13000 x 13000 PNG takes 338 MB decoded (its bits and their grey copy, which is
    reduced 67 times); four threads decoding at once took 2 GB. The decoding budget lets the
    threads hold 512 MiB at once, and the memory goes back to the system after each large
    image (glibc kept each thread's). Writing the files costs 169 MB each, one at a time."""
    write_spec(tmp_path, _images_spec("{format: images, dir: imgs}"))
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", BIG_PNGS, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={**os.environ, "LABEL_QUALITY_THREADS": "4"},  # as wide as the files
    )
    shape, _, peak = done.stdout.strip().rsplit(" ", 2)
    assert shape == "(4, 64, 64)"
    assert int(peak) < 800, f"peak resident memory {peak} MiB"  # 361 here; 1009 to 3923 before


def _save(path: Path, pixels: Any, **options: Any) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, **options)
    return path


def _gradient(height: int, width: int) -> Any:
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 255 // width, y * 255 // height, (x + y) % 256], -1).astype(np.uint8)


def test_a_large_jpeg_decodes_at_a_fraction_of_its_size_and_a_png_over_budget_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_labelquality.formats import images

    monkeypatch.setattr(images, "MAX_DECODE_BYTES", 8 << 20)  # 2000 x 2000 RGB takes 15 MiB
    for name in ("red", "blue"):
        for i in range(2):
            _save(tmp_path / "jpg" / name / f"{i}.jpg", _gradient(2000, 2000), quality=90)
    spec = load_spec(write_spec(tmp_path, _images_spec("{format: images, dir: jpg}"), "jpg"))[0]
    assert run(spec, tmp_path / "cache")["items"] == 4  # drafted at 1/8: 250 x 250

    _photos(tmp_path / "png")
    _save(tmp_path / "png" / "red" / "big.png", _gradient(2000, 2000))
    spec = load_spec(write_spec(tmp_path, _images_spec("{format: images, dir: png}"), "png"))[0]
    with pytest.raises(DataError) as caught:
        run(spec, tmp_path / "cache")
    assert str(caught.value) == (
        f"{tmp_path / 'png' / 'red' / 'big.png'}: cannot decode the image (decoding its 2000 x"
        " 2000 pixels (RGB) takes 15 MiB, over the 8 MiB one file may take; save it smaller);"
        " fix or remove it, or set source.skip_unreadable: true"
    )
    source = "{format: images, dir: png, skip_unreadable: true}"
    spec = load_spec(write_spec(tmp_path, _images_spec(source), "skip"))[0]
    assert run(spec, tmp_path / "cache")["items"] == 8


@pytest.mark.parametrize(
    ("mode", "aspect", "size"),
    [
        ("RGB", "pad", [48, 64]),
        ("RGB", "crop", [64, 64]),
        ("L", "stretch", [40, 20]),
        ("RGBA", "pad", [64, 64]),
        ("P", "pad", [32, 32]),
        ("I;16", "pad", [32, 32]),
        ("1", "pad", [32, 32]),
    ],
)
def test_a_reduced_decode_matches_resampling_the_full_image(
    mode: str, aspect: str, size: list[int]
) -> None:
    """Reducing by whole factors to at least three times the working size first (Pillow's
    reducing_gap) changes the pixels by a level or two, not the picture."""
    import io

    from PIL import Image, ImageOps

    from pytest_labelquality.formats.images import Aspect, _decode, _opaque

    rgb = Image.fromarray(_gradient(900, 1200))
    image = {
        "RGB": rgb,
        "L": rgb.convert("L"),
        "RGBA": Image.merge("RGBA", (*rgb.split(), rgb.getchannel(0))),
        "P": rgb.quantize(64),
        "I;16": Image.fromarray(np.asarray(rgb.convert("L"), np.uint16) * 256),
        "1": rgb.convert("1"),
    }[mode]
    out = io.BytesIO()
    image.save(out, format="PNG")
    reduced, _ = _decode(out.getvalue(), tuple(size), Aspect(aspect))
    full = _opaque(image)
    if full.mode == "I;16":
        full = full.point(lambda v: v / 256).convert("L")
    full = full.convert("RGB")
    target = (size[1], size[0])
    fitted = {
        "pad": lambda: ImageOps.pad(full, target, color=(0, 0, 0)),
        "crop": lambda: ImageOps.fit(full, target),
        "stretch": lambda: full.resize(target, Image.Resampling.BILINEAR),
    }[aspect]()
    difference = np.abs(reduced.astype(int) - np.asarray(fitted, dtype=int))
    assert reduced.shape == (*size, 3)
    assert difference.mean() < (12 if mode == "1" else 2.5), difference.mean()  # dither: noise


def test_a_rotated_jpeg_is_reduced_and_still_turned(tmp_path: Path) -> None:
    from PIL import Image

    from pytest_labelquality.formats.images import Aspect, _decode

    wide = np.zeros((600, 1800, 3), np.uint8)
    wide[:, 900:] = 255  # the right half white; shown turned 90 degrees clockwise: the bottom
    exif = Image.Exif()
    exif[0x0112] = 6
    path = _save(tmp_path / "turned.jpg", wide, exif=exif, quality=95)
    pixels, _ = _decode(path.read_bytes(), (60, 20), Aspect.STRETCH)
    assert pixels.shape == (60, 20, 3)
    assert pixels[:25].mean() < 10
    assert pixels[35:].mean() > 245


def test_the_decoding_budget_holds_at_most_its_bytes_at_once() -> None:
    import threading

    from pytest_labelquality.formats.images import SMALL_DECODE_BYTES, DecodeBudget

    budget = DecodeBudget(3 * SMALL_DECODE_BYTES)
    most, lock = [0], threading.Lock()

    def decode(size: int) -> None:
        with budget.hold(size):
            with lock:
                most[0] = max(most[0], budget.held)
            time.sleep(0.01)

    sizes = [SMALL_DECODE_BYTES] * 8 + [5 * SMALL_DECODE_BYTES] + [1] * 20  # one over it all
    threads = [threading.Thread(target=decode, args=(s,)) for s in sizes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert budget.held == 0
    assert most[0] in (3 * SMALL_DECODE_BYTES, 5 * SMALL_DECODE_BYTES)  # the large one alone


def test_a_working_size_that_cannot_fit_is_refused_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _photos(tmp_path / "imgs")
    path = write_spec(tmp_path, _images_spec("{format: images, dir: imgs, size: [30000, 30000]}"))
    with pytest.raises(SpecError) as caught:  # was a 151 GiB allocation's traceback
        load_spec(path)
    assert str(caught.value).startswith(
        f"{path}:3: datasets[0].source.size: [30000, 30000] asks for a side over 4096 pixels;"
        " lower it"
    )
    from pytest_labelquality import resources

    monkeypatch.setattr(resources, "memory_bytes", lambda: 8 << 20)  # a machine of 8 MiB
    source = "{format: images, dir: imgs, size: [512, 512]}"
    spec = load_spec(write_spec(tmp_path, _images_spec(source), "fits"))[0]
    with pytest.raises(DataError) as error:
        run(spec, tmp_path / "cache")
    assert str(error.value) == (
        f"{spec.location}: source.size: 8 images at 512 x 512 take 6 MiB as pixels, over the"
        " 2 MiB they may take (a quarter of this machine's 8 MiB); lower source.size"
    )


def test_resources_read_the_memory_a_cgroup_allows(tmp_path: Path) -> None:
    from pytest_labelquality.resources import memory_bytes

    machine = memory_bytes(tmp_path / "absent")
    assert machine is None or machine > 2**26
    (tmp_path / "memory.max").write_text("1073741824\n")
    assert memory_bytes(tmp_path) == 2**30 if machine is None or machine > 2**30 else machine
    (tmp_path / "memory.max").write_text("max\n")
    assert memory_bytes(tmp_path) == machine


# --- Honest numbers: a model too weak to judge the labels says so before the labels are blamed.


def test_a_weak_model_on_real_digits_is_named_before_the_labels_are_blamed(
    pytester: pytest.Pytester,
) -> None:
    """A one-tree forest of depth 3 is 45% accurate on digits' 10 classes: skill 0.39 against
    chance passed the old rule, yet it calls 44% of these clean labels wrong. Logistic
    regression on the same digits with 20% of labels flipped is a useful model on noisy data,
    and its failure blames the labels."""
    pytester.makefile(
        ".labelquality.yaml",
        digits="datasets:\n"
        "  - name: weak\n    source: {format: sklearn, name: digits}\n"
        "    model: {name: random_forest, params: {n_estimators: 1, max_depth: 3}}\n"
        "    gate: {max_noise_rate: 0.1}\n"
        "  - name: noisy\n    source: {format: sklearn, name: digits, flip: {rate: 0.2}}\n"
        "    model: {name: logistic_regression}\n    gate: {max_noise_rate: 0.1}\n",
    )
    result = pytester.runpytest_subprocess("--label-quality")
    result.assert_outcomes(failed=2, warnings=1)
    output = result.stdout.str()
    # The short summary repeats the message after "FAILED"; its width depends on the terminal.
    messages = [line for line in output.splitlines() if not line.startswith("FAILED")]
    (weak,) = [line for line in messages if "for 'weak'" in line]
    assert weak.startswith(
        "The model is too weak for the estimate to be trusted: it disagrees with 18.8% of the"
        " labels it accepts, and 90 labels flipped on purpose raised its count by 115, so many"
        " suspects may be its own mistakes; try a stronger model or more epochs before fixing"
        " labels. Then: estimated label noise 44.4%"
    )
    (noisy,) = [line for line in messages if "for 'noisy'" in line]
    assert noisy.startswith("estimated label noise 16.8%")
    assert "too weak" not in noisy
    document = json.loads((pytester.path / "label-quality-report/label-quality.json").read_text())
    codes = {d["name"]: [w["code"] for w in d["warnings"]] for d in document["datasets"]}
    assert codes == {"weak": ["weak_model"], "noisy": []}
    _no_plugin_traceback(output)


def test_a_model_wrong_on_a_fifth_of_what_it_accepts_is_weak_whatever_it_flags(
    pytester: pytest.Pytester,
) -> None:
    """The issue's photos at 55% with 25% flagged, on real digits: a one-tree forest of depth 4
    is 55.6% accurate on these clean labels and calls 27% of them wrong, disagreeing with 23.6%
    of those it accepts while the canary's count rises 1.24 times its flips, so neither older
    rule fired (measured too on 2,000 CIFAR photos: HOG boosting at 42.7% flagging 44%). The
    message leads with it; a useful model (logistic regression, 96.9%) is not called weak."""
    pytester.makefile(
        ".labelquality.yaml",
        digits="datasets:\n"
        "  - name: stump\n    source: {format: sklearn, name: digits}\n"
        "    model: {name: random_forest, params: {n_estimators: 1, max_depth: 4}}\n"
        "    gate: {max_noise_rate: 0.1}\n"
        "  - name: useful\n    source: {format: sklearn, name: digits}\n"
        "    model: {name: logistic_regression}\n    gate: {max_noise_rate: 0.1}\n",
    )
    result = pytester.runpytest_subprocess("--label-quality")
    result.assert_outcomes(failed=1, passed=1, warnings=1)
    output = result.stdout.str()
    messages = [line for line in output.splitlines() if not line.startswith("FAILED")]
    (stump,) = [line for line in messages if "for 'stump'" in line]
    assert stump.startswith(
        "The model is too weak for the estimate to be trusted: it disagrees with 23.6% of the"
        " labels it accepts, more than 20% of them, so many suspects may be its own mistakes;"
    )
    assert "Then: estimated label noise 27.2%" in stump
    document = json.loads((pytester.path / "label-quality-report/label-quality.json").read_text())
    codes = {d["name"]: [w["code"] for w in d["warnings"]] for d in document["datasets"]}
    assert codes == {"stump": ["weak_model"], "useful": []}
    _no_plugin_traceback(output)


# --- Hypothesis: the table readers read back what was written, or refuse in one line.

#: Cell text: any character a UTF-8 file can hold but NUL (which csv refuses, and is tested
#: apart), with the delimiter, quotes and line breaks of every platform likely.
CELLS = st.text(
    st.one_of(
        st.sampled_from([",", '"', "\n", "\r", "\t", " ", "\ufeff", "é", "\u2028"]),
        st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    ),
    max_size=12,
)
COLUMN_NAMES = st.lists(
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=6),
    min_size=1,
    max_size=4,
    unique=True,
)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(names=COLUMN_NAMES, data=st.data())
def test_a_csv_written_by_csv_is_read_back_cell_for_cell_with_its_lines(
    tmp_path: Path, names: list[str], data: st.DataObject
) -> None:
    """Whatever the cells hold, a CSV that Python's csv module writes is read back as written,
    and each row's line is the line its record starts on."""
    import csv
    import io

    from pytest_labelquality.formats.readers import read_table

    rows = data.draw(
        st.lists(st.lists(CELLS, min_size=len(names), max_size=len(names)), max_size=6)
    )
    # a record of one empty field is written as a blank line, which readers skip
    rows = [r for r in rows if r != [""]]
    buffer = io.StringIO(newline="")
    csv.writer(buffer).writerows([names, *rows])
    path = tmp_path / "t.csv"
    path.write_text(buffer.getvalue(), encoding="utf-8", newline="")
    if names[0].startswith("\ufeff"):
        return  # a leading byte-order mark is read as one, not as part of the name
    table = read_table(path, names)
    assert table.columns == {n: [r[i] for r in rows] for i, n in enumerate(names)}

    def breaks(record: list[str]) -> int:  # what the file's lines are split on
        one = io.StringIO(newline="")
        csv.writer(one).writerow(record)
        return len(re.findall(r"\r\n|\r|\n", one.getvalue()))

    line, starts = 1 + breaks(names), []
    for record in rows:
        starts.append(str(line))
        line += breaks(record)
    assert table.rows == starts


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**60), 2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | CELLS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(CELLS, inner, max_size=3),
    max_leaves=6,
)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(records=st.lists(st.dictionaries(CELLS, JSON_VALUES, min_size=1, max_size=4), max_size=6))
def test_jsonl_records_are_read_back_value_for_value(
    tmp_path: Path, records: list[dict[str, Any]]
) -> None:
    """Each wanted key's values come back as written, a key a record lacks as None, line by
    line; blank lines are skipped, never counted as records."""
    from pytest_labelquality.formats.readers import read_table

    wanted = sorted({k for r in records for k in r})
    path = tmp_path / "t.jsonl"
    path.write_text("\n\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")
    table = read_table(path, wanted)
    assert table.columns == {k: [r.get(k) for r in records] for k in wanted}
    assert table.rows == [str(1 + 2 * i) for i in range(len(records))]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    columns=st.dictionaries(
        st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=5),
        st.sampled_from(["text", "int", "float", "null"]),
        min_size=1,
        max_size=3,
    ),
    size=st.integers(0, 5),
    data=st.data(),
)
def test_parquet_columns_are_read_back_value_for_value(
    tmp_path: Path, columns: dict[str, str], size: int, data: st.DataObject
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pytest_labelquality.formats.readers import read_table

    values = {
        "text": st.one_of(st.none(), CELLS),
        "int": st.one_of(st.none(), st.integers(-(2**62), 2**62)),
        "float": st.one_of(st.none(), st.floats(allow_nan=False)),
        "null": st.none(),
    }
    written = {
        name: data.draw(st.lists(values[kind], min_size=size, max_size=size))
        for name, kind in columns.items()
    }
    types = {"text": pa.string(), "int": pa.int64(), "float": pa.float64(), "null": pa.null()}
    table = pa.table({n: pa.array(v, type=types[columns[n]]) for n, v in written.items()})
    pq.write_table(table, tmp_path / "t.parquet")
    read = read_table(tmp_path / "t.parquet", list(columns))
    assert read.columns == written
    assert read.rows == [f"row {i}" for i in range(size)]


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(blob=st.binary(max_size=200), kind=st.sampled_from(["csv", "tsv", "jsonl", "parquet"]))
def test_any_bytes_in_a_table_file_are_a_table_or_one_data_error(
    tmp_path: Path, blob: bytes, kind: str
) -> None:
    """A table file holding anything at all reads, or fails in one line naming the file."""
    from pytest_labelquality.formats.readers import read_table

    path = tmp_path / f"t.{kind}"
    path.write_bytes(blob)
    try:
        table = read_table(path, ["a"])
    except DataError as exc:
        message = str(exc)
        assert message.startswith(str(path))
        assert "\n" not in message
    else:
        assert len(table.columns["a"]) == len(table.rows)


# --- Hypothesis: any path a labels table names is read inside the folder or refused by row.

#: Pieces of a path: the folder's own files and folders, ways out of it (.., an absolute
#: path, a symlink to a folder outside), and names the filesystem refuses.
PATH_PARTS = st.sampled_from(
    ["red", "blue", "0.png", "1.png", "..", ".", "", "out", "loop", "0.png/x", "a" * 300, "\\",
     "x\x00.png", "~", " ", "nested", "sub.png"]
)  # fmt: skip


def _boundary_folder(base: Path) -> tuple[Path, Path]:
    """The dataset's folder (photos, a symlink out, a symlink loop, a folder named like an
    image, nested photos) and an outside folder with an image of its own."""
    root = base / "imgs"
    _photos(root, per_class=2)
    outside = _secret(base / "outside").parent
    (root / "out").symlink_to(outside, target_is_directory=True)
    (root / "loop").symlink_to(root / "loop")
    (root / "red" / "sub.png").mkdir()
    shutil.copytree(root / "red", root / "nested" / "red", symlinks=True)
    return root, outside


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    pieces=st.lists(PATH_PARTS, min_size=1, max_size=5),
    absolute=st.sampled_from(["", "root", "outside"]),
)
def test_a_labels_table_path_is_read_inside_the_folder_or_refused_naming_its_row(
    tmp_path_factory: pytest.TempPathFactory, pieces: list[str], absolute: str
) -> None:
    import csv
    import io

    from pytest_labelquality.sources import load_dataset

    base = tmp_path_factory.mktemp("boundary")
    root, outside = _boundary_folder(base)
    prefix = {"": "", "root": f"{root}/", "outside": f"{outside}/"}[absolute]
    generated = prefix + "/".join(pieces)
    buffer = io.StringIO(newline="")
    rows = [["red/0.png", "red"], ["blue/0.png", "blue"], ["blue/1.png", "blue"]]
    csv.writer(buffer).writerows([["path", "label"], *rows, [generated, "red"]])
    (base / "labels.csv").write_text(buffer.getvalue(), encoding="utf-8", newline="")
    body = _images_spec("{format: images, dir: imgs, labels: labels.csv}")
    spec = load_spec(write_spec(base, body))[0]
    try:
        data = load_dataset(spec)
    except DataError as exc:
        message = str(exc)
        assert "\n" not in message
        assert message.startswith(f"{base / 'labels.csv'}:5: "), message
        return
    real_root = os.path.realpath(root)
    for file in data.files:
        assert os.path.realpath(file).startswith(real_root + os.sep), (generated, file)
    assert len(data) == 4


# --- Honest numbers: identical cold runs give identical out-of-fold probabilities.

#: One cold run of every dataset of a spec, each with a cache of its own under argv[2].
COLD_RUN = """
import sys
from pathlib import Path
from pytest_labelquality.runner import check_dataset
from pytest_labelquality.spec import load_spec
for spec in load_spec(Path(sys.argv[1])):
    check_dataset(spec, cache_dir=Path(sys.argv[2]) / spec.name, progress=lambda _: None)
"""


def _cold_runs(spec: Path, caches: list[Path], threads: list[str | None]) -> None:
    """``spec`` run cold once per cache folder, each in a fresh process with its thread count
    fixed (``$LABEL_QUALITY_THREADS``) or, for None, sized by the machine as users run it."""
    for cache, count in zip(caches, threads, strict=True):
        env = {k: v for k, v in os.environ.items() if k != "LABEL_QUALITY_THREADS"}
        env |= {"LABEL_QUALITY_THREADS": count} if count else {}
        subprocess.run([sys.executable, "-c", COLD_RUN, str(spec), str(cache)], check=True, env=env)


def _fold_probs(cache: Path) -> dict[str, str]:
    """A digest of every fold entry's held-out rows and probabilities, by dataset and cache
    file name."""
    import hashlib

    found = {}
    for path in sorted(cache.glob("*/*/*.npz")):
        with np.load(path) as entry:
            if {"probs", "test"} <= set(entry.files):
                arrays = entry["test"].tobytes() + entry["probs"].tobytes()
                found[f"{path.parts[-3]}/{path.name}"] = hashlib.sha256(arrays).hexdigest()
    return found


@pytest.mark.slow
def test_cold_runs_give_the_same_probabilities_and_keras_keys_hold_the_threads(
    tmp_path: Path, quickdraw_dir: Path
) -> None:
    """Three cold runs in fresh processes, on one thread, two and two again. The scikit-learn
    models, hog_boosting and tfidf_linear (and so the ensembles of them) give the same out-of-fold
    probabilities bit for bit on one thread and on two, under the same cache keys (the long
    table has more than 2,000 training rows, so that boosting and BLAS do use two threads;
    measured as well on 2,600 drawings). The Keras models' results differ with the thread
    count (in the last bits, and so in what they learn), so their keys hold it: the two-thread
    runs agree bit for bit, and the one-thread run's entries are others, never mixed in."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    np.savez(tmp_path / "digits.npz", x=x[:450], y=y[:450])
    long = np.vstack([x[:, 18:30], x[:, 34:46]])  # 3,594 rows, 12 columns
    np.savez(tmp_path / "long.npz", x=long, y=np.concatenate([y, y]))
    texts = [f"{'alpha beta' if i % 2 else 'gamma delta'} item {i} word{i % 7}" for i in range(60)]
    (tmp_path / "t.csv").write_text(
        "t,y\n" + "".join(f"{t},{'ab' if i % 2 else 'gd'}\n" for i, t in enumerate(texts))
    )
    runs = {
        "rf": ("digits.npz", "{name: random_forest, params: {n_estimators: 20}}"),
        "long-lr": ("long.npz", "{name: logistic_regression}"),
        "long-hgb": ("long.npz", "{name: hist_gradient_boosting, params: {max_iter: 10}}"),
    }
    body = "datasets:\n" + "".join(
        f"  - name: {name}\n    source: {{format: npz, path: {path}}}\n"
        f"    model: {model}\n    cv: {{folds: 3}}\n    gate: {{max_noise_rate: 1}}\n"
        for name, (path, model) in runs.items()
    )
    body += (
        "  - name: hog\n    source: {format: sklearn, name: digits}\n"
        "    model: {name: hog_boosting, params: {max_iter: 10}}\n    cv: {folds: 3}\n"
        "    gate: {max_noise_rate: 1}\n"
        "  - name: text\n    source: {format: text, path: t.csv, text: t, label: y}\n"
        "    model: {name: tfidf_linear}\n    cv: {folds: 3}\n    gate: {max_noise_rate: 1}\n"
    )
    keras = ("small_cnn",)  # cnn and walkthrough_cnn train through the same code
    drawings = f"{{format: quickdraw, dir: {quickdraw_dir}, classes: [cat, dog], limit: 90}}"
    keras_body = "datasets:\n" + "".join(
        f"  - name: {name}\n    source: {drawings}\n    model: {{name: {name}, epochs: 2}}\n"
        "    cv: {folds: 3}\n    gate: {max_noise_rate: 1}\n"
        for name in keras
    )
    spec = write_spec(tmp_path, body + keras_body.removeprefix("datasets:\n"))
    caches = [tmp_path / "one", tmp_path / "two", tmp_path / "again"]
    _cold_runs(spec, caches[:2], ["1", "2"])
    _cold_runs(write_spec(tmp_path, keras_body, name="keras"), caches[2:], ["2"])
    one, two, again = (_fold_probs(c) for c in caches)
    assert len(one) == len(two) == 3 * (len(runs) + 2 + len(keras))
    assert again == {n: d for n, d in two.items() if n.split("/")[0] in keras}
    in_keras = {n for n in [*one, *two] if n.split("/")[0] in keras}
    assert len(in_keras) == 2 * 3 * len(keras)  # its folds on one thread and on two: other keys
    assert {n: d for n, d in one.items() if n not in in_keras} == {
        n: d for n, d in two.items() if n not in in_keras
    }


# --- More sources, review files and cache URLs, each one line naming where.


def _iris_jsonl(change: Callable[[int, dict[str, Any]], dict[str, Any]]) -> str:
    rows = [
        {"a": float(x[0]), "b": float(x[1]), "y": int(y)}
        for x, y in zip(IRIS_X, IRIS_Y, strict=True)
    ]
    return "".join(json.dumps(change(i, r)) + "\n" for i, r in enumerate(rows))


def _at_row(index: int, **values: Any) -> Callable[[int, dict[str, Any]], dict[str, Any]]:
    return lambda i, r: {**r, **values} if i == index else r


def _npz(**arrays: Any) -> Callable[[Path], None]:
    return lambda path: np.savez(path, **arrays)


#: (what, file name, its content, the source, the message): data a run must refuse in one line.
SOURCE_CASES: list[tuple[str, str, Any, str, str]] = [
    ("jsonl integer past float", "t.jsonl", _iris_jsonl(_at_row(2, a=10**400)),
     "{format: jsonl, path: t.jsonl, label: y}",
     r"t\.jsonl:3: column 'a': a number of 401 digits is too large for a float"),
    ("jsonl integer of 5000 digits", "t.jsonl", '{"a": ' + "9" * 5000 + ', "y": 1}\n',
     "{format: jsonl, path: t.jsonl, label: y}", r"t\.jsonl:1: not readable JSON \(Exceeds"),
    ("jsonl label an object", "t.jsonl", _iris_jsonl(_at_row(4, y={"c": 1})),
     "{format: jsonl, path: t.jsonl, label: y}", r"t\.jsonl:5: the label in column 'y' is \{"),
    ("jsonl label a list", "t.jsonl", _iris_jsonl(_at_row(0, y=[1])),
     "{format: jsonl, path: t.jsonl, label: y}", r"t\.jsonl:1: .* a list or object"),
    ("jsonl label only", "t.jsonl", _iris_jsonl(lambda i, r: {"y": r["y"]}),
     "{format: jsonl, path: t.jsonl, label: y}", r"t\.jsonl: no feature columns besides"),
    ("csv label only", "t.csv", "y\n" + "\n".join(str(v) for v in IRIS_Y) + "\n",
     "{format: csv, path: t.csv, label: y}", r"t\.csv: no feature columns besides the label 'y'"),
    ("jsonl Infinity literal", "t.jsonl", _iris_jsonl(_at_row(1, a=float("inf"))),
     "{format: jsonl, path: t.jsonl, label: y}", r"t\.jsonl: 1 item\(s\) have NaN or infinite"),
    ("csv 1e999", "t.csv", "a,y\n1e999,0\n" + "".join(f"{i},{i % 3}\n" for i in range(20)),
     "{format: csv, path: t.csv, label: y}", r"t\.csv: 1 item\(s\) have NaN or infinite"),
    ("npz complex features", "d.npz", _npz(x=IRIS_X + 1j, y=IRIS_Y),
     "{format: npz, path: d.npz}", r"d\.npz: the features are complex numbers"),
    ("npz object features", "d.npz", _npz(x=np.array([[1, "a"]] * 150, dtype=object), y=IRIS_Y),
     "{format: npz, path: d.npz}", r"d\.npz: not a readable \.npz file \(Object arrays"),
    ("npz 2-D labels", "d.npz", _npz(x=IRIS_X, y=np.stack([IRIS_Y, IRIS_Y], 1)),
     "{format: npz, path: d.npz}", r"d\.npz: labels must be 1-D, got shape \[150, 2\]"),
    ("npz NaN labels", "d.npz", _npz(x=IRIS_X, y=np.where(IRIS_Y == 1, np.nan, IRIS_Y)),
     "{format: npz, path: d.npz}", r"d\.npz: 50 item\(s\) have no label \(NaN\)"),
    ("text a number", "t.jsonl", "".join(json.dumps({"t": i, "y": i % 2}) + "\n" for i in range(9)),
     "{format: text, path: t.jsonl, text: t, label: y}", r"t\.jsonl:1: column 't' is not text: 0"),
    ("text a list", "t.jsonl", '{"t": ["a", "b"], "y": 1}\n',
     "{format: text, path: t.jsonl, text: t, label: y}", r"t\.jsonl:1: column 't' is not text"),
    ("text in UTF-16 read as UTF-8", "t.csv", "t,y\nwords,1\nmore,2\n".encode("utf-16"),
     "{format: text, path: t.csv, text: t, label: y}", r"t\.csv:1: not valid utf-8"),
    ("text ids twice", "t.csv", "i,t,y\n" + "".join(f"{i % 5},w{i},{i % 2}\n" for i in range(20)),
     "{format: text, path: t.csv, text: t, label: y, id: i}", r"t\.csv: duplicate item ids"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "content", "source", "message"),
    [c[1:] for c in SOURCE_CASES],
    ids=[c[0] for c in SOURCE_CASES],
)
def test_more_unusable_sources_are_one_error_naming_the_file_and_line(
    tmp_path: Path, name: str, content: Any, source: str, message: str
) -> None:
    from pytest_labelquality.sources import load_dataset

    if callable(content):
        content(tmp_path / name)
    elif isinstance(content, bytes):
        (tmp_path / name).write_bytes(content)
    else:
        (tmp_path / name).write_text(content)
    body = f"datasets:\n  - name: d\n    source: {source}\n    gate: {{max_noise_rate: 1}}\n"
    spec = load_spec(write_spec(tmp_path, body))[0]
    with pytest.raises(DataError, match=message) as raised:
        load_dataset(spec)
    assert "\n" not in str(raised.value)


def _nul(root: Path) -> str:
    return "red/0\x00.png"


def _too_long(root: Path) -> str:
    return "red/" + "a" * 300 + ".png"


def _file_as_folder(root: Path) -> str:
    return "red/0.png/1.png"


def _looping_folder(root: Path) -> str:
    (root / "loop").symlink_to(root / "loop")
    return "loop/x.png"


def _folder_named_png(root: Path) -> str:
    (root / "red" / "more.png").mkdir()
    return "red/more.png"


@pytest.mark.parametrize(
    "make", [_nul, _too_long, _file_as_folder, _looping_folder, _folder_named_png]
)
def test_a_labels_table_path_the_filesystem_refuses_names_the_row(
    tmp_path: Path, make: Callable[[Path], str]
) -> None:
    import csv
    import io

    from pytest_labelquality.sources import load_dataset

    _photos(tmp_path / "imgs", per_class=2)
    rows = [["red/0.png", "red"], ["blue/0.png", "blue"], [make(tmp_path / "imgs"), "red"]]
    buffer = io.StringIO(newline="")
    csv.writer(buffer).writerows([["path", "label"], *rows])
    (tmp_path / "labels.csv").write_text(buffer.getvalue(), newline="")
    source = "{format: images, dir: imgs, labels: labels.csv}"
    spec = load_spec(write_spec(tmp_path, _images_spec(source)))[0]
    with pytest.raises(DataError, match=r"labels\.csv:4: (cannot read )?'") as raised:
        load_dataset(spec)
    assert "\n" not in str(raised.value)


ENTRY = "{dataset: iris, id: '1', hash: x, decision: correct, by: me}"
#: (what, the review file's text, the message): review files a run must refuse, located.
REVIEW_FILES = {
    "an item reviewed twice": (
        f"- {ENTRY}\n- {{dataset: iris, id: '1', hash: y, decision: fixed, by: you}}\n",
        r"reviews\.yaml:2: \[1\]\.id: item '1' of 'iris' is reviewed twice \(also entry \[0\]\)",
    ),
    "an alias repeats an entry": (
        f"- &e {ENTRY}\n- *e\n",
        r"reviews\.yaml:\d: \[1\]\.id: item '1' of 'iris' is reviewed twice",
    ),
    "a mapping": ("dataset: iris\n", r"reviews\.yaml:1: expected a list, got a mapping"),
    "null": ("null\n", r"reviews\.yaml:1: expected a list, got None"),
    "an id as a number": (
        "- {dataset: iris, id: 1, hash: x, decision: correct, by: me}\n",
        r"reviews\.yaml:1: \[0\]\.id: expected a string, got 1 \(quote it: '1'\)",
    ),
    "an unquoted date": (
        f"- {ENTRY[:-1]}, date: 2024-01-01}}\n",
        r"\[0\]\.date: expected a string, got datetime\.date\(2024, 1, 1\) \(quote it",
    ),
    "an unknown key": (f"- {ENTRY[:-1]}, oops: 1}}\n", r"\[0\]\.oops: unknown key; valid keys"),
    "an unknown decision": (
        "- {dataset: iris, id: '1', hash: x, decision: maybe, by: me}\n",
        r"\[0\]\.decision: 'maybe' is not one of: correct, fixed, ambiguous",
    ),
    "a NUL byte": ("\x00\x01", r"reviews\.yaml:1: invalid YAML: unacceptable character #x0000"),
}


@pytest.mark.parametrize("what", sorted(REVIEW_FILES))
def test_a_review_file_of_the_wrong_shape_is_one_located_error(tmp_path: Path, what: str) -> None:
    from pytest_labelquality.reviews import load_reviews

    text, message = REVIEW_FILES[what]
    spec = iris_spec(tmp_path)
    (tmp_path / "s.labelquality.reviews.yaml").write_text(text)
    with pytest.raises(SpecError, match=message) as raised:
        load_reviews(spec, "iris")
    assert "\n" not in str(raised.value)


def test_a_folder_where_the_review_file_belongs_is_one_error(tmp_path: Path) -> None:
    (spec,) = load_spec(iris_spec(tmp_path))
    (tmp_path / "s.labelquality.reviews.yaml").mkdir()
    with pytest.raises(DataError, match=r"reviews\.yaml: cannot read: Is a directory"):
        run(spec, tmp_path / "cache")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("nosuchproto://x/y", r"cannot use the cache URL nosuchproto://x/y: Protocol not known"),
        ("zip://x::file:///nonexistent/a.zip", r"cannot use the cache URL zip://x::file:///no"),
        ("http://127.0.0.1:9/cache", r"cannot use the cache at http://127\.0\.0\.1:9/cache: "),
    ],
    ids=["unknown protocol", "chained archive missing", "nothing listens on loopback"],
)
def test_a_cache_url_that_cannot_work_is_one_cache_error(
    tmp_path: Path, url: str, message: str
) -> None:
    (spec,) = load_spec(iris_spec(tmp_path))
    with pytest.raises(CacheError, match=message) as raised:
        check_dataset(spec, cache_dir=url, progress=lambda _: None)
    assert "\n" not in str(raised.value)


def test_a_memory_cache_url_gives_the_answer_of_a_folder_and_hits_when_warm(tmp_path: Path) -> None:
    (spec,) = load_spec(iris_spec(tmp_path))
    url = f"memory://lq-{os.getpid()}-{tmp_path.name}"
    said: list[str] = []
    cold = check_dataset(spec, cache_dir=url, progress=said.append).to_json()
    warm = check_dataset(spec, cache_dir=url, progress=said.append).to_json()
    assert answer(cold) == answer(warm) == answer(run(spec, tmp_path / "cache"))
    assert any("cache hit" in line for line in said)
