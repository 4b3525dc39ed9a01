"""The stronger image models and ``model: auto`` with real TensorFlow and scikit-learn."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pytest_labelquality.ensemble import REGULARISED_BOOSTING
from pytest_labelquality.errors import ModelError
from pytest_labelquality.models import CNN_DEFAULT_CLASSES, FoldModel, resolve_model
from pytest_labelquality.runner import check_dataset
from pytest_labelquality.sources import load_dataset
from pytest_labelquality.spec import ModelSpec, load_spec


def test_the_image_default_depends_on_the_number_of_classes(tmp_path: Path) -> None:
    """Boosting's cost grows with the classes, the CNN's does not."""

    def default(classes: int, image: bool = True) -> str:
        spec = ModelSpec()
        config = resolve_model(
            spec, image=image, spec_dir=tmp_path, train_items=20_800, classes=classes
        )
        return config.name

    assert default(2) == default(CNN_DEFAULT_CLASSES - 1) == "hog_boosting"
    assert default(CNN_DEFAULT_CLASSES) == default(14) == "small_cnn"
    assert default(14, image=False) == "table_ensemble"
    config = resolve_model(
        ModelSpec(), image=True, spec_dir=tmp_path, train_items=20_800, classes=14
    )
    assert (config.epochs, config.batch_size) == (12, 128)


def test_small_cnn_finds_flips_and_its_mirror_predictor_reloads(
    tmp_path: Path, bars_spec: Callable[..., Path]
) -> None:
    """Bars keep their class when mirrored, so ``mirror`` applies; the saved fold model (with
    its mirror-averaging layer) scores rows as it did in training."""
    (spec,) = load_spec(bars_spec("{name: small_cnn, mirror: true}"))
    lines: list[str] = []
    result = check_dataset(spec, cache_dir=tmp_path / "cache", progress=lines.append).to_json()
    assert result["model"]["name"] == "small_cnn"
    assert result["model"]["mirror"] is True
    assert result["model"]["epochs"] == 12  # 250,000 item-passes, at most 12 epochs
    assert result["model"]["batch_size"] == 16  # 200 training items: at least 12 steps an epoch
    assert result["injected"]["recall"] >= 0.8
    assert result["injected"]["precision"] >= 0.7
    # label smoothing keeps its probabilities soft: they are sharpened before counting
    assert result["noise"]["method"]["temperature"] < 1
    temperature = f"{result['noise']['method']['temperature']:.2f}"
    assert any(f"(probabilities at temperature {temperature})" in line for line in lines)
    assert any(line.startswith("  epoch 12/12") for line in lines)
    folds = [p for p in (tmp_path / "cache").rglob("*.keras")]
    assert len(folds) == 3
    model = FoldModel.load(folds[0].with_suffix(""))
    assert model is not None
    data = load_dataset(spec)
    probs = model.predict(data, np.arange(20))
    assert probs.shape == (20, 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1, atol=1e-4)


def test_auto_then_ensemble_then_members_train_each_fold_once(
    tmp_path: Path, bars_spec: Callable[..., Path]
) -> None:
    """``auto`` tries each image model on the first fold and caches its choice; the chosen
    model's run reuses that fold; the ensemble then trains only what is missing, and its
    members' own runs train nothing: each model trains each fold once."""
    cache = tmp_path / "cache"
    (auto_spec,) = load_spec(bars_spec("{name: auto, epochs: 3}"))
    lines: list[str] = []
    result = check_dataset(auto_spec, cache_dir=cache, progress=lines.append).to_json()
    auto = result["model"]["auto"]
    assert set(auto["candidates"]) == {"hog_boosting", "small_cnn", "ensemble"}
    assert auto["chosen"] == result["model"]["name"]
    best = max(f["accuracy"] for f in auto["candidates"].values())
    assert auto["candidates"][auto["chosen"]]["accuracy"] >= best - 0.005
    assert auto["held_out"] == 100
    assert sum("fold 1/3: training" in line for line in lines) == 2
    warm: list[str] = []
    again = check_dataset(auto_spec, cache_dir=cache, progress=warm.append).to_json()
    assert again["cache"]["status"] == "hit"
    assert again["model"]["auto"] == auto
    assert not any("training" in line for line in warm)
    assert any("(cached)" in line for line in warm)

    (spec,) = load_spec(bars_spec("{name: ensemble, epochs: 3}"))
    lines = []
    ensemble = check_dataset(spec, cache_dir=cache, progress=lines.append).to_json()
    assert ensemble["model"]["name"] == "ensemble"
    assert ensemble["injected"]["recall"] >= 0.8
    assert not any("fold 1/3: training" in line for line in lines)
    members = {}
    # the same runs as the members': hog_boosting takes no epochs (refused at collection)
    for name, model in (
        ("hog_boosting", "{name: hog_boosting}"),
        ("small_cnn", "{name: small_cnn, epochs: 3}"),
    ):
        path = bars_spec(model)
        # the ensemble averages its members' probabilities as they gave them; small_cnn's own
        # run scales its soft ones before counting (detection.calibrate: auto)
        path.write_text(path.read_text() + "    detection: {calibrate: none}\n")
        (member,) = load_spec(path)
        lines = []
        members[name] = check_dataset(member, cache_dir=cache, progress=lines.append).to_json()
        assert not any("training" in line for line in lines), f"{name} trained again"
    # with two classes, each item's p(vertical) is the members' mean
    vertical = [p_vertical(r) for r in (ensemble, *members.values())]
    np.testing.assert_allclose(vertical[0], (vertical[1] + vertical[2]) / 2, atol=2e-4)


