"""Out-of-fold predicted probabilities by stratified K-fold, one cache entry per fold.

Each fold's entry holds its held-out items (index, id, content hash) and their probabilities,
and its trained model is kept beside it. That makes small changes cheap: an item's out-of-fold
prediction comes from a model that never saw it, so it does not depend on the item's own label,
and a new item can be scored by a fold model that never saw it either. When a dataset changes by
at most :data:`INCREMENTAL_MAX_SHARE` of its items, the last full run of the same dataset and
settings (its *lineage*) provides every unchanged item's prediction, and its fold models score
the new and edited items; nothing is retrained. The other items' predictions then come from
models trained on the previous labels, an approximation that a full run (any larger change, or
a new cache) removes.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_labelquality.backends import LOCAL, Backend, run_folds
from pytest_labelquality.backends.tasks import FoldResult, FoldTask
from pytest_labelquality.cache import (
    CACHE_HINT,
    ArrayCache,
    Expect,
    as_array,
    from_array,
)
from pytest_labelquality.cache_keys import fold_key
from pytest_labelquality.errors import CacheError, os_error_message
from pytest_labelquality.guards import blame_factory
from pytest_labelquality.models import FoldModel, ModelConfig, fit_predict
from pytest_labelquality.resources import exit_with_parent
from pytest_labelquality.result import Blend, EmbeddingUse, Incremental

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from pytest_labelquality.cache import CacheRoot
    from pytest_labelquality.dataset import Dataset

Progress = Callable[[str], None]
INCREMENTAL_MAX_SHARE = 0.05
#: A fold's cache entry: its held-out items' indices, ids, content hashes and labels, their
#: probabilities (one column per class) and the fold's training time.
FOLD_ARRAYS: Expect = {
    "test": ("iu", ("held out",)),
    "ids": ("U", ("held out",)),
    "content": ("U", ("held out",)),
    "labels": ("iu", ("held out",)),
    "probs": ("f", ("held out", None)),
    "seconds": ("f", ()),
}


@dataclass(frozen=True, eq=False)
class OutOfFold:
    """The out-of-fold probability matrix and how it was obtained."""

    pred_probs: npt.NDArray[np.float32]
    fold_seconds: tuple[float, ...]
    folds_cached: int
    incremental: Incremental | None = None
    #: An encoder model's embedding work: items encoded and reused, seconds.
    embeddings: EmbeddingUse | None = None
    #: ``tfidf_encoder``'s choice and each option's out-of-fold accuracy.
    blend: Blend | None = None
    #: An encoder model's embeddings (float32, one row per item): the suspects' neighbours.
    vectors: npt.NDArray[Any] | None = None


def out_of_fold(
    data: Dataset,
    config: ModelConfig,
    *,
    content: npt.NDArray[np.str_],
    folds: int,
    seed: int,
    jobs: int,
    cache: ArrayCache,
    run_key: str,
    lineage_key: str,
    progress: Progress,
    backend: Backend = LOCAL,
) -> OutOfFold:
    """Each item's class probabilities from a model that never saw it.

    Trains only the folds missing from the cache (an interrupted run resumes), unless the data
    differs little from its lineage's last full run, which is then reused. On a Ray or Dask
    ``backend`` every missing fold is a task on the cluster, which writes its own cache entry.
    Locally, scikit-learn folds run ``jobs`` at a time through joblib; Keras and
    ``hog_boosting`` folds run one after another, each using every core.
    """
    import numpy as np

    probs = np.zeros((len(data), len(data.class_names)), dtype=np.float32)
    seconds = [0.0] * folds
    missing: list[int] = []
    covered = np.zeros(len(data), dtype=bool)
    for fold in range(folds):
        key = fold_key(run_key, fold)
        entry = _fold_entry(cache, key, len(data.class_names))
        if entry is not None:
            test = entry["test"]
            problem = _inconsistent(entry, data, covered)
            if problem:
                cache.discard(key, problem)
                entry = None
        if entry is None:
            missing.append(fold)
            continue
        covered[test] = True
        probs[test] = entry["probs"]
        seconds[fold] = float(entry["seconds"])
    if not missing and not covered.all():  # folds of some other split: none can be trusted
        for fold in range(folds):
            cache.discard(fold_key(run_key, fold), "one of folds that do not cover every item")
        missing = list(range(folds))
    cached = folds - len(missing)
    if cached:
        progress(f"{cached} of {folds} folds from the cache")
    if missing and cached == 0:
        reused = _incremental(data, config, content, cache, lineage_key, folds, progress)
        if reused is not None:
            return reused
    if missing:
        splits = _splits(data, folds=folds, seed=seed)
        tasks: list[FoldTask] = [(fold, *splits[fold]) for fold in missing]
        if not backend.local:
            sent = f"{len(tasks)} fold{'s' if len(tasks) > 1 else ''} of {config.name}"
            progress(f"{sent} sent to {backend.name.value}")
            on_cluster = run_folds(
                backend,
                tasks,
                data,
                config,
                content=content,
                seed=seed,
                cache_root=cache.root,
                run_key=run_key,
                fold=run_fold,
            )
            for fold, test, fold_probs, took in on_cluster:  # each task saved its own entry
                probs[test] = fold_probs
                seconds[fold] = took
                _report_fold(data, fold, folds, test, fold_probs, took, progress)
        else:
            if jobs > 1 and config.parallel_folds:
                results: Iterable[Any] = _parallel(tasks, data, config, seed, jobs)
            else:
                results = (
                    _train_fold(fold, train, test, data, config, seed, progress, folds)
                    for fold, train, test in tasks
                )
            for fold, test, fold_probs, model, took in results:
                probs[test] = fold_probs
                seconds[fold] = took
                _save_fold(data, fold, test, fold_probs, model, took, content, cache, run_key)
                _report_fold(data, fold, folds, test, fold_probs, took, progress)
    cache.save(lineage_key, {"meta": as_array({"run_key": run_key, "folds": folds})})
    return OutOfFold(pred_probs=probs, fold_seconds=tuple(seconds), folds_cached=cached)


def first_fold(
    data: Dataset,
    config: ModelConfig,
    *,
    content: npt.NDArray[np.str_],
    folds: int,
    seed: int,
    cache: ArrayCache,
    run_key: str,
    progress: Progress,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64], float]:
    """The first fold's held-out probabilities, held-out rows and training seconds: from the
    cache, or trained and cached as the first fold of a full run with this ``run_key`` (which
    then does not train it again)."""
    entry = cache.load(fold_key(run_key, 0))
    if entry is not None and entry["probs"].shape[1] == len(data.class_names):
        return entry["probs"], entry["test"], float(entry["seconds"])
    train, test = _splits(data, folds=folds, seed=seed)[0]
    _, test, probs, model, took = _train_fold(0, train, test, data, config, seed, progress, folds)
    _save_fold(data, 0, test, probs, model, took, content, cache, run_key)
    _report_fold(data, 0, folds, test, probs, took, progress)
    return probs, test, took


def _save_fold(
    data: Dataset,
    fold: int,
    test: npt.NDArray[np.int64],
    probs: npt.NDArray[np.float32],
    model: FoldModel,
    took: float,
    content: npt.NDArray[np.str_],
    cache: ArrayCache,
    run_key: str,
) -> None:
    import numpy as np

    key = fold_key(run_key, fold)
    with contextlib.ExitStack() as stack:
        if cache.remote is None:
            stem = cache.path(key).with_suffix("")
        else:  # written here first, then uploaded whole
            stem = Path(stack.enter_context(tempfile.TemporaryDirectory())) / key
        try:
            written = model.save(stem)
        except OSError as exc:
            message = os_error_message(exc, "cannot save a fold model", CACHE_HINT, stem)
            raise CacheError(message) from None
        if cache.remote is not None:
            cache.put_file(key, written)
    cache.save(
        key,
        {
            "test": test,
            "ids": data.ids[test],
            "content": content[test],
            "labels": data.labels[test],
            "probs": probs,
            "seconds": np.array(took),
        },
    )


def _report_fold(
    data: Dataset,
    fold: int,
    folds: int,
    test: npt.NDArray[np.int64],
    probs: npt.NDArray[np.float32],
    took: float,
    progress: Progress,
) -> None:
    import numpy as np

    acc = float(np.mean(probs.argmax(axis=1) == data.labels[test]))
    progress(
        f"fold {fold + 1}/{folds}: trained on {len(data) - len(test)} items in"
        f" {took:.1f}s; accuracy on its {len(test)} held-out items {acc:.3f}"
    )


def _incremental(
    data: Dataset,
    config: ModelConfig,
    content: npt.NDArray[np.str_],
    cache: ArrayCache,
    lineage_key: str,
    folds: int,
    progress: Progress,
) -> OutOfFold | None:
    """Reuse the lineage's last full run when few items are new or edited; else None."""
    import numpy as np

    pointer = cache.load(lineage_key, {"meta": ("U", ())})
    if pointer is None:
        return None
    try:
        base_key = str(from_array(pointer["meta"])["run_key"])
    except (ValueError, KeyError, TypeError):
        cache.discard(lineage_key, "holding unreadable metadata")
        return None
    entries = [
        _fold_entry(cache, fold_key(base_key, fold), len(data.class_names)) for fold in range(folds)
    ]
    if any(e is None for e in entries):
        return None
    fold_of_id: dict[str, int] = {}  # an edited item is scored by the model of its old fold
    by_content: dict[str, tuple[int, int, int]] = {}  # content -> (fold, row, label)
    for fold, entry in enumerate(entries):
        assert entry is not None
        held_out = zip(
            entry["ids"].tolist(), entry["content"].tolist(), entry["labels"].tolist(), strict=True
        )
        for row, (item, digest, label) in enumerate(held_out):
            fold_of_id[item] = fold
            by_content[digest] = (fold, row, label)
    ids = data.ids
    probs = np.zeros((len(data), len(data.class_names)), dtype=np.float32)
    to_score: dict[int, list[int]] = {}
    relabelled = 0
    rows = zip(ids.tolist(), content.tolist(), data.labels.tolist(), strict=True)
    for i, (item, digest, label) in enumerate(rows):
        # matched by content: an id can change when an item moves (a Quick, Draw! relabel moves
        # a drawing to another class's file), its content cannot
        seen = by_content.get(digest)
        if seen is not None:
            entry = entries[seen[0]]
            assert entry is not None
            probs[i] = entry["probs"][seen[1]]
            relabelled += seen[2] != label
        else:
            fold = fold_of_id[item] if item in fold_of_id else _fold_of(item, folds)
            to_score.setdefault(fold, []).append(i)
    scored = sum(len(members) for members in to_score.values())
    if scored + relabelled > INCREMENTAL_MAX_SHARE * len(data):
        progress(
            f"{scored + relabelled} of {len(data)} items are new, edited or relabelled since the"
            f" last full run (more than {INCREMENTAL_MAX_SHARE:.0%}): training every fold"
        )
        return None
    start = time.perf_counter()
    for fold, members in sorted(to_score.items()):
        with cache.local_files(fold_key(base_key, fold)) as stem:
            model = FoldModel.load(stem)
        if model is None:
            cache.discard(fold_key(base_key, fold), "without a readable model beside it")
            return None
        with blame_factory(config.factory):
            probs[members] = model.predict(data, np.array(members, dtype=np.int64))
    progress(
        f"reused the out-of-fold predictions of {len(data) - scored} items ({relabelled}"
        f" relabelled) and scored {scored} new or edited items with the fold models that never"
        f" saw them ({time.perf_counter() - start:.1f}s); nothing retrained"
    )
    return OutOfFold(
        pred_probs=probs,
        fold_seconds=(),
        folds_cached=folds,
        incremental=Incremental(len(data) - scored, relabelled, scored, base_run=base_key),
    )


