"""Detection with real cleanlab on real out-of-fold probabilities (digits, logistic regression),
and the temperature scaling before the count."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import pytest
from cleanlab.count import num_label_issues
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from pytest_labelquality.calibration import calibrated, fit_temperature
from pytest_labelquality.detection import (
    Detection,
    count_method,
    detect,
    quality_scores,
    resolved,
)
from pytest_labelquality.gate import decide
from pytest_labelquality.spec import (
    Calibration,
    CountMethod,
    DetectionSpec,
    FilterBy,
    GateSpec,
    RankedBy,
)


@lru_cache
def flipped_digits(rate: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, Any]:
    x, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(1)
    chosen = np.sort(rng.choice(len(y), size=round(rate * len(y)), replace=False))
    labels = y.copy()
    labels[chosen] = (labels[chosen] + rng.integers(1, 10, size=len(chosen))) % 10
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.05, max_iter=2000))
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    probs = cross_val_predict(model, x, labels, cv=folds, method="predict_proba")
    return labels, probs, chosen, y


@pytest.mark.parametrize("rate", [0.0, 0.05, 0.10, 0.20])
def test_digits_estimate_precision_and_recall(rate: float) -> None:
    """The issue's floor: estimate within 2 points; precision and recall >= 0.8 from 5%."""
    labels, probs, chosen, _ = flipped_digits(rate)
    spec = DetectionSpec(count=CountMethod.OFF_DIAGONAL_CALIBRATED)
    found = detect(labels, probs, spec, seed=0)
    estimate = found.noise_count / len(labels)
    assert abs(estimate - rate) <= 0.02
    low, high = found.noise_rate_interval
    assert low <= estimate <= high
    if rate:
        hits = len(set(found.flagged.tolist()) & set(chosen.tolist()))
        assert hits / found.noise_count >= 0.8
        assert hits / len(chosen) >= 0.8


def test_flagged_items_are_the_lowest_scores_and_the_gated_count() -> None:
    labels, probs, _, _ = flipped_digits(0.10)
    found = detect(labels, probs, DetectionSpec(), seed=0)
    scores = found.scores
    assert np.all(np.diff(scores[found.flagged]) >= 0), "most suspect first"
    assert scores[found.flagged].max() <= np.delete(scores, found.flagged).min()
    verdict = decide(labels, found.flagged, tuple("0123456789"), GateSpec(0.05), origin="x")
    assert verdict.noise_count == len(found.flagged)
    assert sum(c.flagged for c in verdict.classes) == len(found.flagged)


def test_a_cleanlab_filter_gates_on_the_items_it_flags() -> None:
    labels, probs, _, _ = flipped_digits(0.10)
    spec = DetectionSpec(filter_by=FilterBy.PRUNE_BY_NOISE_RATE)
    found = detect(labels, probs, spec, seed=0)
    from cleanlab.filter import find_label_issues

    mask = find_label_issues(labels, probs, filter_by="prune_by_noise_rate", n_jobs=1)
    assert sorted(found.flagged.tolist()) == np.flatnonzero(mask).tolist()
    assert found.method["count"] == "len(find_label_issues)"
    assert np.all(np.diff(found.scores[found.flagged]) >= 0), "most suspect first"


def test_given_vs_rival_is_the_given_share_against_the_strongest_other_class() -> None:
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    labels = np.array([0, 0, 0, 1])
    scores = quality_scores(labels, probs, RankedBy.GIVEN_VS_RIVAL)
    np.testing.assert_allclose(scores, [0.7 / 0.9, 0.1 / 0.7, 0.0, 0.5])


def test_given_vs_rival_ranks_random_flips_and_look_alike_flips_first() -> None:
    """A diffuse item whose given label is unlikely (a random flip) is more suspect than a
    correct item with a strong rival, as by self_confidence; of two confusions, the one with
    the more confident rival (a look-alike flip) is more suspect, as by normalized_margin."""
    rest = 0.75 / 8
    diffuse = [0.05, 0.2, *[rest] * 8]
    strong_rival = [0.15, 0.5, *[0.35 / 8] * 8]
    pair = [0.4, 0.6, *[0.0] * 8]
    spread = [0.3, 0.35, *[0.35 / 8] * 8]
    probs = np.array([diffuse, strong_rival, pair, spread])
    labels = np.zeros(4, dtype=np.int64)

    def more_suspect(method: RankedBy) -> tuple[bool, bool]:
        s = quality_scores(labels, probs, method)
        return bool(s[0] < s[1]), bool(s[2] < s[3])

    assert more_suspect(RankedBy.GIVEN_VS_RIVAL) == (True, True)
    assert more_suspect(RankedBy.SELF_CONFIDENCE) == (True, False)
    assert more_suspect(RankedBy.NORMALIZED_MARGIN) == (False, True)


