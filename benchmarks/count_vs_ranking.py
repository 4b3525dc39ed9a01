"""The count against the ranking on errors that look like people's: how many planted errors the
estimate counts, and how many of them the ranking puts in its top 100, side by side.

Issue 20 saw it on MNIST's 10,000 test digits with the 15 errors people confirmed: the default
model counted 1 (the gate passed at 0.0%) while its ranking held 9 of them in the top 100. MNIST
is not in ``../shared/data``; this plants errors of the same kind in scikit-learn's 1,797 digits.
People's errors are ambiguous drawings, so the planted ones are the ``--errors`` items a clean
run finds most ambiguous among those it gets right (the smallest share of the given class
against its rival), each moved to that rival class. Beside them, uniform random flips of as
many items. For each model and kind of error, from one cold run's out-of-fold probabilities:

- ``count``: the gate's estimate (cleanlab's ``off_diagonal``) and how many planted errors it
  flags; ``calibrated``: cleanlab's ``off_diagonal_calibrated``;
- ``temp.``: the same estimate on the probabilities calibrated by temperature scaling (one
  temperature over all items, the one that gives the labels the highest likelihood): the
  issue's first suggestion for reconciling the count with the ranking;
- ``argmax``: the items whose most probable class is not their label;
- ``top100``: planted errors among the 100 most suspect of the ranking (``given_vs_rival``).

    python benchmarks/count_vs_ranking.py                      # hog_boosting and small_cnn
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


def temperature_scaled(probs: Any, labels: Any) -> Any:
    """``probs`` at the temperature (0.1 to 10, on a grid) that maximises the labels'
    likelihood."""
    logs = np.log(np.clip(probs, 1e-12, 1.0))
    best, scaled = -np.inf, probs
    for t in np.geomspace(0.1, 10, 81):
        z = logs / t
        z -= z.max(axis=1, keepdims=True)
        q = np.exp(z)
        q /= q.sum(axis=1, keepdims=True)
        likelihood = np.log(np.clip(q[np.arange(len(labels)), labels], 1e-12, 1.0)).sum()
        if likelihood > best:
            best, scaled = likelihood, q
    return scaled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["hog_boosting", "small_cnn"])
    parser.add_argument("--errors", type=int, default=15)
    args = parser.parse_args()
    from cleanlab.count import num_label_issues
    from sklearn.datasets import load_digits

    from pytest_labelquality.detection import quality_scores
    from pytest_labelquality.spec import RankedBy

    x, y = load_digits(return_X_y=True)
    print(f"{'model':13} {'errors':8} {'estimate':>9} {'counted':>8} {'calibr.':>8}"
          f" {'temp.':>6} {'argmax':>7} {'top100':>7} {'oof acc':>8} {'seconds':>8}")  # fmt: skip
    for model in args.models:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            clean, _ = run(folder, x, y, model, "clean")
            scores = quality_scores(y, clean, RankedBy.GIVEN_VS_RIVAL)
            right = clean.argmax(axis=1) == y
            ambiguous = np.flatnonzero(right)[np.argsort(scores[right])[: args.errors]]
            rivals = clean.copy()
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
                start = time.perf_counter()
                probs, result = run(folder, x, noisy, model, kind)
                took = time.perf_counter() - start
                flagged = {f["index"] for f in result["flagged"]}
                ranked = np.argsort(quality_scores(noisy, probs, RankedBy.GIVEN_VS_RIVAL))[:100]
                estimators = result["noise"]["estimators"]
                print(
                    f"{model:13} {kind:8} {result['noise']['count']:9d}"
                    f" {len(flagged & set(items.tolist())):8d}"
                    f" {estimators['off_diagonal_calibrated']['count']:8d}"
                    f" {num_label_issues(noisy, temperature_scaled(probs, noisy)):6d}"
                    f" {int((probs.argmax(axis=1) != noisy).sum()):7d}"
                    f" {len(set(ranked.tolist()) & set(items.tolist())):7d}"
                    f" {result['oof_accuracy']:8.3f} {took:8.1f}"
                )


if __name__ == "__main__":
    main()
