"""The gate decision: the flagged items against the spec's thresholds, as a list of failed rules.

Every output (failure message, terminal, JSON, JUnit, HTML, Markdown) renders the same
:class:`FailedRule` list computed here, so they can never disagree about why a dataset failed.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pytest_labelquality.baseline import Change
from pytest_labelquality.errors import DataError
from pytest_labelquality.spec import GateSpec

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt


class Rule(enum.StrEnum):
    """The gate's rules, named as their spec keys."""

    MAX_NOISE_RATE = "max_noise_rate"
    MAX_CLASS_NOISE_RATE = "max_class_noise_rate"
    MAX_INCREASE = "max_increase"
    MAX_NEW_SUSPECTS = "max_new_suspects"
    MAX_NEW_SUSPECT_SHARE = "max_new_suspect_share"
    MAX_CONFLICTING_DUPLICATES = "max_conflicting_duplicates"
    MAX_NEAR_DUPLICATE_SHARE = "max_near_duplicate_share"
    MAX_OUTLIER_SHARE = "max_outlier_share"
    MAX_LEAKS = "max_leaks"
    MAX_NEW_DATA_ISSUES = "max_new_data_issues"

    @property
    def about_change(self) -> bool:
        """Whether the rule judges what a change did against the baseline."""
        return self in CHANGE_RULES

    @property
    def counts(self) -> bool:
        """Whether the rule's value and limit are counts (else shares)."""
        return self in (
            Rule.MAX_NEW_SUSPECTS,
            Rule.MAX_CONFLICTING_DUPLICATES,
            Rule.MAX_LEAKS,
            Rule.MAX_NEW_DATA_ISSUES,
        )

    @property
    def about_labels(self) -> bool:
        """Whether the rule judges wrong labels (the others judge duplicates, leaks, outliers)."""
        return self not in ISSUE_RULES


@dataclass(frozen=True)
class IssueCounts:
    """What the rules on duplicates, leaks and outliers read, with a few examples each."""

    items: int
    conflicting_groups: int
    redundant: int
    outliers: int
    leaks: int
    examples: dict[Rule, str]
    #: Against a baseline: the groups, pairs and outliers that hold an item the change added or
    #: relabelled, with their words (None: no baseline).
    new: int | None = None
    new_words: str = ""


@dataclass(frozen=True)
class FailedRule:
    """One rule the dataset broke: the observed value above its limit, and why in words."""

    rule: Rule
    value: float
    limit: float
    message: str
    class_name: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON form: ``{"rule", "value", "limit", "class", "message"}``."""
        return {
            "rule": self.rule.value,
            "value": self.value,
            "limit": self.limit,
            "class": self.class_name,
            "message": self.message,
        }


@dataclass(frozen=True)
class ClassNoise:
    """One class's share of flagged items among the items given that label."""

    name: str
    items: int
    flagged: int
    max_rate: float | None

    @property
    def rate(self) -> float:
        """Flagged share of this class."""
        return self.flagged / self.items if self.items else 0.0

    @property
    def passed(self) -> bool:
        """Whether the class is at or under its maximum (if it has one)."""
        return self.max_rate is None or self.rate <= self.max_rate


@dataclass(frozen=True)
class Verdict:
    """Whether a dataset passes, every number the decision used, and every rule it broke."""

    items: int
    noise_count: int
    max_noise_rate: float
    classes: tuple[ClassNoise, ...]
    failed_rules: tuple[FailedRule, ...] = ()

    @property
    def noise_rate(self) -> float:
        """Estimated share of wrong labels."""
        return self.noise_count / self.items

    @property
    def failing_classes(self) -> tuple[ClassNoise, ...]:
        """Classes above their own maximum."""
        return tuple(c for c in self.classes if not c.passed)

    @property
    def change_failures(self) -> tuple[str, ...]:
        """The messages of the failed rules about the change (the JSON's older field)."""
        return tuple(f.message for f in self.failed_rules if f.rule.about_change)

    @property
    def passed(self) -> bool:
        """At or under every threshold."""
        return not self.failed_rules


def decide(
    labels: npt.NDArray[np.int64],
    flagged: npt.NDArray[np.int64],
    class_names: tuple[str, ...],
    gate: GateSpec,
    *,
    origin: str,
    change: Change | None = None,
    issues: IssueCounts | None = None,
) -> Verdict:
    """Apply the gate to the items that count (flagged and not reviewed as correct).

    Per-class maxima must name known classes. The rules on what a change did apply only when
    the spec has a baseline entry for the dataset."""
    import numpy as np

    unknown = sorted(set(gate.max_class_noise_rate) - set(class_names))
    if unknown:
        raise DataError(
            f"{origin}: gate.max_class_noise_rate names unknown class {unknown[0]!r};"
            f" classes: {', '.join(class_names)}"
        )
    k = len(class_names)
    items = np.bincount(labels, minlength=k)
    hits = np.bincount(labels[flagged], minlength=k)
    classes = tuple(
        ClassNoise(
            name=name,
            items=int(items[i]),
            flagged=int(hits[i]),
            max_rate=gate.max_class_noise_rate.get(name),
        )
        for i, name in enumerate(class_names)
    )
    rate = len(flagged) / len(labels)
    failed = []
    if rate > gate.max_noise_rate:
        failed.append(
            FailedRule(
                Rule.MAX_NOISE_RATE,
                rate,
                gate.max_noise_rate,
                f"estimated label noise {rate:.1%} ({len(flagged)} of {len(labels)}) exceeds"
                f" max_noise_rate {gate.max_noise_rate:.1%}",
            )
        )
    for c in classes:
        if c.max_rate is not None and not c.passed:
            failed.append(
                FailedRule(
                    Rule.MAX_CLASS_NOISE_RATE,
                    c.rate,
                    c.max_rate,
                    f"class {c.name!r}: {c.rate:.1%} ({c.flagged} of {c.items}) exceeds its"
                    f" max_class_noise_rate {c.max_rate:.1%}",
                    class_name=c.name,
                )
            )
    return Verdict(
        items=len(labels),
        noise_count=len(flagged),
        max_noise_rate=gate.max_noise_rate,
        classes=classes,
        failed_rules=(
            *failed,
            *_change_failures(gate, change, rate),
            *(issue_failures(gate, issues) if issues else ()),
        ),
    )


