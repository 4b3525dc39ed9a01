"""Shared fixtures: where the real Quick, Draw! drawings and CIFAR photos are, and synthetic bar
images."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
QUICKDRAW = SHARED_DATA / "quickdraw" / "numpy_bitmap"
CIFAR = SHARED_DATA / "cifar10_train_subset"
#: ``photo_folders(root, per_class=, moved=)``: see the fixture.
PhotoFolders = Callable[..., list[str]]


@pytest.fixture
def quickdraw_dir() -> Path:
    """The shared Quick, Draw! bitmaps; tests that need them skip where they are absent."""
    if not (QUICKDRAW / "cat.npy").is_file() or not (QUICKDRAW / "dog.npy").is_file():
        pytest.skip(f"Quick, Draw! drawings not found at {QUICKDRAW}")
    return QUICKDRAW


@pytest.fixture(scope="session")  # a pure function: module-scoped fixtures may use it too
def photo_folders() -> PhotoFolders:
    """Copies real CIFAR photos of three classes into class folders under a root, ``moved`` of
    them into a wrong one, and returns the moved files' ids; skips where the photos are absent."""
    import shutil

    def write(root: Path, *, per_class: int, moved: int) -> list[str]:
        classes = ("airplane", "frog", "ship")
        ids = []
        for c in classes:
            (root / c).mkdir(parents=True)
            if not (CIFAR / c).is_dir():
                pytest.skip(f"CIFAR-10 subset not found at {CIFAR}")
            for f in sorted((CIFAR / c).glob("*.jpg"))[:per_class]:
                shutil.copy(f, root / c / f.name)
        for i in range(moved):
            given, wrong = classes[i % 3], classes[(i + 1) % 3]
            source = sorted((root / given).glob("*.jpg"))[i]
            source.rename(root / wrong / f"moved-{source.name}")
            ids.append(f"{wrong}/moved-{source.name}")
        return ids

    return write


def bars(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Noisy 28x28 uint8 images of a horizontal (class 0) or a vertical (class 1) bar."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
    where = rng.integers(4, 24, n)
    for i, (label, at) in enumerate(zip(labels, where, strict=True)):
        if label == 0:
            images[i, at - 2 : at + 2, 3:25] = 255
        else:
            images[i, 3:25, at - 2 : at + 2] = 255
    return images, labels


@pytest.fixture
def bars_spec(tmp_path: Path) -> Callable[..., Path]:
    """Writes ``bars.npz`` (``count`` bar images, 300 by default) and a spec checking it with the
    given model mapping (and 10% injected flips unless ``flip=False``); returns the spec's path."""

    def write(model: str, *, flip: bool = True, count: int = 300) -> Path:
        images, labels = bars(count)
        np.savez(tmp_path / "bars.npz", x=images, y=labels)
        path = tmp_path / "bars.labelquality.yaml"
        path.write_text(
            "datasets:\n  - name: bars\n"
            "    source: {format: npz, path: bars.npz, classes: [horizontal, vertical]"
            f"{', flip: {rate: 0.1, seed: 0}' if flip else ''}}}\n"
            f"    model: {model}\n"
            "    cv: {folds: 3}\n"
            "    gate: {max_noise_rate: 0.2}\n"
        )
        return path

    return write


@pytest.fixture
def add_bars(tmp_path: Path) -> Callable[[int], None]:
    """Appends 9 new bar images to ``bars.npz`` (as written by ``bars_spec``), the first
    ``wrong`` of them with the other class's label."""

    def add(wrong: int) -> None:
        with np.load(tmp_path / "bars.npz") as old:
            images, labels = old["x"], old["y"]
        extra_images, extra_labels = bars(9, seed=7)
        extra_labels[:wrong] = 1 - extra_labels[:wrong]
        np.savez(
            tmp_path / "bars.npz",
            x=np.concatenate([images, extra_images]),
            y=np.concatenate([labels, extra_labels]),
        )

    return add
