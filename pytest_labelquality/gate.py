"""The gate decision: the flagged items against the spec's thresholds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pytest_labelquality.baseline import Change
from pytest_labelquality.errors import DataError
from pytest_labelquality.spec import GateSpec

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt


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
    """Whether a dataset passes, and every number the decision used."""

    items: int
    noise_count: int
    max_noise_rate: float
    classes: tuple[ClassNoise, ...]
    change_failures: tuple[str, ...] = ()

    @property
    def noise_rate(self) -> float:
        """Estimated share of wrong labels."""
        return self.noise_count / self.items

    @property
    def failing_classes(self) -> tuple[ClassNoise, ...]:
        """Classes above their own maximum."""
        return tuple(c for c in self.classes if not c.passed)

    @property
    def passed(self) -> bool:
        """At or under every threshold."""
        return (
            self.noise_rate <= self.max_noise_rate
            and not self.failing_classes
            and not self.change_failures
        )


def decide(
    labels: npt.NDArray[np.int64],
    flagged: npt.NDArray[np.int64],
    class_names: tuple[str, ...],
    gate: GateSpec,
    *,
    origin: str,
    change: Change | None = None,
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
    return Verdict(
        items=len(labels),
        noise_count=len(flagged),
        max_noise_rate=gate.max_noise_rate,
        classes=classes,
        change_failures=_change_failures(gate, change, len(flagged) / len(labels)),
    )


def _change_failures(gate: GateSpec, change: Change | None, noise_rate: float) -> tuple[str, ...]:
    if change is None:
        return ()
    failures = []
    rise = noise_rate - change.baseline_rate
    if gate.max_increase is not None and rise > gate.max_increase:
        failures.append(
            f"the estimate rose {rise:+.1%} over the baseline's {change.baseline_rate:.1%},"
            f" more than max_increase {gate.max_increase:.1%}"
        )
    suspects = change.changed_suspects
    if gate.max_new_suspects is not None and len(suspects) > gate.max_new_suspects:
        failures.append(
            f"{len(suspects)} of the {len(change.changed)} items this change added or relabelled"
            f" are suspect, more than max_new_suspects {gate.max_new_suspects}"
        )
    share = len(suspects) / len(change.changed) if change.changed else 0.0
    if gate.max_new_suspect_share is not None and share > gate.max_new_suspect_share:
        failures.append(
            f"{share:.1%} ({len(suspects)} of {len(change.changed)}) of the items this change"
            f" added or relabelled are suspect, more than max_new_suspect_share"
            f" {gate.max_new_suspect_share:.1%}"
        )
    return tuple(failures)
