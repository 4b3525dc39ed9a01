"""What the pull-request gate names on Quick, Draw! cat vs dog: new suspects per kind of change.

A baseline is written for 3,800 drawings (2,900 cats, 900 dogs); then each simulated branch is
checked against it with the gate's default image model (``hog_boosting``, with mirror
images as for a Quick, Draw! source):

- flips 20, 40 or 80 labels of the baseline's drawings: how many flipped items are named as new
  suspects, and how many other items are;
- adds 200 correctly labelled drawings (100 cats, 100 dogs): how many of them are named (all
  such names are false alarms, as far as the players' labels are right).

    python benchmarks/quickdraw_pull_requests.py   # about 6 minutes on 2 cores

Reads ``../shared/data/quickdraw/numpy_bitmap`` (or ``--data DIR``).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import drawings_folder

from pytest_labelquality.baseline import write_baselines
from pytest_labelquality.runner import check_dataset
from pytest_labelquality.spec import load_spec

SPEC = """\
datasets:
  - name: cat-dog
    source: {format: npz, path: drawings.npz, ids: ids, classes: [cat, dog], shape: [28, 28]}
    model: {mirror: true}  # as for a quickdraw source: a mirrored drawing keeps its label
    gate: {max_noise_rate: 1.0, max_new_suspects: 0}
"""


def write(folder: Path, cats: np.ndarray, dogs: np.ndarray, flips: list[int]) -> list[str]:
    """The dataset file of one branch; returns the ids of the flipped items."""
    x = np.concatenate([cats, dogs])
    y = np.array([0] * len(cats) + [1] * len(dogs))
    ids = np.array([f"cat/{i}" for i in range(len(cats))] + [f"dog/{i}" for i in range(len(dogs))])
    y[flips] = 1 - y[flips]
    np.savez(folder / "drawings.npz", x=x, y=y, ids=ids)
    return [str(ids[i]) for i in flips]


def main() -> int:
    args = drawings_folder(__doc__ or "")
    if args.data is None:
        return 0
    cats, dogs = np.load(args.data / "cat.npy"), np.load(args.data / "dog.npy")
    rng = np.random.default_rng(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "pr.labelquality.yaml").write_text(SPEC)
        spec_path = folder / "pr.labelquality.yaml"
        cache = folder / "cache"

        def check() -> dict[str, Any]:
            (spec,) = load_spec(spec_path)
            checked = check_dataset(spec, cache_dir=cache, progress=lambda _: None, keep_items=True)
            return checked.to_json()

        write(folder, cats[:2900], dogs[:900], [])
        start = time.perf_counter()
        base = check()
        write_baselines({spec_path: {"cat-dog": base["baseline_entry"]}}, None)
        print(
            f"baseline: 3800 drawings, {base['noise']['count']} suspects,"
            f" {time.perf_counter() - start:.0f}s",
            flush=True,
        )
        for count in (20, 40, 80):
            flips = sorted(rng.choice(3800, size=count, replace=False).tolist())
            flipped = set(write(folder, cats[:2900], dogs[:900], flips))
            change = check()["baseline"]
            named = set(change["changed_suspects"])
            rows.append((f"flip {count}", count, len(named & flipped), len(named - flipped)))
            print(f"{rows[-1][0]}: measured", flush=True)
        write(folder, cats[:3000], dogs[:1000], [])
        change = check()["baseline"]
        named = set(change["changed_suspects"])
        rows.append(("add 200 correct", 0, 0, len(named)))
        print(f"{rows[-1][0]}: measured", flush=True)
    print("\nchange            flipped  flipped named  others named (false alarms)")
    for name, flipped_count, hit, other in rows:
        print(f"{name:17} {flipped_count:7d}  {hit:13d}  {other:12d}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