def test_auto_count_calibrates_below_four_classes() -> None:
    assert count_method(DetectionSpec(), 2) == "off_diagonal_calibrated"
    assert count_method(DetectionSpec(), 3) == "off_diagonal_calibrated"
    assert count_method(DetectionSpec(), 4) == "off_diagonal"
    explicit = DetectionSpec(count=CountMethod.OFF_DIAGONAL)
    assert count_method(explicit, 2) == "off_diagonal"


def test_two_classes_count_with_calibration_matches_cleanlab() -> None:
    from cleanlab.count import num_label_issues

    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, 600)
    probs = np.clip(np.eye(2)[truth] * 0.8 + rng.uniform(0, 0.2, (600, 2)), 0, 1)
    probs /= probs.sum(axis=1, keepdims=True)
    labels = truth.copy()
    labels[:60] = 1 - labels[:60]
    found = detect(labels, probs, DetectionSpec(), seed=0)
    expected = num_label_issues(labels, probs, estimation_method="off_diagonal_calibrated")
    assert found.noise_count == expected
    assert "temperature" not in found.method
    assert found.method["count"] == "off_diagonal_calibrated"


def test_detection_survives_the_cache_round_trip() -> None:
    labels, probs, _, _ = flipped_digits(0.05)
    found = detect(labels, probs, DetectionSpec(), seed=0)
    back = Detection.from_arrays(found.to_arrays())
    np.testing.assert_array_equal(back.flagged, found.flagged)
    np.testing.assert_array_equal(back.scores, found.scores)
    assert back.method == found.method
    assert back.noise_rate_interval == found.noise_rate_interval
    assert back.estimates == found.estimates
    assert back.canary == found.canary


def test_per_class_maxima() -> None:
    labels = np.array([0] * 10 + [1] * 10)
    flagged = np.array([10, 11, 12, 0])
    verdict = decide(labels, flagged, ("cat", "dog"), GateSpec(0.5, {"dog": 0.2}), origin="spec:3")
    assert verdict.noise_rate == 0.2
    assert [c.name for c in verdict.failing_classes] == ["dog"]
    assert not verdict.passed
    assert decide(labels, flagged, ("cat", "dog"), GateSpec(0.5, {"dog": 0.3}), origin="s").passed


def test_both_estimators_bracket_the_gated_count() -> None:
    """Both of cleanlab's estimators are reported; the gated one is one of them."""
    labels, probs, _, _ = flipped_digits(0.10)
    found = detect(labels, probs, DetectionSpec(count=CountMethod.OFF_DIAGONAL), seed=0)
    assert set(found.estimates) == {"off_diagonal", "off_diagonal_calibrated"}
    assert found.estimates["off_diagonal"] == found.noise_count
    calibrated = detect(
        labels, probs, DetectionSpec(count=CountMethod.OFF_DIAGONAL_CALIBRATED), seed=0
    )
    assert calibrated.estimates == found.estimates
    assert calibrated.noise_count == found.estimates["off_diagonal_calibrated"]


@pytest.mark.parametrize("rate", [0.0, 0.10])
def test_canary_flips_are_found_on_a_good_model(rate: float) -> None:
    """A good model (digits, 10 classes) finds nearly all canary flips and its count rises by
    about as many; the canary never flips an item that is already suspect."""
    labels, probs, _, _ = flipped_digits(rate)
    found = detect(labels, probs, DetectionSpec(count=CountMethod.OFF_DIAGONAL_CALIBRATED), seed=0)
    canary = found.canary
    assert canary["injected"] == round(0.05 * len(labels))
    assert canary["recovered"] / canary["injected"] >= 0.85
    assert canary["precision"] >= 0.85
    assert canary["count_before"] == found.noise_count
    assert abs(canary["count_rise"] - canary["injected"]) <= 0.25 * canary["injected"]


def test_class_conditional_flips_lie_within_the_band() -> None:
    """Realistic noise: 10% of digits flipped between look-alikes (1/7, 3/8, 4/9) only. The
    plain estimator under-counts it; the band between the two estimators holds the true count,
    and the calibrated count finds most flips."""
    x, y = load_digits(return_X_y=True)
    into = np.arange(10)
    for a, b in ((1, 7), (3, 8), (4, 9)):
        into[a], into[b] = b, a
    rng = np.random.default_rng(1)
    chosen = np.sort(rng.choice(np.flatnonzero(into[y] != y), size=180, replace=False))
    labels = y.copy()
    labels[chosen] = into[y[chosen]]
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.05, max_iter=2000))
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    probs = cross_val_predict(model, x, labels, cv=folds, method="predict_proba")
    found = detect(labels, probs, DetectionSpec(count=CountMethod.OFF_DIAGONAL_CALIBRATED), seed=0)
    low, high = sorted(found.estimates.values())
    assert low < 0.9 * len(chosen) <= len(chosen) <= high
    assert len(set(found.flagged.tolist()) & set(chosen.tolist())) / len(chosen) >= 0.8


