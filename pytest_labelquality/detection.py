"""Confident learning on out-of-fold probabilities: the one module that calls cleanlab."""

from __future__ import annotations

import dataclasses
import importlib.metadata
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pytest_labelquality.cache import as_array, from_array
from pytest_labelquality.neighbours import Neighbours
from pytest_labelquality.spec import Calibration, CountMethod, DetectionSpec, FilterBy, RankedBy

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

#: The bootstrap resamples the items this many times, fewer on large datasets (at least 20) so
#: that it re-counts about BOOTSTRAP_BUDGET items in all: its interval narrows with size anyway.
BOOTSTRAP_ROUNDS = 100
BOOTSTRAP_BUDGET = 2_000_000
#: The canary flips this share of the items that are not suspect (at least CANARY_MIN, at most
#: a third of them) and checks that detection finds them.
CANARY_RATE = 0.05
CANARY_MIN = 10
ESTIMATORS = ("off_diagonal", "off_diagonal_calibrated")


@dataclass(frozen=True, eq=False)
class Detection:
    """What cleanlab found: per-item scores and suggestions, and the flagged items, ranked.

    ``flagged`` is both the suspect list and the gated count, so the two never disagree.
    ``neighbours``: where the model trains on an encoder's embeddings, the nearest items of the
    suspects the report shows (the runner adds them; they share this cache entry).
    """

    scores: npt.NDArray[np.float64]
    suggested: npt.NDArray[np.int64]
    suggested_prob: npt.NDArray[np.float32]
    given_prob: npt.NDArray[np.float32]
    flagged: npt.NDArray[np.int64]
    method: dict[str, Any]
    noise_rate_interval: tuple[float, float]
    estimates: dict[str, int]
    canary: dict[str, Any]
    neighbours: Neighbours | None = None

    @property
    def noise_count(self) -> int:
        """The estimated number of wrong labels."""
        return len(self.flagged)

    def to_arrays(self) -> dict[str, Any]:
        """Arrays for the cache."""
        return {
            "scores": self.scores,
            "suggested": self.suggested,
            "suggested_prob": self.suggested_prob,
            "given_prob": self.given_prob,
            "flagged": self.flagged,
            "meta": as_array(
                {
                    "method": self.method,
                    "interval": self.noise_rate_interval,
                    "estimates": self.estimates,
                    "canary": self.canary,
                }
            ),
            **(self.neighbours.to_arrays() if self.neighbours is not None else {}),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, Any]) -> Detection:
        """Rebuild from a cache entry."""
        meta = from_array(arrays["meta"])
        return cls(
            scores=arrays["scores"],
            suggested=arrays["suggested"],
            suggested_prob=arrays["suggested_prob"],
            given_prob=arrays["given_prob"],
            flagged=arrays["flagged"],
            method=meta["method"],
            noise_rate_interval=(float(meta["interval"][0]), float(meta["interval"][1])),
            estimates=meta["estimates"],
            canary=meta["canary"],
            neighbours=Neighbours.from_arrays(arrays),
        )


def cleanlab_version() -> str:
    """The installed cleanlab's version, read without importing it."""
    return importlib.metadata.version("cleanlab")


def count_method(spec: DetectionSpec, num_classes: int) -> str:
    """The estimator actually used: ``auto`` calibrates below 4 classes, as cleanlab advises."""
    if spec.count is CountMethod.AUTO:
        return "off_diagonal_calibrated" if num_classes < 4 else "off_diagonal"
    return spec.count.value


def resolved(spec: DetectionSpec, *, soft_probabilities: bool) -> DetectionSpec:
    """``spec`` with ``calibrate: auto`` decided for a model: temperature scaling where its
    probabilities are soft by construction (label smoothing), none otherwise."""
    if spec.calibrate is not Calibration.AUTO:
        return spec
    chosen = Calibration.TEMPERATURE if soft_probabilities else Calibration.NONE
    return dataclasses.replace(spec, calibrate=chosen)


