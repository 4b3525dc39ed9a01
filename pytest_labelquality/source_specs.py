"""The spec types of where items come from: the built-in sources, injected flips, and the field
metadata every source format's spec type uses. Standard library only, so that source formats
can import it without importing the spec parser that finds them."""

from __future__ import annotations

import enum
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

#: numpy's seeds are unsigned 32-bit integers.
SEED_RANGE = {"minimum": 0, "maximum": 2**32 - 1}


def field_doc(text: str, **extra: Any) -> dict[str, Any]:
    """A spec field's metadata: its documentation and JSON Schema keywords."""
    return {"doc": text, **extra}


class SklearnDataset(enum.StrEnum):
    """scikit-learn's bundled datasets (no download)."""

    DIGITS = "digits"
    IRIS = "iris"
    WINE = "wine"
    BREAST_CANCER = "breast_cancer"


@dataclass(frozen=True)
class Flips:
    """Synthetic label flips for demos and calibration: each chosen item moves to another class,
    uniformly at random, or with ``pairs`` to its class's look-alike (class-conditional noise,
    the kind people make). The flipped items are recorded in the results."""

    rate: float = field(
        metadata=field_doc(
            "Share of items to flip: of all items, or with ``pairs`` of each named class's items.",
            minimum=0,
            exclusiveMaximum=1,
        )
    )
    seed: int = field(default=0, metadata=field_doc("Seed of the flips.", **SEED_RANGE))
    pairs: dict[str, str] = field(
        default_factory=dict,
        metadata=field_doc(
            "Class-conditional flips: ``rate`` of each named class's items move to the class it"
            " maps to (e.g. ``{dog: cat, frog: duck}``); other classes keep their labels."
        ),
    )


@dataclass(frozen=True)
class QuickDrawSource:
    """Per-class ``.npy`` files in Google's Quick, Draw! format: 2-D ``uint8``, one drawing per
    row; the class name is the file name."""

    FORMAT: ClassVar[str] = "quickdraw"
    dir: str = field(metadata=field_doc("Folder holding ``<class>.npy``, relative to the spec."))
    classes: tuple[str, ...] = field(metadata=field_doc("Class names (file stems).", minItems=2))
    limit: int | None = field(
        default=None, metadata=field_doc("Use the first N drawings of each class.", minimum=1)
    )
    shape: tuple[int, ...] = field(default=(28, 28), metadata=field_doc("Shape of one drawing."))
    flip: Flips | None = field(default=None, metadata=field_doc("Inject synthetic label flips."))


@dataclass(frozen=True)
class NpzSource:
    """A ``.npz`` file with a feature array, a label array and optionally an id array."""

    FORMAT: ClassVar[str] = "npz"
    path: str = field(metadata=field_doc("The ``.npz`` file, relative to the spec."))
    features: str = field(default="x", metadata=field_doc("Name of the feature array."))
    labels: str = field(default="y", metadata=field_doc("Name of the label array."))
    ids: str | None = field(default=None, metadata=field_doc("Name of an array of item ids."))
    classes: tuple[str, ...] | None = field(
        default=None, metadata=field_doc("Class names; integer labels index into them.", minItems=2)
    )
    shape: tuple[int, ...] | None = field(
        default=None, metadata=field_doc("Reshape each row to this image shape (images).")
    )
    flip: Flips | None = field(default=None, metadata=field_doc("Inject synthetic label flips."))


@dataclass(frozen=True)
class CsvSource:
    """A CSV file with a header row: feature columns, a label column, optionally an id column."""

    FORMAT: ClassVar[str] = "csv"
    path: str = field(metadata=field_doc("The CSV file, relative to the spec."))
    label: str = field(metadata=field_doc("Name of the label column."))
    id: str | None = field(default=None, metadata=field_doc("Name of the id column."))
    split: str | None = field(
        default=None,
        metadata=field_doc("Name of the column holding each row's split (train, test...)."),
    )
    features: tuple[str, ...] | None = field(
        default=None,
        metadata=field_doc("Feature columns (default: every other column).", minItems=1),
    )
    classes: tuple[str, ...] | None = field(
        default=None,
        metadata=field_doc("Class names (default: the labels found, sorted).", minItems=2),
    )
    flip: Flips | None = field(default=None, metadata=field_doc("Inject synthetic label flips."))


@dataclass(frozen=True)
class SklearnSource:
    """One of scikit-learn's bundled datasets, by name."""

    FORMAT: ClassVar[str] = "sklearn"
    name: SklearnDataset = field(metadata=field_doc("Which dataset."))
    flip: Flips | None = field(default=None, metadata=field_doc("Inject synthetic label flips."))


class SourceSpec(Protocol):
    """What every source's spec type has: its ``format`` and optional injected flips."""

    FORMAT: ClassVar[str]

    @property
    def flip(self) -> Flips | None: ...


Source = QuickDrawSource | NpzSource | CsvSource | SklearnSource
BUILTIN_SOURCES: tuple[type[Any], ...] = typing.get_args(Source)