def issue_failures(gate: GateSpec, issues: IssueCounts) -> list[FailedRule]:
    """The failed rules on duplicates, leaks and outliers, each with a few examples."""
    n = issues.items
    checks: list[tuple[Rule, float | None, float, str]] = [
        (
            Rule.MAX_CONFLICTING_DUPLICATES,
            gate.max_conflicting_duplicates,
            issues.conflicting_groups,
            f"{issues.conflicting_groups} group(s) of identical items with different labels"
            f" exceed max_conflicting_duplicates {gate.max_conflicting_duplicates}",
        ),
        (
            Rule.MAX_NEAR_DUPLICATE_SHARE,
            gate.max_near_duplicate_share,
            issues.redundant / n,
            f"{issues.redundant / n:.1%} of the items ({issues.redundant} of {n}) repeat another"
            f" exactly or nearly, over max_near_duplicate_share"
            f" {gate.max_near_duplicate_share or 0:.1%}",
        ),
        (
            Rule.MAX_OUTLIER_SHARE,
            gate.max_outlier_share,
            issues.outliers / n,
            f"{issues.outliers / n:.1%} of the items ({issues.outliers} of {n}) are outliers,"
            f" over max_outlier_share {gate.max_outlier_share or 0:.1%}",
        ),
        (
            Rule.MAX_LEAKS,
            gate.max_leaks,
            issues.leaks,
            f"{issues.leaks} pair(s) of items in different splits are duplicates, over"
            f" max_leaks {gate.max_leaks}",
        ),
    ]
    if issues.new is not None:
        checks.append(
            (
                Rule.MAX_NEW_DATA_ISSUES,
                gate.max_new_data_issues,
                issues.new,
                f"this change brought in {issues.new} duplicate(s), leak(s) and outlier(s)"
                f" ({issues.new_words}), over max_new_data_issues {gate.max_new_data_issues}",
            )
        )
    failed = []
    for rule, limit, value, message in checks:
        if limit is not None and value > limit:
            example = issues.examples.get(rule)
            text = f"{message} ({example})" if example else message
            failed.append(FailedRule(rule, float(value), float(limit), text))
    return failed


ISSUE_RULES = frozenset(
    {
        Rule.MAX_CONFLICTING_DUPLICATES,
        Rule.MAX_NEAR_DUPLICATE_SHARE,
        Rule.MAX_OUTLIER_SHARE,
        Rule.MAX_LEAKS,
        Rule.MAX_NEW_DATA_ISSUES,
    }
)
#: The rules that judge what a change did against the baseline.
CHANGE_RULES = frozenset(
    {
        Rule.MAX_INCREASE,
        Rule.MAX_NEW_SUSPECTS,
        Rule.MAX_NEW_SUSPECT_SHARE,
        Rule.MAX_NEW_DATA_ISSUES,
    }
)


def _change_failures(gate: GateSpec, change: Change | None, noise_rate: float) -> list[FailedRule]:
    if change is None:
        return []
    failures = []
    rise = noise_rate - change.baseline_rate
    if gate.max_increase is not None and rise > gate.max_increase:
        failures.append(
            FailedRule(
                Rule.MAX_INCREASE,
                rise,
                gate.max_increase,
                f"the estimate rose {rise:+.1%} over the baseline's {change.baseline_rate:.1%},"
                f" more than max_increase {gate.max_increase:.1%}",
            )
        )
    new, changed = len(change.new_suspects), len(change.changed)
    if gate.max_new_suspects is not None and new > gate.max_new_suspects:
        failures.append(
            FailedRule(
                Rule.MAX_NEW_SUSPECTS,
                new,
                gate.max_new_suspects,
                f"{new} new suspects (of the {changed} items this change added or relabelled),"
                f" more than max_new_suspects {gate.max_new_suspects}",
            )
        )
    share = new / changed if changed else 0.0
    if gate.max_new_suspect_share is not None and share > gate.max_new_suspect_share:
        failures.append(
            FailedRule(
                Rule.MAX_NEW_SUSPECT_SHARE,
                share,
                gate.max_new_suspect_share,
                f"{share:.1%} ({new} of {changed}) of the items this change added or relabelled"
                f" are new suspects, more than max_new_suspect_share"
                f" {gate.max_new_suspect_share:.1%}",
            )
        )
    return failures
