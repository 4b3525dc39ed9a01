"""What a reviewer sees of a suspect item: an inlined PNG for images (a thumbnail of the original
file where there is one), the text for texts, values for tabular rows."""

from __future__ import annotations

import base64
import struct
import zlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from pytest_labelquality.dataset import Dataset
    from pytest_labelquality.result import JsonValue, Preview

PREVIEW_LIMIT = 5000
TEXT_PREVIEW_CHARS = 20_000  # the whole text on demand, up to this many characters
#: A brief preview's text (a neighbour beside a suspect) is cut to this many characters.
BRIEF_TEXT_CHARS = 280


def png_data_uri(image: npt.NDArray[Any]) -> str:
    """A grayscale (H, W) or RGB (H, W, 3) image as a ``data:image/png;base64,...`` URI.

    Pixels are not resampled; the report scales them up with ``image-rendering: pixelated`` so a
    28x28 drawing stays sharp. Grayscale follows the ink convention of Quick, Draw!, MNIST and
    scikit-learn's digits (0 = background) and is drawn dark on light.
    """
    import numpy as np

    pixels = np.asarray(image)
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    if pixels.dtype != np.uint8:
        low, high = float(pixels.min()), float(pixels.max())
        pixels = ((pixels - low) / ((high - low) or 1.0) * 255).round().astype(np.uint8)
    height, width = pixels.shape[:2]
    color = 2 if pixels.ndim == 3 else 0
    if pixels.ndim == 2:
        pixels = 255 - pixels
    rows = pixels.reshape(height, -1)
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, color, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def preview(data: Dataset, index: int, *, brief: bool = False) -> Preview:
    """The preview of one item: an image (a ``data:`` URI), its text, or its feature values (a
    categorical column's value as its category name).

    A ``brief`` one (a neighbour shown small beside a suspect) reads no file: an image is its
    working-size pixels rather than a thumbnail of the original, a text its first
    :data:`BRIEF_TEXT_CHARS` characters (``chars`` says how long it is)."""
    from pytest_labelquality.dataset import DataKind
    from pytest_labelquality.result import Preview

    row = data.features[index]
    if data.kind is DataKind.TEXT:
        text = str(row)
        return Preview(
            text=text[: BRIEF_TEXT_CHARS if brief else TEXT_PREVIEW_CHARS], chars=len(text)
        )
    if data.files and not brief:
        from pytest_labelquality.formats.images import thumbnail

        shown = thumbnail(data.files[index])
        if shown is not None:
            return Preview(image=shown, thumbnail=True)
    if data.kind is DataKind.IMAGE:
        return Preview(image=png_data_uri(row))
    if data.image_shape is not None:  # tabular rows that are images, like sklearn's digits
        return Preview(image=png_data_uri(row.reshape(data.image_shape)))
    names = data.feature_names or tuple(f"x{i}" for i in range(row.size))
    values: dict[str, JsonValue] = {}
    for j, (name, value) in enumerate(zip(names, row.ravel(), strict=True)):
        categories = data.categories[j] if data.categories else ()
        values[name] = categories[int(value)] if categories else round(float(value), 6)
    return Preview(features=values)


def previews(data: Dataset, indices: npt.NDArray[np.int64]) -> list[Preview]:
    """Previews of the first :data:`PREVIEW_LIMIT` of ``indices``."""
    return [preview(data, int(i)) for i in indices[:PREVIEW_LIMIT]]
