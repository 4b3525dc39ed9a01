"""The content-addressed cache: keys that see every change, atomic and self-healing entries."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pytest_labelquality.cache import ArrayCache, fingerprint


def test_fingerprint_sees_values_dtype_and_shape() -> None:
    labels = np.array([0, 1, 1, 0])
    base = fingerprint(labels, {"model": "cnn"}, 5)
    assert base == fingerprint(labels.copy(), {"model": "cnn"}, 5)
    changed = labels.copy()
    changed[2] = 0
    assert fingerprint(changed, {"model": "cnn"}, 5) != base
    assert fingerprint(labels.astype(np.int32), {"model": "cnn"}, 5) != base
    assert fingerprint(labels.reshape(2, 2), {"model": "cnn"}, 5) != base
    assert fingerprint(labels, {"model": "cnn"}, 4) != base
    assert fingerprint(np.array(["a", "b"]), 1) != fingerprint(np.array(["a", "c"]), 1)


def test_save_load_round_trip_leaves_no_temporary_files(tmp_path: Path) -> None:
    cache = ArrayCache(tmp_path / "c")
    key = fingerprint("k")
    assert cache.load(key) is None
    cache.save(key, {"probs": np.eye(3, dtype=np.float32), "test": np.arange(3)})
    entry = cache.load(key)
    assert entry is not None
    np.testing.assert_array_equal(entry["probs"], np.eye(3))
    assert [p.name for p in cache.path(key).parent.iterdir()] == [f"{key}.npz"]


def test_corrupt_entry_is_dropped_not_trusted(tmp_path: Path) -> None:
    cache = ArrayCache(tmp_path)
    key = fingerprint("k")
    cache.save(key, {"a": np.arange(1000)})
    data = cache.path(key).read_bytes()
    cache.path(key).write_bytes(data[: len(data) // 2])
    assert cache.load(key) is None
    assert not cache.path(key).exists()
