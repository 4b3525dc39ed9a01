"""Write the image-folder example's data: 240 small pictures of circles, squares and triangles
in mixed formats and sizes, a folder per class (layout A), 6% of them in the wrong folder, and
``labels.csv`` mapping nested paths to labels (layout B, the same pictures and labels).

    python examples/images/make_images.py
"""

from __future__ import annotations

import csv
import random
import shutil
from pathlib import Path

from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle")
FORMATS = ("png", "jpg", "webp", "bmp")
PER_SHAPE = 80
WRONG = 0.06


def draw(shape: str, rng: random.Random) -> Image.Image:
    width, height = rng.choice([(48, 48), (64, 48), (48, 64), (96, 96)])
    background = tuple(rng.randrange(0, 90) for _ in range(3))
    image = Image.new("RGB", (width, height), background)
    pen = ImageDraw.Draw(image)
    side = rng.uniform(0.45, 0.8) * min(width, height)
    x, y = rng.uniform(0, width - side), rng.uniform(0, height - side)
    colour = tuple(rng.randrange(140, 256) for _ in range(3))
    if shape == "circle":
        pen.ellipse((x, y, x + side, y + side), fill=colour)
    elif shape == "square":
        pen.rectangle((x, y, x + side, y + side), fill=colour)
    else:
        pen.polygon([(x, y + side), (x + side, y + side), (x + side / 2, y)], fill=colour)
    return image.rotate(rng.uniform(-15, 15), fillcolor=background)


def main() -> None:
    rng = random.Random(0)
    root = Path(__file__).with_name("data")
    shutil.rmtree(root, ignore_errors=True)
    rows = []
    for shape in SHAPES:
        for i in range(PER_SHAPE):
            given = shape
            if rng.random() < WRONG:
                given = rng.choice([s for s in SHAPES if s != shape])
            name = f"{shape[:2]}{i:03d}.{FORMATS[i % len(FORMATS)]}"
            image = draw(shape, rng)
            folder = root / "by-folder" / given
            folder.mkdir(parents=True, exist_ok=True)
            image.save(folder / name)
            nested = root / "exported" / f"batch-{i % 4}"
            nested.mkdir(parents=True, exist_ok=True)
            image.save(nested / name)
            rows.append((f"batch-{i % 4}/{name}", given))
    with (root / "labels.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label"])
        writer.writerows(rows)
    print(f"wrote {len(rows)} pictures twice under {root}")


if __name__ == "__main__":
    main()