def _fold_entry(cache: ArrayCache, key: str, classes: int) -> dict[str, Any] | None:
    """A fold's cache entry, when it holds its arrays in the shapes this run needs."""
    import numpy as np

    entry = cache.load(key, {**FOLD_ARRAYS, "probs": ("f", ("held out", classes))})
    if entry is not None and not np.isfinite(entry["probs"]).all():
        cache.discard(key, "holding probabilities that are not finite")
        return None
    return entry


def _inconsistent(entry: dict[str, Any], data: Dataset, covered: npt.NDArray[np.bool_]) -> str:
    """Why a fold's entry does not fit the data of this run (whose key it has), or ``""``."""
    import numpy as np

    test = entry["test"]
    if len(test) and (test.min() < 0 or test.max() >= len(data)):
        return f"holding item indices outside the dataset's {len(data)} items"
    if covered[test].any() or len(np.unique(test)) != len(test):
        return "holding items that another fold also holds"
    if not np.array_equal(entry["labels"], data.labels[test]) or not np.array_equal(
        entry["ids"], data.ids[test]
    ):
        return "holding other items or labels than this dataset's"
    return ""


def _fold_of(item: str, folds: int) -> int:
    """A new item's fold, stable across runs: from a hash of its id."""
    return int.from_bytes(hashlib.blake2b(item.encode(), digest_size=4).digest(), "big") % folds


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
) -> tuple[int, npt.NDArray[np.int64], npt.NDArray[np.float32], FoldModel, float]:
    if progress is not None:
        progress(f"fold {fold + 1}/{folds}: training {config.name} on {len(train)} items")
    start = time.perf_counter()
    with blame_factory(config.factory):
        fold_probs, model = fit_predict(
            config, data, train, test, seed=seed + fold, progress=progress
        )
    return fold, test, fold_probs, model, time.perf_counter() - start


