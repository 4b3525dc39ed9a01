"""The ranking of suspects side by side: ``given_vs_rival`` (the default) against cleanlab's
``normalized_margin`` and ``self_confidence``, on the same out-of-fold probabilities.

Each scenario is one cold ``pytest --label-quality`` process with the default ranking, then one
process per other ranking on the same cache (the folds are reused; only detection runs again).
The count of flagged items is the estimate in all three, so the rankings differ only in which
items they flag. Scenarios, each with uniform random flips and with flips between look-alike
classes (the mistakes people make):

- ``cifar``: the 5,000 CIFAR-10 photos of ``../shared/data/cifar10_train_subset`` with the
  default image model (``encoder_linear`` with the encoders extra);
- ``news``: the 7,600 AG News items with the default text model;
- ``drawings``: 26,000 Quick, Draw! drawings of 14 classes with the default (``small_cnn``).

    python benchmarks/ranking.py                      # all scenarios (about 20 min on 2 cores)
    python benchmarks/ranking.py --scenarios news

A scenario whose data is absent is skipped with a line. Caches live in a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from common import DEFAULT_DATA, DEV_ONLY_PLUGINS, measured

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
RANKINGS = ("given_vs_rival", "normalized_margin", "self_confidence")
ALL14 = (
    "[apple, bear, bicycle, cat, diamond, dog, duck, eye, fish, frog, lion, monkey, rabbit, sheep]"
)
LOOK_ALIKES = {
    "cifar": "{cat: dog, dog: cat, automobile: truck, truck: automobile, deer: horse,"
    " horse: deer, airplane: ship, ship: airplane, bird: frog, frog: bird}",
    # AG News classes 1 World, 3 Business, 4 Sci/Tech
    "news": '{"1": "3", "3": "4", "4": "3"}',
    "drawings": "{cat: dog, dog: cat, lion: bear, bear: lion, duck: frog, frog: duck,"
    " sheep: rabbit, rabbit: sheep, monkey: bear}",
}
UNIFORM = "{rate: 0.1, seed: 1}"


def source(scenario: str, flip: str) -> str | None:
    """The spec's source for ``scenario`` with ``flip``, or None when its data is absent."""
    if scenario == "cifar":
        folder = SHARED / "cifar10_train_subset"
        return f"{{format: images, dir: {folder}, flip: {flip}}}" if folder.is_dir() else None
    if scenario == "news":
        path = SHARED / "ag_news" / "test.csv"
        if not path.is_file():
            return None
        return (
            f"{{format: text, path: {path}, header: false, columns: [label, title, description],"
            f" text: [title, description], label: label, flip: {flip}}}"
        )
    if not (DEFAULT_DATA / "cat.npy").is_file():
        return None
    return f"{{format: quickdraw, dir: {DEFAULT_DATA}, classes: {ALL14}, flip: {flip}}}"


def run(work: Path, name: str, src: str, detection: str, cache: Path) -> dict[str, Any]:
    """One pytest process with the spec's ``detection`` mapping: its result for the dataset."""
    spec = work / f"{name}.labelquality.yaml"
    spec.write_text(
        f"datasets:\n  - name: {name}\n    source: {src}\n"
        f"    detection: {detection}\n    gate: {{max_noise_rate: 1.0}}\n"
    )
    out = work / f"{name}.json"
    status, wall, _, log = measured(
        [
            sys.executable, "-m", "pytest", "--label-quality", "-q", "-p", "no:randomly",
            *DEV_ONLY_PLUGINS, spec.name, "--label-quality-cache-dir", str(cache),
            "--label-quality-json", str(out),
        ],
        cwd=work,
    )  # fmt: skip
    if status not in (0, 1):
        print(log[-3000:])
        raise SystemExit(f"{name}: pytest exited {status}")
    data: dict[str, Any] = json.loads(out.read_text())["datasets"][0]
    data["wall"] = wall
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--scenarios", nargs="+", default=list(LOOK_ALIKES), choices=list(LOOK_ALIKES)
    )
    args = parser.parse_args()
    print(
        f"{'scenario':<34} {'model':<16} {'flagged':>7}  " + "  ".join(f"{r:>24}" for r in RANKINGS)
    )
    with tempfile.TemporaryDirectory(prefix="lq-ranking-") as tmp:
        work = Path(tmp)
        for scenario in args.scenarios:
            pairs = f"{{rate: 0.15, seed: 1, pairs: {LOOK_ALIKES[scenario]}}}"
            for kind, flip in (("uniform 10%", UNIFORM), ("look-alike 15% pairs", pairs)):
                src = source(scenario, flip)
                if src is None:
                    print(f"{scenario}: data absent, skipped")
                    break
                cache = work / "cache" / scenario / kind.split()[0]
                cells, model, flagged, cold = [], "", 0, 0.0
                for ranked_by in RANKINGS:
                    detection = f"{{ranked_by: {ranked_by}}}"
                    data = run(work, f"{scenario}-{ranked_by}", src, detection, cache)
                    injected = data["injected"]
                    model, flagged = data["model"]["name"], data["noise"]["count"]
                    cold = cold or data["wall"]
                    cells.append(
                        f"{injected['precision']:.2f}/{injected['recall']:.2f}/{injected['f1']:.3f}"
                    )
                label = f"{scenario}, {kind} (cold {cold:.0f} s)"
                print(
                    f"{label:<34} {model:<16} {flagged:>7}  " + "  ".join(f"{c:>24}" for c in cells)
                )
    print("cells: precision/recall/F1 of the flagged items against the flips")


if __name__ == "__main__":
    main()