def detect(
    labels: npt.NDArray[np.int64],
    pred_probs: npt.NDArray[np.floating[Any]],
    spec: DetectionSpec,
    *,
    seed: int,
) -> Detection:
    """Calibrate the probabilities (:mod:`~pytest_labelquality.calibration`; ``calibrate:
    auto`` is :func:`resolved` by the runner, and counts as ``none`` here), score every item,
    choose the suspects, bound the noise estimate by bootstrap, count with both of cleanlab's
    estimators, and run the canary (:func:`canary`)."""
    import numpy as np

    probs = np.asarray(pred_probs, dtype=np.float64)
    temperature: dict[str, float] = {}
    if spec.calibrate is Calibration.TEMPERATURE:
        from pytest_labelquality.calibration import calibrated

        probs, fitted = calibrated(labels, probs)
        temperature["temperature"] = round(fitted, 4)
    num_classes = probs.shape[1]
    scores = quality_scores(labels, probs, spec.ranked_by)
    estimator = count_method(spec, num_classes)
    flagged = _flag(labels, probs, scores, spec, estimator)
    method = {
        "ranked_by": spec.ranked_by.value,
        "filter_by": spec.filter_by.value,
        "count": estimator if spec.filter_by is FilterBy.ESTIMATE else "len(find_label_issues)",
        **temperature,
    }
    return Detection(
        scores=scores,
        suggested=probs.argmax(axis=1).astype(np.int64),
        suggested_prob=probs.max(axis=1).astype(np.float32),
        given_prob=probs[np.arange(len(labels)), labels].astype(np.float32),
        flagged=flagged,
        method=method,
        noise_rate_interval=_bootstrap(labels, probs, spec, estimator, seed=seed),
        estimates={e: _estimate(labels, probs, e) for e in ESTIMATORS},
        canary=canary(labels, probs, flagged, spec, estimator, seed=seed),
    )


def quality_scores(
    labels: npt.NDArray[np.int64], probs: npt.NDArray[np.float64], ranked_by: RankedBy
) -> npt.NDArray[np.float64]:
    """Each item's label-quality score in [0, 1], the lowest the most suspect.

    ``given_vs_rival`` is ``p_given / (p_given + p_rival)`` with ``p_rival`` the highest
    probability of another class: the log-odds of the given label against its rival, bounded.
    Measured against cleanlab's scores on the same folds, it finds as many uniform random flips
    as ``self_confidence`` and as many flips between look-alike classes as ``normalized_margin``
    (docs/models.md, "Ranking suspects")."""
    import numpy as np

    if ranked_by is not RankedBy.GIVEN_VS_RIVAL:
        from cleanlab.rank import get_label_quality_scores

        scored = get_label_quality_scores(labels, probs, method=ranked_by.value)
        return np.asarray(scored, dtype=np.float64)
    rows = np.arange(len(labels))
    given = probs[rows, labels]
    others = probs.copy()
    others[rows, labels] = -np.inf
    rival = others.max(axis=1)
    total = given + rival
    # both zero (an item no class claims): an even split, as a tie
    share: npt.NDArray[np.float64] = np.divide(
        given, total, out=np.full_like(given, 0.5), where=total > 0
    )
    return share


def _estimate(labels: npt.NDArray[np.int64], probs: npt.NDArray[np.float64], how: str) -> int:
    from cleanlab.count import num_label_issues

    return int(num_label_issues(labels, probs, estimation_method=how))