def _parallel(
    tasks: list[tuple[int, Any, Any]], data: Dataset, config: ModelConfig, seed: int, jobs: int
) -> Any:
    from joblib import Parallel, delayed
    from joblib.parallel import LokyBackend, get_active_backend

    backend: Any = None
    if isinstance(get_active_backend()[0], LokyBackend):  # joblib's own processes, not a cluster's
        # each worker exits as soon as this process is gone (a kill -9 leaves no orphan)
        backend = LokyBackend(initializer=exit_with_parent, initargs=(os.getpid(),))
    run = Parallel(n_jobs=jobs, backend=backend, return_as="generator_unordered")
    return run(
        delayed(_train_fold)(fold, train, test, data, config, seed, None, 0)
        for fold, train, test in tasks
    )


#: The dataset this worker process last received, by its token: the folds of one run that land
#: on the same worker share it, and with it ``hog_boosting``'s features of its images.
_RESIDENT: dict[str, tuple[Dataset, npt.NDArray[np.str_]]] = {}


def run_fold(
    payload: tuple[str, Dataset, npt.NDArray[np.str_]],
    config: ModelConfig,
    task: FoldTask,
    seed: int,
    cache_root: CacheRoot,
    run_key: str,
) -> FoldResult:
    """One fold as a task on a Ray or Dask worker: train it, write its cache entry and model,
    return its held-out probabilities. ``payload`` is (token, dataset, content hashes)."""
    from pytest_labelquality.resources import THREADS_ENV, passive_openmp

    # a task holds one CPU (Ray's num_cpus=1, one thread of a Dask worker): one thread for
    # OpenMP, BLAS and TensorFlow, whatever the worker inherited, unless the user fixed it
    os.environ.setdefault(THREADS_ENV, "1")
    passive_openmp()
    token, data, content = payload
    if token not in _RESIDENT:
        _RESIDENT.clear()
        _RESIDENT[token] = (data, content)
    data, content = _RESIDENT[token]
    fold, train, test = task
    _, test, probs, model, took = _train_fold(fold, train, test, data, config, seed, None, 0)
    _save_fold(data, fold, test, probs, model, took, content, ArrayCache(cache_root), run_key)
    return fold, test, probs, took