def p_vertical(result: dict[str, Any]) -> np.ndarray:
    """Each item's probability of the second class, by index, from the ranking columns."""
    ranking = result["ranking"]
    out = np.zeros(result["items"])
    rows = zip(ranking["index"], ranking["suggested"], ranking["suggested_prob"], strict=True)
    for index, suggested, prob in rows:
        out[index] = prob if suggested == "vertical" else 1 - prob
    return out


def test_table_ensemble_is_the_mean_of_its_members_and_shares_their_folds(tmp_path: Path) -> None:
    """The table default trains logistic regression and boosted trees (plain and regularised)
    as runs of their own: a member that ran alone is not trained again, the members' own runs
    afterwards train nothing, and the ensemble's probabilities are the members' mean."""
    cache = tmp_path / "cache"

    def run(model: str) -> tuple[dict[str, Any], list[str]]:
        spec_file = tmp_path / "cancer.labelquality.yaml"
        spec_file.write_text(
            "datasets:\n  - name: cancer\n"
            "    source: {format: sklearn, name: breast_cancer, flip: {rate: 0.05, seed: 0}}\n"
            f"    model: {model}\n    cv: {{folds: 3}}\n    gate: {{max_noise_rate: 1.0}}\n"
        )
        (spec,) = load_spec(spec_file)
        lines: list[str] = []
        return check_dataset(spec, cache_dir=cache, progress=lines.append).to_json(), lines

    linear, _ = run("{name: logistic_regression}")
    default, lines = run("{}")
    assert default["model"]["name"] == "table_ensemble"
    trained = [line for line in lines if "fold 1/3: training" in line]
    assert len(trained) == 2, "logistic_regression's folds come from its own run"
    assert all("hist_gradient_boosting" in line for line in trained)
    assert default["injected"]["recall"] >= 0.7
    members = [linear]
    regularised = json.dumps(REGULARISED_BOOSTING)
    for model in (
        "{name: hist_gradient_boosting}",
        f"{{name: hist_gradient_boosting, params: {regularised}}}",
    ):
        result, lines = run(model)
        assert not any("training" in line for line in lines), f"{model} trained again"
        members.append(result)
    malignant = [p_class(r, "malignant") for r in (default, *members)]
    np.testing.assert_allclose(malignant[0], np.mean(malignant[1:], axis=0), atol=2e-4)


def test_table_ensemble_refuses_images_and_params(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="table_ensemble trains on a table, but this dataset"):
        resolve_model(
            ModelSpec(name="table_ensemble"), image=True, spec_dir=tmp_path, train_items=9
        )
    with pytest.raises(ModelError, match="keep their own settings"):
        resolve_model(ModelSpec(params={"C": 1}), image=False, spec_dir=tmp_path, train_items=9)


def p_class(result: dict[str, Any], name: str) -> np.ndarray:
    """Each item's probability of ``name`` (one of two classes), by index, from the ranking."""
    ranking = result["ranking"]
    out = np.zeros(result["items"])
    rows = zip(ranking["index"], ranking["suggested"], ranking["suggested_prob"], strict=True)
    for index, suggested, prob in rows:
        out[index] = prob if suggested == name else 1 - prob
    return out
