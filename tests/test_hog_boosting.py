"""The default image model: HOG and ink-layout features, boosted trees, mirror averaging."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from pytest_labelquality.errors import ModelError
from pytest_labelquality.hog_boosting import CELLS, LAYOUT, ORIENTATIONS, image_features
from pytest_labelquality.models import FoldModel, fit_predict, resolve_model
from pytest_labelquality.runner import check_dataset
from pytest_labelquality.sources import load_dataset
from pytest_labelquality.spec import load_spec

HOG_SIZE = CELLS * CELLS * ORIENTATIONS


def orientation_mass(features: np.ndarray) -> np.ndarray:
    """Each orientation bin's share of one image's gradient histogram."""
    hog = features[:HOG_SIZE].reshape(CELLS * CELLS, ORIENTATIONS) ** 2  # undo the square root
    return hog.sum(axis=0) / hog.sum()


def test_gradients_of_a_bar_run_across_it() -> None:
    horizontal = np.zeros((1, 28, 28), np.uint8)
    horizontal[0, 12:16, 3:25] = 255
    vertical = horizontal.transpose(0, 2, 1).copy()
    # bin k is centred on (k + 0.5) * 15 degrees: 90 (up-down) splits between bins 5 and 6,
    # 0 (left-right) between bins 11 and 0
    across_horizontal = orientation_mass(image_features(horizontal)[0])
    across_vertical = orientation_mass(image_features(vertical)[0])
    assert across_horizontal[[5, 6]].sum() > 0.6
    assert across_vertical[[11, 0]].sum() > 0.6
    assert across_horizontal[[11, 0]].sum() < 0.3


def test_layout_features_are_the_mean_ink_on_a_grid() -> None:
    images = np.random.default_rng(0).integers(0, 256, (3, 28, 28)).astype(np.uint8)
    layout = image_features(images)[:, HOG_SIZE:]
    block = 28 // LAYOUT
    expected = images.reshape(3, LAYOUT, block, LAYOUT, block).mean(axis=(2, 4)) / 255
    np.testing.assert_allclose(layout, expected.reshape(3, -1), rtol=1e-3)


def test_mirrored_features_are_those_of_the_mirror_images() -> None:
    images = np.random.default_rng(1).integers(0, 256, (5, 28, 28)).astype(np.uint8)
    np.testing.assert_array_equal(
        image_features(images, mirrored=True), image_features(images[:, :, ::-1])
    )
    assert not np.allclose(image_features(images, mirrored=True), image_features(images))


def test_colour_images_of_any_size_are_scaled_and_averaged_to_grey() -> None:
    colour = np.random.default_rng(2).integers(0, 256, (4, 30, 33, 3)).astype(np.uint8)
    features = image_features(colour)
    assert features.shape == (4, HOG_SIZE + LAYOUT * LAYOUT)
    grey = colour.astype(np.float32).mean(axis=3) / 255
    np.testing.assert_allclose(features, image_features(grey), rtol=2e-3, atol=1e-3)
    assert features.max() <= 1.0  # uint8 scaled by 255, not taken as 0..255
    with pytest.raises(ValueError, match="at least 8x8"):
        image_features(np.zeros((2, 6, 6)))


def test_too_small_images_fail_the_item_with_a_model_error(tmp_path: Path) -> None:
    np.savez(tmp_path / "tiny.npz", x=np.zeros((30, 16), np.uint8), y=np.arange(30) % 2)
    path = tmp_path / "tiny.labelquality.yaml"
    path.write_text(
        "datasets:\n  - name: tiny\n"
        "    source: {format: npz, path: tiny.npz, classes: [a, b], shape: [4, 4]}\n"
        "    cv: {folds: 3}\n"
        "    gate: {max_noise_rate: 1.0}\n"
    )
    (spec,) = load_spec(path)
    with pytest.raises(ModelError, match="hog_boosting: expected images of at least 8x8"):
        check_dataset(spec, cache_dir=tmp_path / "cache", progress=lambda _: None)


def test_small_folds_still_grow_trees(tmp_path: Path, bars_spec: Callable[..., Path]) -> None:
    """40 training images per fold: the trees' leaves shrink so that they can split at all."""
    (spec,) = load_spec(bars_spec("{}", flip=False, count=60))
    result = check_dataset(spec, cache_dir=tmp_path / "cache", progress=lambda _: None).to_json()
    assert result["oof_accuracy"] > 0.9


def test_default_image_model_finds_flips_without_tensorflow(
    tmp_path: Path, bars_spec: Callable[..., Path]
) -> None:
    """The default for images is hog_boosting, and checking with it never imports TensorFlow."""
    path = bars_spec("{}")
    script = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from pytest_labelquality.runner import check_dataset\n"
        "from pytest_labelquality.spec import load_spec\n"
        f"(spec,) = load_spec(Path({str(path)!r}))\n"
        f"result = check_dataset(spec, cache_dir=Path({str(tmp_path / 'cache')!r}),"
        " progress=lambda line: None).to_json()\n"
        "result['heavy'] = sorted({'tensorflow', 'keras'} & set(sys.modules))\n"
        "print(json.dumps(result))\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.splitlines()[-1])
    assert result["heavy"] == []
    assert result["model"] == {"name": "hog_boosting"}  # npz images: no mirroring by default
    assert result["injected"]["recall"] >= 0.8
    assert result["injected"]["precision"] >= 0.7


