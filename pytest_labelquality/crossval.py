"""Out-of-fold predicted probabilities by stratified K-fold, one cache entry per fold."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pytest_labelquality.cache import ArrayCache, fingerprint
from pytest_labelquality.models import ModelConfig, fit_predict

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from pytest_labelquality.sources import Dataset

Progress = Callable[[str], None]


@dataclass(frozen=True, eq=False)
class OutOfFold:
    """The out-of-fold probability matrix and how it was obtained."""

    pred_probs: npt.NDArray[np.float32]
    fold_seconds: tuple[float, ...]
    folds_cached: int


def fold_key(run_key: str, fold: int) -> str:
    """The cache key of one fold's out-of-fold predictions."""
    return fingerprint(run_key, "fold", fold)


def out_of_fold(
    data: Dataset,
    config: ModelConfig,
    *,
    folds: int,
    seed: int,
    jobs: int,
    cache: ArrayCache,
    run_key: str,
    progress: Progress,
) -> OutOfFold:
    """Each item's class probabilities from a model that never saw it; trains missing folds only.

    Folds are independent cache entries, so an interrupted run resumes from the folds it
    finished. scikit-learn folds run ``jobs`` at a time through joblib (whose backend can be
    a Dask or Ray cluster); Keras folds run one after another, each using every core.
    """
    import numpy as np

    probs = np.zeros((len(data), len(data.class_names)), dtype=np.float32)
    seconds = [0.0] * folds
    missing: list[int] = []
    for fold in range(folds):
        entry = cache.load(fold_key(run_key, fold))
        if entry is not None and entry["probs"].shape[1] == probs.shape[1]:
            probs[entry["test"]] = entry["probs"]
            seconds[fold] = float(entry["seconds"])
        else:
            missing.append(fold)
    cached = folds - len(missing)
    if cached:
        progress(f"{cached} of {folds} folds from the cache")
    if missing:
        splits = _splits(data, folds=folds, seed=seed)
        tasks = [(fold, *splits[fold]) for fold in missing]
        if jobs > 1 and not config.is_keras and not config.factory:
            results = _parallel(tasks, data, config, seed, jobs)
        else:
            results = (
                _train_fold(fold, train, test, data, config, seed, progress, folds)
                for fold, train, test in tasks
            )
        for fold, test, fold_probs, took in results:
            probs[test] = fold_probs
            seconds[fold] = took
            cache.save(
                fold_key(run_key, fold),
                {"test": test, "probs": fold_probs, "seconds": np.array(took)},
            )
            acc = float(np.mean(fold_probs.argmax(axis=1) == data.labels[test]))
            progress(
                f"fold {fold + 1}/{folds}: trained on {len(data) - len(test)} items in"
                f" {took:.1f}s; accuracy on its {len(test)} held-out items {acc:.3f}"
            )
    return OutOfFold(pred_probs=probs, fold_seconds=tuple(seconds), folds_cached=cached)


def _splits(
    data: Dataset, *, folds: int, seed: int
) -> list[tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]]:
    from sklearn.model_selection import StratifiedKFold

    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    placeholder = data.labels.reshape(-1, 1)
    return list(splitter.split(placeholder, data.labels))


def _train_fold(
    fold: int,
    train: npt.NDArray[np.int64],
    test: npt.NDArray[np.int64],
    data: Dataset,
    config: ModelConfig,
    seed: int,
    progress: Progress | None,
    folds: int,
) -> tuple[int, npt.NDArray[np.int64], npt.NDArray[np.float32], float]:
    if progress is not None:
        progress(f"fold {fold + 1}/{folds}: training {config.name} on {len(train)} items")
    start = time.perf_counter()
    fold_probs = fit_predict(config, data, train, test, seed=seed + fold, progress=progress)
    return fold, test, fold_probs, time.perf_counter() - start


def _parallel(
    tasks: list[tuple[int, Any, Any]], data: Dataset, config: ModelConfig, seed: int, jobs: int
) -> Any:
    from joblib import Parallel, delayed

    run = Parallel(n_jobs=jobs, return_as="generator_unordered")
    return run(
        delayed(_train_fold)(fold, train, test, data, config, seed, None, 0)
        for fold, train, test in tasks
    )
