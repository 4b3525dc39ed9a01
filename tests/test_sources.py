"""Loading every source kind into one shape, with stable ids and usable-data checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pytest_labelquality.dataset import DataKind
from pytest_labelquality.errors import DataError
from pytest_labelquality.sources import check_folds, load_dataset
from pytest_labelquality.spec import DatasetSpec, load_spec


def dataset_spec(tmp_path: Path, source: str, gate: str = "{max_noise_rate: 0.1}") -> DatasetSpec:
    path = tmp_path / "d.labelquality.yaml"
    path.write_text(f"datasets:\n  - name: d\n    source: {source}\n    gate: {gate}\n")
    return load_spec(path)[0]


def test_quickdraw_limit_ids_and_shape(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for name in ("cat", "dog"):
        np.save(tmp_path / f"{name}.npy", rng.integers(0, 256, (30, 784), dtype=np.uint8))
    data = load_dataset(
        dataset_spec(tmp_path, "{format: quickdraw, dir: ., classes: [dog, cat], limit: 7}")
    )
    assert data.features.shape == (14, 28, 28)
    assert data.features.dtype == np.uint8
    assert data.class_names == ("dog", "cat")
    assert data.labels.tolist() == [0] * 7 + [1] * 7
    assert data.ids[:2].tolist() == ["dog/0", "dog/1"]
    assert data.ids[7] == "cat/0"
    assert data.kind is DataKind.IMAGE
    np.testing.assert_array_equal(data.features[8].ravel(), np.load(tmp_path / "cat.npy")[1])


def test_quickdraw_wrong_width_names_the_file(tmp_path: Path) -> None:
    np.save(tmp_path / "cat.npy", np.zeros((3, 100), dtype=np.uint8))
    np.save(tmp_path / "dog.npy", np.zeros((3, 784), dtype=np.uint8))
    with pytest.raises(DataError, match=r"cat\.npy: expected a 2-D uint8 array with 784 columns"):
        load_dataset(dataset_spec(tmp_path, "{format: quickdraw, dir: ., classes: [cat, dog]}"))


def test_npz_with_string_labels_and_ids(tmp_path: Path) -> None:
    np.savez(
        tmp_path / "d.npz",
        x=np.arange(12.0).reshape(6, 2),
        y=np.array(["b", "a", "b", "a", "c", "c"]),
        key=np.array([f"row-{i}" for i in range(6)]),
    )
    data = load_dataset(dataset_spec(tmp_path, "{format: npz, path: d.npz, ids: key}"))
    assert data.class_names == ("a", "b", "c")
    assert data.labels.tolist() == [1, 0, 1, 0, 2, 2]
    assert data.ids.tolist() == [f"row-{i}" for i in range(6)]
    assert data.kind is DataKind.TABULAR


def test_npz_integer_labels_outside_declared_classes(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", x=np.zeros((4, 2)), y=np.array([0, 1, 2, 5]))
    with pytest.raises(DataError, match=r"d\.npz: labels 2, 5 are outside the 2 declared classes"):
        load_dataset(dataset_spec(tmp_path, "{format: npz, path: d.npz, classes: ['no', 'yes']}"))


def test_npz_mismatched_lengths_and_nan(tmp_path: Path) -> None:
    np.savez(tmp_path / "short.npz", x=np.zeros((4, 2)), y=np.array([0, 1, 0]))
    with pytest.raises(DataError, match="mismatched lengths: 4 feature rows, 3 labels"):
        load_dataset(dataset_spec(tmp_path, "{format: npz, path: short.npz}"))
    features = np.zeros((4, 2))
    features[2, 1] = np.nan
    np.savez(tmp_path / "nan.npz", x=features, y=np.array([0, 1, 0, 1]))
    with pytest.raises(DataError, match=r"nan\.npz: 1 item\(s\) have NaN or infinite features"):
        load_dataset(dataset_spec(tmp_path, "{format: npz, path: nan.npz}"))


def test_unreadable_npz(tmp_path: Path) -> None:
    (tmp_path / "d.npz").write_text("not a zip")
    with pytest.raises(DataError, match=r"d\.npz: not a readable \.npz file"):
        load_dataset(dataset_spec(tmp_path, "{format: npz, path: d.npz}"))


def test_content_ids_are_stable_under_reordering(tmp_path: Path) -> None:
    x = np.random.default_rng(1).normal(size=(5, 3))
    np.savez(tmp_path / "a.npz", x=x, y=np.array([0, 1, 0, 1, 0]))
    np.savez(tmp_path / "b.npz", x=x[::-1], y=np.array([0, 1, 0, 1, 0])[::-1])
    a = load_dataset(dataset_spec(tmp_path, "{format: npz, path: a.npz}"))
    b = load_dataset(dataset_spec(tmp_path, "{format: npz, path: b.npz}"))
    assert a.ids.tolist() == b.ids[::-1].tolist()
    assert len(set(a.ids.tolist())) == 5


def test_csv_columns_labels_and_ids(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("id,w,h,kind\nA,1,2,cat\nB,3,4,dog\nC,5,6,cat\n")
    data = load_dataset(dataset_spec(tmp_path, "{format: csv, path: d.csv, label: kind, id: id}"))
    assert data.feature_names == ("w", "h")
    assert data.features.tolist() == [[1, 2], [3, 4], [5, 6]]
    assert data.class_names == ("cat", "dog")
    assert data.ids.tolist() == ["A", "B", "C"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("w,kind\n1,cat\n,dog\n", r"NaN or infinite features"),
        ("w,kind\n1,cat\n2\n", r"d\.csv:3: 1 fields, the header has 2"),
        ("w,label\n1,cat\n", r"no column 'kind'; columns: w, label"),
        ("w,kind\n1,cat\n2,bird\n", r"labels 'bird' are not among the declared classes"),
    ],
)
def test_csv_problems_name_file_and_line(tmp_path: Path, body: str, message: str) -> None:
    (tmp_path / "d.csv").write_text(body)
    spec = dataset_spec(tmp_path, "{format: csv, path: d.csv, label: kind, classes: [cat, dog]}")
    with pytest.raises(DataError, match=message):
        load_dataset(spec)


def test_sklearn_dataset_and_uniform_flips(tmp_path: Path) -> None:
    clean = load_dataset(dataset_spec(tmp_path, "{format: sklearn, name: digits}"))
    flipped = load_dataset(
        dataset_spec(tmp_path, "{format: sklearn, name: digits, flip: {rate: 0.2, seed: 3}}")
    )
    assert len(clean) == 1797
    assert clean.class_names == tuple(str(d) for d in range(10))
    changed = np.flatnonzero(clean.labels != flipped.labels)
    assert changed.tolist() == flipped.flipped.tolist()
    assert len(changed) == round(0.2 * 1797)
    # every flip lands on another class, and all nine others are used
    offsets = (flipped.labels[changed] - clean.labels[changed]) % 10
    assert set(offsets.tolist()) == set(range(1, 10))


def test_a_class_smaller_than_the_folds(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", x=np.zeros((12, 1)), y=np.array([0] * 9 + [1] * 3))
    data = load_dataset(dataset_spec(tmp_path, "{format: npz, path: d.npz, classes: [a, b]}"))
    check_folds(data, 3)
    with pytest.raises(DataError, match=r"at least cv.folds = 5 items, but class 'b' has 3"):
        check_folds(data, 5)


def test_duplicate_ids(tmp_path: Path) -> None:
    np.savez(
        tmp_path / "d.npz", x=np.zeros((3, 1)), y=np.array([0, 1, 0]), i=np.array(["a", "b", "a"])
    )
    with pytest.raises(DataError, match=r"duplicate item ids, e\.g\. a"):
        load_dataset(dataset_spec(tmp_path, "{format: npz, path: d.npz, ids: i}"))


def test_class_conditional_flips_move_only_the_named_classes(tmp_path: Path) -> None:
    clean = load_dataset(dataset_spec(tmp_path, "{format: sklearn, name: digits}"))
    flipped = load_dataset(
        dataset_spec(
            tmp_path,
            "{format: sklearn, name: digits, flip: {rate: 0.1, pairs: {'1': '7', '3': '8'}}}",
        )
    )
    changed = np.flatnonzero(clean.labels != flipped.labels)
    assert changed.tolist() == flipped.flipped.tolist()
    for digit in (1, 3):  # the rate is a share of each named class, a noise-matrix entry
        members = int((clean.labels == digit).sum())
        assert int((clean.labels[changed] == digit).sum()) == round(0.1 * members)
    moves = set(zip(clean.labels[changed].tolist(), flipped.labels[changed].tolist(), strict=True))
    assert moves == {(1, 7), (3, 8)}


def test_class_conditional_flips_name_known_classes(tmp_path: Path) -> None:
    spec = "{format: sklearn, name: digits, flip: {rate: 0.1, pairs: {'1': seven}}}"
    with pytest.raises(DataError, match="unknown class 'seven'"):
        load_dataset(dataset_spec(tmp_path, spec))
