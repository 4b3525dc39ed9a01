"""The count against the ranking on errors that look like people's: how many planted errors the
estimate counts, and how many of them the ranking puts in its top 100, side by side.

Issue 20 saw it on MNIST's 10,000 test digits with the 15 errors people confirmed: the default
model counted 1 (the gate passed at 0.0%) while its ranking held 9 of them in the top 100. MNIST
is not in ``../shared/data``; this plants errors of the same kind in scikit-learn's 1,797 digits.
People's errors are ambiguous drawings, so the planted ones are the ``--errors`` items a clean
run finds most ambiguous among those it gets right (the smallest share of the given class
against its rival), each moved to that rival class. Beside them, uniform random flips of as
many items. For each model and kind of error, from one cold run's out-of-fold probabilities:

- ``estimate``: the gate's estimate (cleanlab's ``off_diagonal`` on the out-of-fold
  probabilities temperature-scaled, the default) and how many planted errors it flags, and the
  temperature ``T``; ``uncalibrated``: the same estimator on the probabilities as the model
  gave them (``detection: {calibrate: none}``); ``off_diag_cal``: cleanlab's
  ``off_diagonal_calibrated`` on the scaled ones;
- ``argmax``: the items whose most probable class is not their label;
- ``top100``: planted errors among the 100 most suspect of the ranking (``given_vs_rival``).

    python benchmarks/count_vs_ranking.py        # small_cnn, hog_boosting, logistic_regression
    python benchmarks/count_vs_ranking.py --models hog_boosting --errors 15
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def run(folder: Path, x: Any, y: Any, model: str, name: str) -> tuple[Any, dict[str, Any]]:
    """One cold check of (x, y): its result and out-of-fold probabilities."""
    from pytest_labelquality.runner import check_dataset
    from pytest_labelquality.spec import load_spec

    np.savez(folder / f"{name}.npz", x=x, y=y)
    spec_path = folder / f"{name}.labelquality.yaml"
    spec_path.write_text(
        f"datasets:\n  - name: {name}\n    source: {{format: npz, path: {name}.npz,"
        f" shape: [8, 8]}}\n    model: {{name: {model}}}\n    gate: {{max_noise_rate: 0.01}}\n"
    )
    (spec,) = load_spec(spec_path)
    cache = folder / f"cache-{name}"
    result = check_dataset(spec, cache_dir=cache, progress=lambda _: None, show_top=100).to_json()
    probs = np.zeros((len(y), 10), dtype=np.float64)
    for path in cache.glob("*/*.npz"):
        with np.load(path) as entry:
            if {"probs", "test"} <= set(entry.files):
                probs[entry["test"]] = entry["probs"]
    return probs, result


def row(model: str, kind: str, labels: Any, items: Any, run_of: tuple[Any, Any, float]) -> str:
    """One line of the table for a run (its probabilities, result and seconds)."""
    from cleanlab.count import num_label_issues

    from pytest_labelquality.detection import quality_scores
    from pytest_labelquality.spec import RankedBy

    probs, result, took = run_of
    planted = set(items.tolist())
    flagged = {f["index"] for f in result["flagged"]}
    ranked = np.argsort(quality_scores(labels, probs, RankedBy.GIVEN_VS_RIVAL))[:100]
    noise = result["noise"]
    return (
        f"{model:13} {kind:9} {noise['count']:9d} {len(flagged & planted):8d}"
        f" {noise['method']['temperature']:6.3f} {num_label_issues(labels, probs):13d}"
        f" {noise['estimators']['off_diagonal_calibrated']['count']:13d}"
        f" {int((probs.argmax(axis=1) != labels).sum()):7d}"
        f" {len(set(ranked.tolist()) & planted):7d} {result['oof_accuracy']:8.3f} {took:8.1f}"
    )


def timed(folder: Path, x: Any, y: Any, model: str, name: str) -> tuple[Any, Any, float]:
    start = time.perf_counter()
    probs, result = run(folder, x, y, model, name)
    return probs, result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--models", nargs="+", default=["small_cnn", "hog_boosting", "logistic_regression"]
    )
    parser.add_argument("--errors", type=int, default=15)
    args = parser.parse_args()
    from sklearn.datasets import load_digits

    from pytest_labelquality.detection import quality_scores
    from pytest_labelquality.spec import RankedBy

    x, y = load_digits(return_X_y=True)
    print(f"{'model':13} {'errors':9} {'estimate':>9} {'counted':>8} {'T':>6}"
          f" {'uncalibrated':>13} {'off_diag_cal':>13} {'argmax':>7} {'top100':>7}"
          f" {'oof acc':>8} {'seconds':>8}")  # fmt: skip
    for model in args.models:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            clean = timed(folder, x, y, model, "clean")
            print(row(model, "none", y, np.array([], dtype=np.int64), clean))
            scores = quality_scores(y, clean[0], RankedBy.GIVEN_VS_RIVAL)
            right = clean[0].argmax(axis=1) == y
            ambiguous = np.flatnonzero(right)[np.argsort(scores[right])[: args.errors]]
            rivals = clean[0].copy()
            rivals[np.arange(len(y)), y] = -1
            rng = np.random.default_rng(0)
            uniform = rng.choice(len(y), size=args.errors, replace=False)
            kinds = {
                "ambiguous": (ambiguous, rivals.argmax(axis=1)[ambiguous]),
                "uniform": (uniform, (y[uniform] + rng.integers(1, 10, args.errors)) % 10),
            }
            for kind, (items, to) in kinds.items():
                noisy = y.copy()
                noisy[items] = to
                print(row(model, kind, noisy, items, timed(folder, x, noisy, model, kind)))


if __name__ == "__main__":
    main()
