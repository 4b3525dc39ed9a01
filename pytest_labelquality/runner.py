"""One dataset, end to end: load, fingerprint, out-of-fold training, detection, gate, result.

The result is a plain JSON-able dict: it travels from xdist workers, fills the JSON file, and is
the data of the HTML report.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_labelquality import __version__
from pytest_labelquality.auto import IMAGE_CANDIDATES, TABULAR_CANDIDATES, choose
from pytest_labelquality.baseline import Change, baseline_entry, compare, load_baseline
from pytest_labelquality.cache import ArrayCache, as_array, fingerprint, from_array
from pytest_labelquality.crossval import OutOfFold, first_fold, out_of_fold
from pytest_labelquality.detection import Detection, cleanlab_version, detect
from pytest_labelquality.ensemble import combine, member_specs
from pytest_labelquality.gate import Verdict, decide
from pytest_labelquality.models import ModelConfig, resolve_model
from pytest_labelquality.previews import previews
from pytest_labelquality.reviews import ReviewOutcome, apply_reviews, load_reviews
from pytest_labelquality.sources import (
    DataKind,
    Dataset,
    check_folds,
    item_keys,
    load_dataset,
    review_hash,
)
from pytest_labelquality.spec import DatasetSpec, ModelName, ModelSpec, QuickDrawSource

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

Progress = Callable[[str], None]
WEAK_MODEL_SKILL = 0.3
HISTOGRAM_BINS = 20


def check_dataset(
    spec: DatasetSpec,
    *,
    cache_dir: Path,
    progress: Progress,
    keep_items: bool = False,
    show_top: int = 0,
) -> dict[str, Any]:
    """Run the whole check for one dataset; raises ``LabelQualityError`` subclasses.

    With ``keep_items`` the result also carries what a new baseline needs (every item's hash).
    ``show_top`` also lists the items among the ``show_top`` most suspect of the ranking that
    are below the estimated count (``below_estimate``), for reviewers who look further.
    """
    import numpy as np

    start = time.perf_counter()
    data = load_dataset(spec)
    check_folds(data, spec.cv.folds)
    loaded = time.perf_counter()
    cache = ArrayCache(cache_dir)
    data_key = fingerprint("data", data.features, data.labels, data.ids, list(data.class_names))
    keys: dict[str, tuple[str, str]] | None = None  # hashed when needed: a warm run skips it

    def content() -> npt.NDArray[np.str_]:
        nonlocal keys
        keys = keys or item_keys(data)
        return np.array([digest for digest, _ in keys.values()])

    chosen: dict[str, Any] | None = None
    model_spec = spec.model
    if model_spec.name is ModelName.AUTO:
        chosen = _choose_model(spec, data, data_key, cache, content, progress)
        model_spec = dataclasses.replace(model_spec, name=ModelName(chosen["chosen"]))
    config = _resolve(spec, data, model_spec)
    run_key, _ = _run_keys(spec, data_key, config)
    detection_key = fingerprint(
        run_key, "detection", spec.detection.__dict__, cleanlab_version(), __version__
    )
    hashed = time.perf_counter()
    folds_cached = spec.cv.folds
    fold_seconds: tuple[float, ...] = ()
    incremental: dict[str, Any] = {}
    entry = cache.load(detection_key)
    if entry is not None:
        found = Detection.from_arrays(entry)
        progress(f"{spec.name}: cache hit, nothing to train")
    else:
        progress(f"{spec.name}: {len(data)} items, {len(data.class_names)} classes, {config.name}")
        oof = _out_of_fold(spec, data, data_key, config, model_spec, cache, content(), progress)
        folds_cached, fold_seconds = oof.folds_cached, oof.fold_seconds
        incremental = oof.incremental
        trained = time.perf_counter()
        found = detect(data.labels, oof.pred_probs, spec.detection, seed=spec.cv.seed)
        cache.save(detection_key, found.to_arrays())
        progress(f"{spec.name}: detection in {time.perf_counter() - trained:.1f}s")
    progress(honest_count_line(spec.name, len(data), found))
    detected = time.perf_counter()
    judged = _judge(spec, data, found, keys, keep_items=keep_items)
    if entry is not None:
        status = "hit"
    elif incremental:
        status = "incremental"
    else:
        status = "partial" if folds_cached else "miss"
    return _result(
        spec,
        data,
        found,
        judged,
        show_top=show_top,
        model={**config.as_dict(), **({"auto": chosen} if chosen else {})},
        versions={**config.versions(), "cleanlab": cleanlab_version()},
        cache={
            "key": detection_key,
            "status": status,
            "folds_cached": folds_cached,
            "dir": str(cache_dir),
            "incremental": incremental or None,
        },
        timings={
            "load": round(loaded - start, 3),
            "fingerprint": round(hashed - loaded, 3),
            "train_and_detect": round(detected - hashed, 3),
            "total": round(time.perf_counter() - start, 3),
            "fold_seconds": [round(s, 3) for s in fold_seconds],
        },
    )


def _resolve(spec: DatasetSpec, data: Dataset, model: ModelSpec) -> ModelConfig:
    return resolve_model(
        model,
        image=data.kind is DataKind.IMAGE,
        spec_dir=spec.base_dir,
        train_items=len(data) - len(data) // spec.cv.folds,
        # Quick, Draw!'s classes are objects, whose drawings keep their label when mirrored
        mirror_default=isinstance(spec.source, QuickDrawSource),
        classes=len(data.class_names),
    )


def _run_keys(spec: DatasetSpec, data_key: str, config: ModelConfig) -> tuple[str, str]:
    """The cache keys of a run (this data, model and folds) and of its lineage (the same dataset
    and settings, whatever the data: where a small change finds its base)."""
    settings = (
        config.as_dict(),
        config.factory_digest,
        config.versions(),
        spec.cv.folds,
        spec.cv.seed,
    )
    run_key = fingerprint("run", data_key, *settings)
    return run_key, fingerprint("lineage", spec.spec_path.name, spec.name, *settings)


def _out_of_fold(
    spec: DatasetSpec,
    data: Dataset,
    data_key: str,
    config: ModelConfig,
    model: ModelSpec,
    cache: ArrayCache,
    content: npt.NDArray[np.str_],
    progress: Progress,
) -> OutOfFold:
    """The out-of-fold probabilities of ``config``; an ensemble's are its members' mean."""
    if config.name == ModelName.ENSEMBLE:
        parts = []
        for member in member_specs(model):
            member_config = _resolve(spec, data, member)
            progress(f"{spec.name}: ensemble member {member_config.name}")
            parts.append(
                _out_of_fold(spec, data, data_key, member_config, member, cache, content, progress)
            )
        return combine(parts)
    run_key, lineage_key = _run_keys(spec, data_key, config)
    return out_of_fold(
        data,
        config,
        content=content,
        folds=spec.cv.folds,
        seed=spec.cv.seed,
        jobs=spec.cv.jobs,
        cache=cache,
        run_key=run_key,
        lineage_key=lineage_key,
        progress=progress,
    )


def _choose_model(
    spec: DatasetSpec,
    data: Dataset,
    data_key: str,
    cache: ArrayCache,
    content: Callable[[], npt.NDArray[np.str_]],
    progress: Progress,
) -> dict[str, Any]:
    """``model: auto``'s choice for this dataset, from the cache or by :func:`auto.choose`."""
    image = data.kind is DataKind.IMAGE
    candidates = IMAGE_CANDIDATES if image else TABULAR_CANDIDATES
    probe = _resolve(spec, data, dataclasses.replace(spec.model, name=ModelName.SMALL_CNN))
    key = fingerprint(
        "auto",
        data_key,
        [c.value for c in candidates],
        dataclasses.asdict(spec.model),
        probe.versions(),
        spec.cv.folds,
        spec.cv.seed,
    )
    entry = cache.load(key)
    if entry is not None:
        chosen: dict[str, Any] = from_array(entry["choice"])
        progress(f"{spec.name}: model auto chose {chosen['chosen']} (cached)")
        return chosen

    def first(name: ModelName) -> Any:
        config = _resolve(spec, data, dataclasses.replace(spec.model, name=name))
        progress(f"{spec.name}: model auto tries {config.name} on the first fold")
        return first_fold(
            data,
            config,
            content=content(),
            folds=spec.cv.folds,
            seed=spec.cv.seed,
            cache=cache,
            run_key=_run_keys(spec, data_key, config)[0],
            progress=progress,
        )

    chosen = choose(candidates, data.labels, first)
    figures = ", ".join(f"{n} {f['accuracy']:.3f}" for n, f in chosen["candidates"].items())
    progress(f"{spec.name}: model auto chose {chosen['chosen']} (first-fold accuracy {figures})")
    cache.save(key, {"choice": as_array(chosen)})
    return chosen


@dataclass(frozen=True)
class Judgement:
    """The gate's verdict with what reviews and the baseline contributed to it."""

    verdict: Verdict
    hashes: dict[str, str]
    reviews: ReviewOutcome
    change: Change | None
    warnings: list[str]
    baseline_entry: dict[str, Any] | None


def _judge(
    spec: DatasetSpec,
    data: Dataset,
    found: Detection,
    keys: dict[str, tuple[str, str]] | None,
    *,
    keep_items: bool,
) -> Judgement:
    """Apply reviews (accepted items stop counting), compare with the baseline, decide.

    Items are hashed only where needed: all of them for a baseline, else the flagged and the
    reviewed ones."""
    import numpy as np

    ids = data.ids
    entries = load_reviews(spec.spec_path, spec.name)
    baseline = load_baseline(spec.spec_path)
    if keys is None and (keep_items or (baseline and spec.name in baseline["datasets"])):
        keys = item_keys(data)
    if keys is None:
        reviewed = np.flatnonzero(np.isin(ids, [r.id for r in entries]))
        keys = item_keys(data, sorted({*found.flagged.tolist(), *reviewed.tolist()}))
    hashes = {i: review_hash(content, label) for i, (content, label) in keys.items()}
    reviews = apply_reviews(entries, hashes)
    counted = np.array(
        [i for i in found.flagged.tolist() if str(ids[i]) not in reviews.accepted], dtype=np.int64
    )
    suspects = [str(ids[i]) for i in counted]
    change = compare(baseline, spec.name, keys, suspects)
    warnings = reviews.warnings()
    gate = spec.gate
    rules = [gate.max_increase, gate.max_new_suspects, gate.max_new_suspect_share]
    if change is None and any(r is not None for r in rules):
        warnings.append(
            "the gate's rules on what a change did (max_increase, max_new_suspects,"
            " max_new_suspect_share) need a baseline and there is none for this dataset;"
            " write one with --label-quality-update-baseline"
        )
    verdict = decide(
        data.labels, counted, data.class_names, gate, origin=spec.location, change=change
    )
    entry = None
    if keep_items:
        entry = baseline_entry(verdict.noise_rate, verdict.noise_count, keys, suspects)
    return Judgement(verdict, hashes, reviews, change, warnings, entry)


def _result(
    spec: DatasetSpec,
    data: Dataset,
    found: Detection,
    judged: Judgement,
    *,
    show_top: int,
    **provenance: Any,
) -> dict[str, Any]:
    import numpy as np

    verdict = judged.verdict
    names = data.class_names
    labels = data.labels
    oof_accuracy = float(np.mean(found.suggested == labels))
    warnings = _weak_model_warning(labels, found.suggested, len(names)) + judged.warnings
    flagged = found.flagged
    matrix = np.zeros((len(names), len(names)), dtype=np.int64)
    np.add.at(matrix, (labels[flagged], found.suggested[flagged]), 1)
    counts, edges = np.histogram(found.scores, bins=HISTOGRAM_BINS, range=(0.0, 1.0))
    result: dict[str, Any] = {
        "name": spec.name,
        "spec": {"file": str(spec.spec_path), "line": spec.line},
        "source": {"origin": data.origin, "kind": data.kind.value},
        "items": len(data),
        "classes": list(names),
        "feature_names": list(data.feature_names),
        "noise": {
            "rate": verdict.noise_rate,
            "count": verdict.noise_count,
            "flagged": len(flagged),
            "reviewed": len(flagged) - verdict.noise_count,
            "interval": list(found.noise_rate_interval),
            "method": found.method,
            "estimators": {
                name: {"count": count, "rate": count / len(data)}
                for name, count in found.estimates.items()
            },
            "band": [
                min(found.estimates.values()) / len(data),
                max(found.estimates.values()) / len(data),
            ],
            "canary": found.canary,
        },
        "gate": {
            "max_noise_rate": verdict.max_noise_rate,
            "max_class_noise_rate": dict(spec.gate.max_class_noise_rate),
            "max_increase": spec.gate.max_increase,
            "max_new_suspects": spec.gate.max_new_suspects,
            "max_new_suspect_share": spec.gate.max_new_suspect_share,
            "change_failures": list(verdict.change_failures),
            "passed": verdict.passed,
        },
        "reviews": {
            "decisions": {i: d.value for i, d in judged.reviews.decisions.items()},
            "stale": [r.id for r in judged.reviews.stale],
        },
        "baseline": judged.change.as_dict(verdict.noise_rate) if judged.change else None,
        "per_class": [
            {
                "name": c.name,
                "items": c.items,
                "flagged": c.flagged,
                "rate": c.rate,
                "max_rate": c.max_rate,
                "passed": c.passed,
            }
            for c in verdict.classes
        ],
        "oof_accuracy": oof_accuracy,
        "flagged": [
            {
                "rank": rank,
                "index": int(i),
                "id": str(data.ids[i]),
                "hash": judged.hashes[str(data.ids[i])],
                "review": judged.reviews.decisions.get(str(data.ids[i])),
                "given": names[labels[i]],
                "suggested": names[found.suggested[i]],
                "suggested_prob": round(float(found.suggested_prob[i]), 4),
                "score": round(float(found.scores[i]), 6),
            }
            for rank, i in enumerate(flagged.tolist(), start=1)
        ],
        "noise_matrix": matrix.tolist(),
        "score_histogram": {
            "edges": [round(float(e), 4) for e in edges],
            "counts": counts.tolist(),
            "cutoff": float(found.scores[flagged].max()) if len(flagged) else None,
        },
        "cv": {"folds": spec.cv.folds, "seed": spec.cv.seed, "jobs": spec.cv.jobs},
        "seed": spec.cv.seed,
        "warnings": warnings,
        **provenance,
    }
    for entry, shown in zip(result["flagged"], previews(data, flagged), strict=False):
        entry["preview"] = shown
    result["ranking"] = ranking(data, found)
    result["below_estimate"] = _below_estimate(data, found, show_top)
    if judged.baseline_entry is not None:
        result["baseline_entry"] = judged.baseline_entry
    if len(data.flipped):
        result["injected"] = _against_injected(flagged, data.flipped)
    return result


def honest_count_line(name: str, items: int, found: Detection) -> str:
    """One progress line: both estimators' counts and what the canary recovered."""
    counts = ", ".join(f"{e} {c}" for e, c in found.estimates.items())
    line = f"{name}: count by {counts} of {items}"
    canary = found.canary
    if canary.get("injected"):
        line += (
            f"; canary: {canary['recovered']} of {canary['injected']} injected flips found, the"
            f" count rose by {canary['count_rise']}"
        )
    return line


def ranking(data: Dataset, found: Detection) -> dict[str, list[Any]]:
    """Every item, most suspect first: the columns of the ranking file."""
    import numpy as np

    order = np.argsort(found.scores, kind="stable")
    flagged = np.zeros(len(data), dtype=bool)
    flagged[found.flagged] = True
    names = np.asarray(data.class_names, dtype=object)
    return {
        "rank": list(range(1, len(order) + 1)),
        "index": order.tolist(),
        "id": data.ids[order].tolist(),
        "given": names[data.labels[order]].tolist(),
        "suggested": names[found.suggested[order]].tolist(),
        "suggested_prob": np.round(found.suggested_prob[order].astype(np.float64), 4).tolist(),
        "score": np.round(found.scores[order], 6).tolist(),
        "flagged": flagged[order].astype(int).tolist(),
    }


def _below_estimate(data: Dataset, found: Detection, top: int) -> list[dict[str, Any]]:
    """The items among the ``top`` most suspect that the estimate does not flag, with previews."""
    import numpy as np

    order = np.argsort(found.scores, kind="stable")[:top]
    below = order[~np.isin(order, found.flagged)]
    names = data.class_names
    keys = item_keys(data, below.tolist())
    entries = [
        {
            "rank": int(np.flatnonzero(order == i)[0]) + 1,
            "index": int(i),
            "id": str(data.ids[i]),
            "hash": review_hash(*keys[str(data.ids[i])]),
            "given": names[data.labels[i]],
            "suggested": names[found.suggested[i]],
            "suggested_prob": round(float(found.suggested_prob[i]), 4),
            "score": round(float(found.scores[i]), 6),
            "below_estimate": True,
        }
        for i in below.tolist()
    ]
    for entry, shown in zip(entries, previews(data, below), strict=False):
        entry["preview"] = shown
    return entries


def _weak_model_warning(
    labels: npt.NDArray[np.int64], suggested: npt.NDArray[np.int64], num_classes: int
) -> list[str]:
    """Warn when the model's out-of-fold predictions barely beat chance.

    Confident learning trusts the model's probabilities; a model with little skill flags its own
    mistakes, not wrong labels. Skill is balanced accuracy (the mean of per-class recalls, against
    the given labels) rescaled so that chance, 1/K, is 0 and perfect is 1. Balanced accuracy
    rather than accuracy, because always answering the most common class scores high accuracy on
    imbalanced data, and noisy labels cap any model's accuracy at about one minus the noise rate.
    """
    import numpy as np

    present = np.bincount(labels, minlength=num_classes) > 0
    hits = np.bincount(labels[suggested == labels], minlength=num_classes)
    recalls = hits[present] / np.bincount(labels, minlength=num_classes)[present]
    balanced = float(recalls.mean())
    chance = 1 / int(present.sum())
    skill = (balanced - chance) / (1 - chance)
    if skill >= WEAK_MODEL_SKILL:
        return []
    return [
        f"the model is too weak for the estimate to be trusted: out-of-fold balanced accuracy"
        f" {balanced:.1%} against {chance:.1%} by chance (skill {skill:.2f} <"
        f" {WEAK_MODEL_SKILL}); try a stronger model or more epochs"
    ]


def _against_injected(
    flagged: npt.NDArray[np.int64], flipped: npt.NDArray[np.int64]
) -> dict[str, Any]:
    """Precision, recall and F1 of the flagged items against the injected flips."""
    hits = len(set(flagged.tolist()) & set(flipped.tolist()))
    precision = hits / len(flagged) if len(flagged) else 0.0
    recall = hits / len(flipped) if len(flipped) else 0.0
    f1 = 2 * precision * recall / (precision + recall) if hits else 0.0
    return {
        "count": len(flipped),
        "flagged_and_flipped": hits,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "indices": flipped.tolist(),
    }