def canary(
    labels: npt.NDArray[np.int64],
    probs: npt.NDArray[np.float64],
    flagged: npt.NDArray[np.int64],
    spec: DetectionSpec,
    estimator: str,
    *,
    seed: int,
) -> dict[str, Any]:
    """Flip a known number of labels that are not suspect and detect again on the same
    out-of-fold probabilities: how many of them are found, and how far the count rises.

    Valid without retraining for the flipped items themselves (an item's out-of-fold prediction
    comes from a model that never saw it, so it does not depend on its own label), but the fold
    models were trained on the original labels: with the extra noise in training they would be
    a little weaker, so the canary is somewhat optimistic."""
    import numpy as np

    rng = np.random.default_rng([seed, 0xCA9A])
    k = probs.shape[1]
    candidates = np.setdiff1d(np.arange(len(labels)), flagged)
    size = min(len(candidates) // 3, max(CANARY_MIN, round(CANARY_RATE * len(labels))))
    if size < 1:
        return {"injected": 0}
    chosen = np.sort(rng.choice(candidates, size=size, replace=False))
    noisy = labels.copy()
    noisy[chosen] = (noisy[chosen] + rng.integers(1, k, size=size)) % k
    if not np.array_equal(
        np.bincount(noisy, minlength=k) > 0, np.bincount(labels, minlength=k) > 0
    ):
        return {"injected": 0}  # a class lost every item: cleanlab cannot count
    scores = quality_scores(noisy, probs, spec.ranked_by)
    found = _flag(noisy, probs, scores, spec, estimator)
    recovered = int(np.isin(chosen, found).sum())
    newly = np.setdiff1d(found, flagged)
    return {
        "injected": int(size),
        "recovered": recovered,
        "recall": recovered / size,
        # of the items flagged only after the flips, the share that are flips
        "precision": float(np.isin(newly, chosen).mean()) if len(newly) else 0.0,
        "count_before": len(flagged),
        "count_after": len(found),
        "count_rise": len(found) - len(flagged),
    }


def _count(
    labels: npt.NDArray[np.int64],
    probs: npt.NDArray[np.float64],
    spec: DetectionSpec,
    estimator: str,
) -> int:
    from cleanlab.count import num_label_issues
    from cleanlab.filter import find_label_issues

    if spec.filter_by is FilterBy.ESTIMATE:
        return int(num_label_issues(labels, probs, estimation_method=estimator))
    mask = find_label_issues(labels, probs, filter_by=spec.filter_by.value, n_jobs=1)
    return int(mask.sum())


def _flag(
    labels: npt.NDArray[np.int64],
    probs: npt.NDArray[np.float64],
    scores: npt.NDArray[np.float64],
    spec: DetectionSpec,
    estimator: str,
) -> npt.NDArray[np.int64]:
    """Suspects, most suspect first."""
    import numpy as np
    from cleanlab.filter import find_label_issues

    if spec.filter_by is FilterBy.ESTIMATE:
        # cleanlab's low_<score> filters, with the estimator this dataset calls for
        count = _count(labels, probs, spec, estimator)
        return np.argsort(scores, kind="stable")[:count].astype(np.int64)
    found = np.flatnonzero(
        find_label_issues(labels, probs, filter_by=spec.filter_by.value, n_jobs=1)
    )
    return found[np.argsort(scores[found], kind="stable")].astype(np.int64)


def _bootstrap(
    labels: npt.NDArray[np.int64],
    probs: npt.NDArray[np.float64],
    spec: DetectionSpec,
    estimator: str,
    *,
    seed: int,
) -> tuple[float, float]:
    """A 95% interval of the noise rate over items resampled with replacement.

    It measures sampling uncertainty given the trained models, not the randomness of training.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    n, k = len(labels), probs.shape[1]
    present = np.bincount(labels, minlength=k) > 0
    rates = []
    rounds = min(BOOTSTRAP_ROUNDS, max(20, BOOTSTRAP_BUDGET // n))
    for _ in range(rounds):
        idx = rng.integers(0, n, size=n)
        if not np.array_equal(np.bincount(labels[idx], minlength=k) > 0, present):
            continue  # a class vanished from this resample; cleanlab needs every class
        rates.append(_count(labels[idx], probs[idx], spec, estimator) / n)
    if not rates:
        return (float("nan"), float("nan"))
    low, high = np.percentile(rates, [2.5, 97.5])
    return (float(low), float(high))
