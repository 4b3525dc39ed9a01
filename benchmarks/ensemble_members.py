"""An ``ensemble`` whose members include the encoder, against its members alone, in one run.

CIFAR photos (``--per-class`` of each of the 10 classes) with 10% of the files moved to a wrong
class folder; ``encoder_linear``, ``hog_boosting`` and ``ensemble`` with ``members:
[encoder_linear, hog_boosting]`` share one cache, so the ensemble trains nothing its members
did not: its time is the mean's. Prints out-of-fold accuracy against the true labels and
precision, recall and F1 of the flagged items against the moved files, for each.

    python benchmarks/ensemble_members.py [--per-class 200]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import tempfile
import time
from pathlib import Path

from encoders import SHARED, scores

SPEC = """\
datasets:
  - name: {name}
    source: {{format: images, dir: photos}}
    model: {model}
    gate: {{max_noise_rate: 1.0}}
"""
MODELS = {
    "encoder_linear": "{name: encoder_linear}",
    "hog_boosting": "{name: hog_boosting}",
    "ensemble of both": "{name: ensemble, members: [encoder_linear, hog_boosting]}",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--per-class", type=int, default=200)
    args = parser.parse_args()
    import numpy as np

    from pytest_labelquality.runner import check_dataset
    from pytest_labelquality.spec import load_spec

    source = SHARED / "cifar10_train_subset"
    if not source.is_dir():
        raise SystemExit(f"no CIFAR subset at {source}")
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        truth: dict[str, str] = {}
        classes = sorted(p.name for p in source.iterdir() if p.is_dir())
        for c in classes:
            (work / "photos" / c).mkdir(parents=True)
            for f in sorted((source / c).glob("*.jpg"))[: args.per_class]:
                shutil.copy(f, work / "photos" / c / f.name)
                truth[f"{c}/{f.name}"] = c
        moved = set()
        for key in rng.sample(sorted(truth), len(truth) // 10):
            given = key.split("/")[0]
            wrong = rng.choice([c for c in classes if c != given])
            new = f"{wrong}/moved-{given}-{key.split('/')[1]}"
            (work / "photos" / key).rename(work / "photos" / new)
            truth[new] = truth.pop(key)
            moved.add(new)
        print(f"{len(truth)} CIFAR photos, {len(moved)} moved to a wrong folder")
        for label, model in MODELS.items():
            path = work / "bench.labelquality.yaml"
            path.write_text(SPEC.format(name="photos", model=model))
            (spec,) = load_spec(path)
            start = time.perf_counter()
            result = check_dataset(spec, cache_dir=work / "cache", progress=lambda _: None)
            seconds = time.perf_counter() - start
            ranking = result.ranking
            assert ranking is not None
            by_id = dict(zip(ranking.id, ranking.suggested, strict=True))
            accuracy = float(np.mean([by_id[i] == truth[i] for i in truth]))
            flagged = {s.id for s in result.flagged}
            print(
                f"  {label}: {seconds:.1f} s, out-of-fold accuracy against the true labels"
                f" {accuracy:.3f}; {scores(flagged, moved)}"
            )
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
