"""Shared fixtures: where the real Quick, Draw! drawings are, and small spec writers."""

from __future__ import annotations

from pathlib import Path

import pytest

QUICKDRAW = Path(__file__).resolve().parents[2] / "shared" / "data" / "quickdraw" / "numpy_bitmap"


@pytest.fixture
def quickdraw_dir() -> Path:
    """The shared Quick, Draw! bitmaps; tests that need them skip where they are absent."""
    if not (QUICKDRAW / "cat.npy").is_file() or not (QUICKDRAW / "dog.npy").is_file():
        pytest.skip(f"Quick, Draw! drawings not found at {QUICKDRAW}")
    return QUICKDRAW
