"""The count with and without temperature scaling, side by side on the same folds.

Each scenario is one cold ``pytest --label-quality`` process with ``detection: {calibrate:
temperature}`` (the out-of-fold probabilities temperature-scaled before they are counted), then
one process on the same cache with ``{calibrate: none}`` (nothing retrained; only detection runs
again). For each: the fitted temperature, the estimate with its 95% interval, and precision /
recall / F1 of the flagged items against the planted flips (the flagged items are as many as
the estimate); ``*`` marks what the default (``calibrate: auto``) does with the model.
Scenarios, each with the source's default model:

- ``cifar``: the 5,000 CIFAR-10 photos, 10% uniform flips (``encoder_linear`` with the encoders
  extra); ``clean``: 800 of them in 4 classes (airplane, automobile, frog, ship), no flips;
- ``news``: the 7,600 AG News items, 10% uniform flips;
- ``catdog``: 4,000 Quick, Draw! cats and dogs, 10% flips (``hog_boosting``);
- ``drawings``: 26,000 Quick, Draw! drawings of 14 classes, 10% flips (``small_cnn``);
- ``tables``: scikit-learn's digits, wine and breast_cancer with 10%, 10% and 5% flips
  (``table_ensemble``), and digits without flips.

    python benchmarks/calibration.py                      # all (about 15 min on 2 cores)
    python benchmarks/calibration.py --scenarios tables catdog

``benchmarks/count_vs_ranking.py`` measures the same on digits with errors of the kind people
make. A scenario whose data is absent is skipped with a line. Caches live in a temporary folder.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path
from typing import Any

from common import DEFAULT_DATA
from ranking import SHARED, UNIFORM, run, source

from pytest_labelquality.model_registry import model_entry


def scenarios(work: Path) -> dict[str, list[tuple[str, str | None]]]:
    """Each scenario's datasets: a label and a spec source (None where the data is absent)."""
    photos = SHARED / "cifar10_train_subset"
    clean: str | None = None
    if photos.is_dir():
        tree = work / "clean"
        for c in ("airplane", "automobile", "frog", "ship"):
            (tree / c).mkdir(parents=True, exist_ok=True)
            for f in sorted((photos / c).glob("*.jpg"))[:200]:
                shutil.copy(f, tree / c / f.name)
        clean = f"{{format: images, dir: {tree}}}"
    drawings = (DEFAULT_DATA / "cat.npy").is_file()
    catdog = f"{{format: quickdraw, dir: {DEFAULT_DATA}, classes: [cat, dog], limit: 2000,"
    catdog_flipped = f"{catdog} flip: {UNIFORM}}}" if drawings else None
    tables = [
        (f"{name}, {rate:.0%} flips", f"{{format: sklearn, name: {name}, flip: {{rate: {rate},"
         " seed: 1}}")
        for name, rate in (("digits", 0.1), ("wine", 0.1), ("breast_cancer", 0.05))
    ]  # fmt: skip
    return {
        "cifar": [("CIFAR subset, 10% flips", source("cifar", UNIFORM))],
        "clean": [("800 clean CIFAR photos, 4 classes", clean)],
        "news": [("AG News, 10% flips", source("news", UNIFORM))],
        "catdog": [("cats and dogs, 10% flips", catdog_flipped)],
        "drawings": [("14 classes of drawings, 10% flips", source("drawings", UNIFORM))],
        "tables": [*tables, ("digits, no flips", "{format: sklearn, name: digits}")],
    }


def cell(data: dict[str, Any]) -> str:
    noise = data["noise"]
    low, high = noise["interval"]
    figures = f"{noise['rate']:6.1%} ({low:.1%}-{high:.1%})"
    injected = data.get("injected")
    if injected:
        figures += f" {injected['precision']:.2f}/{injected['recall']:.2f}/{injected['f1']:.3f}"
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    names = ["cifar", "clean", "news", "catdog", "drawings", "tables"]
    parser.add_argument("--scenarios", nargs="+", default=names, choices=names)
    args = parser.parse_args()
    print(f"{'data':<36} {'model':<16} {'T':>6}  {'temperature-scaled':>38}  {'uncalibrated':>38}")
    with tempfile.TemporaryDirectory(prefix="lq-calibration-") as tmp:
        work = Path(tmp)
        found = scenarios(work)
        for scenario in args.scenarios:
            for number, (label, src) in enumerate(found[scenario]):
                if src is None:
                    print(f"{label}: data absent, skipped")
                    continue
                cache = work / "cache" / scenario / str(number)
                name = f"{scenario}{number}"
                scaled = run(work, name, src, "{calibrate: temperature}", cache)
                raw = run(work, f"{name}-raw", src, "{calibrate: none}", cache)
                model = scaled["model"]["name"]
                entry = model_entry(model)
                soft = bool(entry and entry.soft_probabilities)
                temperature = scaled["noise"]["method"]["temperature"]
                print(
                    f"{label:<36} {model:<16} {temperature:6.3f}"
                    f"  {'*' if soft else ' '}{cell(scaled):>37}"
                    f"  {' ' if soft else '*'}{cell(raw):>37}   (cold {scaled['wall']:.0f} s)",
                    flush=True,
                )
    print(
        "cells: estimate (95% interval) and, with flips, precision/recall/F1 of the flagged;"
        " *: the default"
    )


if __name__ == "__main__":
    main()
