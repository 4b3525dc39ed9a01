"""Peak memory of decoding a folder of very large images, each brought to the 64-pixel working size.

Four 13,000 x 13,000 images (169 million pixels each, just under the 179 million at which Pillow
refuses a file) in each of three kinds: PNGs of one bit a pixel (20 to 50 KB files, the smallest
that make the point), RGB PNGs (0.5 MB) and RGB JPEGs (3 MB). Each folder is loaded by a child
process (``load_dataset``, no model) with one thread and with four, its wall time and peak
resident memory measured (the files are written by another child: a child's peak counts the
memory its parent held when it was started). Run it against another checkout with
``PYTHONPATH=<checkout>`` to compare. The files live in a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from common import measured

KINDS = {"1-bit PNG": ("1", "png"), "RGB PNG": ("RGB", "png"), "RGB JPEG": ("RGB", "jpg")}
LOAD = textwrap.dedent(
    """
    import sys, warnings
    from pathlib import Path
    warnings.simplefilter("ignore")  # Pillow warns past 89 million pixels
    from pytest_labelquality.sources import load_dataset
    from pytest_labelquality.spec import load_spec
    data = load_dataset(load_spec(Path(sys.argv[1]))[0])
    print(data.features.shape, data.stats["decoded"])
    """
)


def write(folder: Path, mode: str, extension: str, side: int) -> Path:
    """Four images in two class folders, and a spec naming them."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None
    for i, name in enumerate(["dark", "dark", "light", "light"]):
        (folder / name).mkdir(parents=True, exist_ok=True)
        fill: object = i % 2 if mode == "1" else (40 + 50 * i, 30, 200 - 40 * i)
        options = {"quality": 90} if extension == "jpg" else {}
        Image.new(mode, (side, side), fill).save(folder / name / f"{i}.{extension}", **options)
    spec = folder / "big.labelquality.yaml"
    spec.write_text(
        "datasets:\n  - name: big\n    source: {format: images, dir: .}\n"
        "    gate: {max_noise_rate: 1}\n"
    )
    return spec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--side", type=int, default=13_000, help="pixels a side (13000)")
    parser.add_argument("--write", nargs=3, metavar=("DIR", "MODE", "EXT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write:  # in a child: a child's peak counts its parent's memory at the fork
        write(Path(args.write[0]), args.write[1], args.write[2], args.side)
        return
    print(f"load {os.getloadavg()[0]:.2f}; four {args.side} x {args.side} images a folder")
    print(f"{'images':<11} {'threads':>7} {'peak MiB':>9} {'seconds':>8}  output")
    with tempfile.TemporaryDirectory(prefix="lq-large-") as tmp:
        for kind, (mode, extension) in KINDS.items():
            folder = Path(tmp) / extension / mode
            command = [sys.executable, __file__, "--side", str(args.side), "--write"]
            subprocess.run([*command, str(folder), mode, extension], check=True)
            spec = folder / "big.labelquality.yaml"
            for threads in ("1", "4"):
                env = {**os.environ, "LABEL_QUALITY_THREADS": threads}
                status, wall, peak, out = measured(
                    [sys.executable, "-c", LOAD, str(spec)], cwd=Path(tmp), env=env
                )
                shown = out.strip().splitlines()[-1] if status == 0 else f"exit {status}"
                print(f"{kind:<11} {threads:>7} {peak:>9.0f} {wall:>8.1f}  {shown}")


if __name__ == "__main__":
    main()
