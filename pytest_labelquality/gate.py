"""The gate decision: the flagged items against the spec's thresholds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

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
        return self.noise_rate <= self.max_noise_rate and not self.failing_classes


def decide(
    labels: npt.NDArray[np.int64],
    flagged: npt.NDArray[np.int64],
    class_names: tuple[str, ...],
    gate: GateSpec,
    *,
    origin: str,
) -> Verdict:
    """Apply the gate; per-class maxima must name known classes."""
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
    )