def at_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """``probs`` softened (above 1) or sharpened (below 1) as a model that is too soft or too
    sure would give them."""
    scaled = np.clip(probs, 1e-12, 1.0) ** (1.0 / temperature)
    out: np.ndarray = scaled / scaled.sum(axis=1, keepdims=True)
    return out


def test_labels_drawn_from_the_probabilities_need_no_temperature() -> None:
    _, probs, _, _ = flipped_digits(0.0)
    rng = np.random.default_rng(3)
    drawn = np.array([rng.choice(10, p=p / p.sum()) for p in probs])
    assert fit_temperature(drawn, probs) == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize("distortion", [0.4, 3.0])
def test_a_distorted_temperature_is_undone(distortion: float) -> None:
    labels, probs, _, _ = flipped_digits(0.05)
    fitted = fit_temperature(labels, probs)
    assert fit_temperature(labels, at_temperature(probs, distortion)) == pytest.approx(
        fitted / distortion, rel=0.01
    )


def test_soft_probabilities_count_again_what_they_rank() -> None:
    """A model three times too soft ranks the flips as before but cleanlab counts a quarter
    fewer (68 against 49 of 90 flips): calibrated, the count is the sharp model's again."""
    labels, probs, chosen, _ = flipped_digits(0.05)
    soft = at_temperature(probs, 3.0)
    ranked = quality_scores(labels, soft, RankedBy.GIVEN_VS_RIVAL)
    np.testing.assert_array_equal(
        np.argsort(ranked, kind="stable"),
        np.argsort(quality_scores(labels, probs, RankedBy.GIVEN_VS_RIVAL), kind="stable"),
    )
    top = set(np.argsort(ranked)[: len(chosen)].tolist())
    assert len(top & set(chosen.tolist())) >= 0.8 * len(chosen)
    sharp = num_label_issues(labels, probs)
    raw = detect(labels, soft, DetectionSpec(calibrate=Calibration.NONE), seed=0)
    assert raw.noise_count == num_label_issues(labels, soft) < 0.8 * sharp
    fixed = detect(labels, soft, DetectionSpec(calibrate=Calibration.TEMPERATURE), seed=0)
    assert abs(fixed.noise_count - num_label_issues(labels, calibrated(labels, probs)[0])) <= 2
    assert fixed.noise_count >= sharp > raw.noise_count + 15
    assert fixed.method["temperature"] == pytest.approx(fit_temperature(labels, soft), abs=1e-4)
    low, high = fixed.noise_rate_interval
    assert low <= fixed.noise_count / len(labels) <= high


def test_calibration_keeps_the_most_probable_class_and_sums_to_one() -> None:
    labels, probs, _, _ = flipped_digits(0.10)
    scaled, temperature = calibrated(labels, probs)
    assert temperature != 1.0
    np.testing.assert_array_equal(scaled.argmax(axis=1), probs.argmax(axis=1))
    np.testing.assert_allclose(scaled.sum(axis=1), 1.0)


def test_exact_zeros_and_certain_items_are_fitted() -> None:
    """Models that give exact zeros (trees, forests) and all-certain predictions fit a finite
    temperature inside its bounds."""
    labels = np.array([0, 1, 2, 0, 1, 2, 0])
    probs = np.eye(3)[[0, 1, 2, 0, 1, 2, 1]]
    temperature = fit_temperature(labels, probs)
    assert 0.1 <= temperature <= 10.0
    scaled, _ = calibrated(labels, probs)
    assert np.isfinite(scaled).all()


def test_auto_calibrates_the_models_trained_with_label_smoothing() -> None:
    from pytest_labelquality.model_registry import entries

    soft = {e.name for e in entries() if e.soft_probabilities}
    assert soft == {"small_cnn", "cnn"}
    for name in ("small_cnn", "logistic_regression"):
        chosen = resolved(DetectionSpec(), soft_probabilities=name in soft).calibrate
        assert chosen is (Calibration.TEMPERATURE if name in soft else Calibration.NONE)
    for explicit in (Calibration.TEMPERATURE, Calibration.NONE):
        spec = DetectionSpec(calibrate=explicit)
        assert resolved(spec, soft_probabilities=True) == spec
        assert resolved(spec, soft_probabilities=False) == spec
