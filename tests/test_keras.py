"""The Keras path with real TensorFlow: built-in CNNs, a user's Keras factory, real drawings."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from pytest_labelquality.runner import check_dataset
from pytest_labelquality.spec import load_spec


def test_cnn_finds_flipped_images(tmp_path: Path, bars_spec: Callable[..., Path]) -> None:
    (spec,) = load_spec(bars_spec("{name: cnn}"))
    lines: list[str] = []
    result = check_dataset(spec, cache_dir=tmp_path / "cache", progress=lines.append).to_json()
    assert result["source"]["kind"] == "image"
    assert result["model"]["name"] == "cnn"
    assert result["injected"]["recall"] >= 0.8
    assert result["injected"]["precision"] >= 0.7
    assert any(line.startswith("  epoch 10/10") for line in lines)  # 32,000 passes, at most 10
    assert result["flagged"][0]["preview"]["image"].startswith("data:image/png;base64,")
    again = check_dataset(spec, cache_dir=tmp_path / "cache", progress=lines.append).to_json()
    assert again["cache"]["status"] == "hit"
    assert again["flagged"] == result["flagged"]


def test_keras_factory_gets_compiled_and_trained(
    tmp_path: Path, bars_spec: Callable[..., Path]
) -> None:
    (tmp_path / "tiny_keras.py").write_text(
        "import keras\n\n"
        "def build(input_shape, num_classes):\n"
        "    return keras.Sequential([keras.Input(input_shape), keras.layers.Flatten(),\n"
        "        keras.layers.Dense(num_classes, activation='softmax')])\n"
    )
    (spec,) = load_spec(bars_spec("{factory: 'tiny_keras:build', epochs: 20, learning_rate: 0.01}"))
    result = check_dataset(spec, cache_dir=tmp_path / "cache", progress=lambda _: None).to_json()
    assert result["model"]["factory"] == "tiny_keras:build"
    assert result["oof_accuracy"] > 0.7


def test_walkthrough_cnn_on_real_drawings(tmp_path: Path, quickdraw_dir: Path) -> None:
    """The walkthrough's architecture trains on real Quick, Draw! cats and dogs."""
    path = tmp_path / "qd.labelquality.yaml"
    path.write_text(
        "datasets:\n  - name: qd\n"
        f"    source: {{format: quickdraw, dir: {quickdraw_dir}, classes: [cat, dog],"
        " limit: 150}\n"
        "    model: {name: walkthrough_cnn}\n"
        "    cv: {folds: 2}\n"
        "    gate: {max_noise_rate: 1.0}\n"
    )
    (spec,) = load_spec(path)
    result = check_dataset(spec, cache_dir=tmp_path / "cache", progress=lambda _: None).to_json()
    assert result["items"] == 300
    assert result["flagged"][0]["id"].split("/")[0] in {"cat", "dog"}
    json.dumps(result)  # the result is plain data


def test_new_images_are_scored_by_saved_fold_models(
    tmp_path: Path, bars_spec: Callable[..., Path], add_bars: Callable[[int], None]
) -> None:
    """A small change reloads the Keras fold models from the cache instead of retraining."""
    (spec,) = load_spec(bars_spec("{name: cnn}", flip=False))
    check_dataset(spec, cache_dir=tmp_path / "cache", progress=lambda _: None)
    add_bars(1)  # one new item arrives with a wrong label
    lines: list[str] = []
    result = check_dataset(spec, cache_dir=tmp_path / "cache", progress=lines.append).to_json()
    assert result["cache"]["status"] == "incremental"
    assert result["cache"]["incremental"]["scored"] == 9
    assert not any("training" in line for line in lines)
    assert result["items"] == 309
    assert 300 in {s["index"] for s in result["flagged"]}  # the new, wrongly labelled bar


@pytest.mark.parametrize("stream", [False, True], ids=["tensors", "streamed"])
def test_both_input_pipelines_yield_every_row_once_per_epoch(
    bars_spec: Callable[..., Path], stream: bool
) -> None:
    from pytest_labelquality.keras_data import batches
    from pytest_labelquality.sources import load_dataset

    (spec,) = load_spec(bars_spec("{name: cnn}"))
    data = load_dataset(spec)
    index = np.arange(5, 300, 2)
    pipeline = batches(data, index, size=32, shuffle_seed=1, one_hot=True, stream=stream)
    epochs = []
    for _ in range(2):
        xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in pipeline], strict=True)
        x, y = np.concatenate(xs), np.concatenate(ys)
        assert x.shape == (len(index), 28, 28, 1)
        assert x.dtype == np.float32
        assert float(x.max()) <= 1.0
        expected = np.sort(data.features[index].reshape(len(index), -1) / 255.0, axis=0)
        np.testing.assert_allclose(np.sort(x.reshape(len(index), -1), axis=0), expected)
        assert y.sum(axis=0).tolist() == np.bincount(data.labels[index], minlength=2).tolist()
        epochs.append(x)
    assert not np.array_equal(epochs[0], epochs[1]), "each epoch has a new order"
