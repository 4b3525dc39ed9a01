"""Cache keys: every part and every version changes its key, and only one module builds them."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pytest_labelquality import cache_keys
from pytest_labelquality.dataset import DataKind, Dataset
from pytest_labelquality.models import ModelConfig
from pytest_labelquality.spec import DetectionSpec, ModelSpec, RankedBy

PACKAGE = Path(cache_keys.__file__).parent


def dataset(**changes: Any) -> Dataset:
    base = Dataset(
        features=np.arange(12, dtype=np.float64).reshape(4, 3),
        labels=np.array([0, 1, 0, 1]),
        ids=np.array(["a", "b", "c", "d"]),
        class_names=("cat", "dog"),
        kind=DataKind.TABULAR,
        origin="made here",
        flipped=np.empty(0, dtype=np.int64),
    )
    return dataclasses.replace(base, **changes)


CONFIG = ModelConfig(name="logistic_regression", factory=None, epochs=None, batch_size=None,
                     learning_rate=None)  # fmt: skip


def test_the_data_key_follows_features_labels_ids_and_class_names() -> None:
    keys = {
        cache_keys.data_key(dataset()),
        cache_keys.data_key(dataset(features=np.arange(12, dtype=np.float64).reshape(4, 3) + 1)),
        cache_keys.data_key(dataset(labels=np.array([1, 1, 0, 1]))),
        cache_keys.data_key(dataset(ids=np.array(["a", "b", "c", "e"]))),
        cache_keys.data_key(dataset(class_names=("cat", "wolf"))),
    }
    assert len(keys) == 5
    assert cache_keys.data_key(dataset(origin="elsewhere")) == cache_keys.data_key(dataset())


def test_every_part_of_a_run_and_its_lineage_is_in_the_key() -> None:
    other = dataclasses.replace(CONFIG, params={"C": 0.1})
    runs = {
        cache_keys.run_key("d1", CONFIG, folds=5, seed=0),
        cache_keys.run_key("d2", CONFIG, folds=5, seed=0),
        cache_keys.run_key("d1", other, folds=5, seed=0),
        cache_keys.run_key("d1", CONFIG, folds=3, seed=0),
        cache_keys.run_key("d1", CONFIG, folds=5, seed=1),
    }
    assert len(runs) == 5
    lineages = {
        cache_keys.lineage_key("a.labelquality.yaml", "x", CONFIG, folds=5, seed=0),
        cache_keys.lineage_key("b.labelquality.yaml", "x", CONFIG, folds=5, seed=0),
        cache_keys.lineage_key("a.labelquality.yaml", "y", CONFIG, folds=5, seed=0),
        cache_keys.lineage_key("a.labelquality.yaml", "x", other, folds=5, seed=0),
    }
    assert len(lineages) == 4
    assert not runs & lineages  # a kind is part of its key


def test_detection_keys_follow_settings_and_library_versions() -> None:
    spec = DetectionSpec()
    base = cache_keys.detection_key("r", spec, cleanlab="2.9.0", plugin="0.1.0")
    changed = [
        cache_keys.detection_key("r2", spec, cleanlab="2.9.0", plugin="0.1.0"),
        cache_keys.detection_key(
            "r",
            dataclasses.replace(spec, ranked_by=RankedBy.SELF_CONFIDENCE),
            cleanlab="2.9.0",
            plugin="0.1.0",
        ),
        cache_keys.detection_key("r", spec, cleanlab="2.10.0", plugin="0.1.0"),
        cache_keys.detection_key("r", spec, cleanlab="2.9.0", plugin="0.2.0"),
    ]
    assert len({base, *changed}) == 5
    auto = cache_keys.auto_key("d", ["a", "b"], ModelSpec(), {}, folds=5, seed=0)
    assert auto != cache_keys.auto_key("d", ["a"], ModelSpec(), {}, folds=5, seed=0)


def test_bumping_a_kinds_version_misses_its_old_entries(monkeypatch: pytest.MonkeyPatch) -> None:
    before = {
        "fold": cache_keys.fold_key("r", 0),
        "embeddings": cache_keys.embeddings_key({"name": "e"}, np.array(["h1", "h2"])),
        "images": cache_keys.images_key(Path("/data"), [["a.png", 10, 1]], [[64, 64], "pad"]),
    }
    other_fold = cache_keys.fold_key("r", 1)
    for kind in before:
        monkeypatch.setitem(cache_keys.VERSIONS, kind, cache_keys.VERSIONS[kind] + 1)
    assert cache_keys.fold_key("r", 0) not in (before["fold"], other_fold)
    assert cache_keys.embeddings_key({"name": "e"}, np.array(["h1", "h2"])) != before["embeddings"]
    images = cache_keys.images_key(Path("/data"), [["a.png", 10, 1]], [[64, 64], "pad"])
    assert images != before["images"]


def test_named_parts_do_not_depend_on_their_order() -> None:
    assert cache_keys.key("fold", run="r", fold=1) == cache_keys.key("fold", fold=1, run="r")
    assert cache_keys.key("fold", run="r", fold=1) != cache_keys.key("fold", run="1", fold="r")


def test_only_cache_keys_builds_keys() -> None:
    """Other modules may fingerprint content (the cache its entries' checksums, models a
    factory's source), never assemble an entry's key."""
    calls = {}
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        found = [
            node.lineno
            for node in ast.walk(tree)
            if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "fingerprint"
        ]
        if found:
            calls[path.relative_to(PACKAGE).as_posix()] = len(found)
    assert calls == {"cache.py": 1, "cache_keys.py": 1, "models.py": 1}