def test_mirror_is_recorded_and_refused_where_unsupported(
    tmp_path: Path, bars_spec: Callable[..., Path]
) -> None:
    (spec,) = load_spec(bars_spec("{mirror: true}"))
    result = check_dataset(spec, cache_dir=tmp_path / "cache", progress=lambda _: None).to_json()
    assert result["model"] == {"name": "hog_boosting", "mirror": True}
    assert result["injected"]["recall"] >= 0.8
    (spec,) = load_spec(bars_spec("{name: logistic_regression, mirror: true}"))
    supported = "supported by auto, ensemble, hog_boosting, small_cnn, not by logistic_regression"
    with pytest.raises(ModelError, match=supported):
        check_dataset(spec, cache_dir=tmp_path / "cache", progress=lambda _: None)


def test_a_saved_fold_model_scores_new_rows_as_in_training(
    tmp_path: Path, bars_spec: Callable[..., Path]
) -> None:
    """Reloaded from the cache, a fold model featurises just the rows it is asked about and gives
    the probabilities it gave during training, where all features were computed at once."""
    (spec,) = load_spec(bars_spec("{mirror: true}"))
    data = load_dataset(spec)
    config = resolve_model(spec.model, image=True, spec_dir=tmp_path, train_items=200)
    train, test = np.arange(0, 300, 3), np.arange(1, 300, 3)
    probs, fitted = fit_predict(config, data, train, test, seed=0)
    assert probs.shape == (len(test), 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-5)
    fitted.save(tmp_path / "fold")
    loaded = FoldModel.load(tmp_path / "fold")
    assert loaded is not None
    fresh = dataclasses.replace(data)  # a new dataset object: no features computed for it yet
    np.testing.assert_allclose(loaded.predict(fresh, test[:7]), probs[:7], rtol=1e-5)


def test_sklearn_digits_are_images_to_it(tmp_path: Path) -> None:
    """Tabular rows that carry an image shape (scikit-learn's 8x8 digits) can use it too."""
    path = tmp_path / "digits.labelquality.yaml"
    path.write_text(
        "datasets:\n  - name: digits\n"
        "    source: {format: sklearn, name: digits, flip: {rate: 0.1, seed: 0}}\n"
        "    model: {name: hog_boosting, params: {max_iter: 60}}\n"
        "    gate: {max_noise_rate: 1.0}\n"
    )
    (spec,) = load_spec(path)
    result = check_dataset(spec, cache_dir=tmp_path / "cache", progress=lambda _: None).to_json()
    assert result["oof_accuracy"] > 0.75
    assert result["injected"]["recall"] >= 0.7


def test_xdist_workers_share_the_cores_instead_of_each_taking_all(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sklearn.ensemble  # noqa: F401  (loads the OpenMP runtime the trees use)
    from threadpoolctl import threadpool_info

    from pytest_labelquality.models import _sklearn_threads, cores

    monkeypatch.delenv("PYTEST_XDIST_WORKER_COUNT", raising=False)
    alone = cores()
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "2")
    assert cores() == max(1, alone // 2)
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", str(alone * 4))
    with _sklearn_threads():
        openmp = [pool for pool in threadpool_info() if pool["user_api"] == "openmp"]
        assert openmp
        assert all(pool["num_threads"] == 1 for pool in openmp)


def test_small_fits_run_on_one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    import sklearn.ensemble  # noqa: F401  (loads the OpenMP runtime the trees use)
    from threadpoolctl import threadpool_info

    from pytest_labelquality.models import SMALL_FIT_ROWS, _sklearn_threads
    from pytest_labelquality.resources import THREADS_ENV

    def openmp_threads() -> set[int]:
        return {p["num_threads"] for p in threadpool_info() if p["user_api"] == "openmp"}

    monkeypatch.setenv(THREADS_ENV, "2")  # what the machine's load allows, fixed for the test
    before = openmp_threads()
    with _sklearn_threads(rows=SMALL_FIT_ROWS - 1):
        assert openmp_threads() == {1}
    with _sklearn_threads(rows=SMALL_FIT_ROWS):
        assert openmp_threads() == {min(2, *before)}
    assert openmp_threads() == before


def test_new_drawings_are_scored_by_reloaded_fold_models(
    tmp_path: Path, bars_spec: Callable[..., Path], add_bars: Callable[[int], None]
) -> None:
    """A small change is re-checked from the saved fold models, featurising only what is new."""
    (spec,) = load_spec(bars_spec("{mirror: true}", flip=False))
    check_dataset(spec, cache_dir=tmp_path / "cache", progress=lambda _: None)
    add_bars(3)  # three new items arrive with wrong labels
    lines: list[str] = []
    result = check_dataset(spec, cache_dir=tmp_path / "cache", progress=lines.append).to_json()
    assert result["cache"]["status"] == "incremental"
    assert result["cache"]["incremental"]["scored"] == 9
    assert not any("training" in line or "features of" in line for line in lines)
    # the clean bars are predicted near-perfectly; cleanlab's calibrated count names 2 of the 3
    named = {s["index"] for s in result["flagged"]}
    assert named
    assert named <= {300, 301, 302}


def test_parallel_jobs_setting_gives_the_same_result(
    tmp_path: Path, bars_spec: Callable[..., Path]
) -> None:
    """hog_boosting runs its folds one at a time whatever ``cv.jobs`` says (each fold already
    uses every core, and the features are computed once), so the results are identical."""
    (spec,) = load_spec(bars_spec("{}"))
    alone = check_dataset(spec, cache_dir=tmp_path / "one", progress=lambda _: None).to_json()
    spec = dataclasses.replace(spec, cv=dataclasses.replace(spec.cv, jobs=2))
    lines: list[str] = []
    parallel = check_dataset(spec, cache_dir=tmp_path / "two", progress=lines.append).to_json()
    assert parallel["flagged"] == alone["flagged"]
    assert sum("features of 300 images" in line for line in lines) == 1
