"""One dataset in memory: features, labels and stable item ids, whatever format it came from.

Every source format builds a :class:`Dataset` with these helpers; nothing here reads files."""

from __future__ import annotations

import dataclasses
import enum
import hashlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pytest_labelquality.errors import DataError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt


#: How much of a text names it beside its file and line.
LOCATION_TEXT_CHARS = 40


class DataKind(enum.StrEnum):
    """What the features are, which decides the default model and how the report shows items."""

    IMAGE = "image"
    TABULAR = "tabular"
    TEXT = "text"


@dataclass(frozen=True, eq=False)
class Dataset:
    """Features, labels and stable ids of one dataset, after any injected flips.

    Texts are an object array of ``str``. ``files`` are items' original files (image folders:
    the report's thumbnails), ``content`` their content hashes where the features are not the
    content (a decoded image's file bytes), ``categories`` each feature column's category names
    (empty for numeric columns; the features hold the category's index), ``stats`` what loading
    counted (files decoded, ignored, skipped)."""

    features: npt.NDArray[np.generic]
    labels: npt.NDArray[np.int64]
    ids: npt.NDArray[np.str_]
    class_names: tuple[str, ...]
    kind: DataKind
    origin: str
    flipped: npt.NDArray[np.int64]
    feature_names: tuple[str, ...] = ()
    image_shape: tuple[int, ...] | None = None
    files: tuple[str, ...] = ()
    content: npt.NDArray[np.str_] | None = None
    categories: tuple[tuple[str, ...], ...] = ()
    stats: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: Where each item sits in its file (``news.csv:1234``), for items whose id is a content
    #: hash (a table without an id column): what a person searches for.
    locations: tuple[str, ...] = ()
    #: Each item's split (``train``, ``test``...) where the source names one, else empty.
    splits: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.labels)

    def location(self, i: int) -> str | None:
        """``news.csv:1234 "Wall St. Bears Claw Back..."`` for an item whose id is a hash."""
        if not self.locations:
            return None
        text = " ".join(str(self.features[i]).split())
        cut = text[:LOCATION_TEXT_CHARS] + ("..." if len(text) > LOCATION_TEXT_CHARS else "")
        return f'{self.locations[i]} "{cut}"'

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one item's features."""
        return tuple(int(d) for d in self.features.shape[1:])


def encode_labels(
    raw: npt.NDArray[np.generic], classes: tuple[str, ...] | None, origin: str
) -> tuple[npt.NDArray[np.int64], tuple[str, ...]]:
    """Map labels (class names, or integer indices into ``classes``) to class indices."""
    import numpy as np

    if classes is not None and np.issubdtype(raw.dtype, np.integer):
        ints = raw.astype(np.int64)
        bad = np.unique(ints[(ints < 0) | (ints >= len(classes))])
        if len(bad):
            raise DataError(
                f"{origin}: labels {', '.join(map(str, bad[:5].tolist()))} are outside the"
                f" {len(classes)} declared classes (valid: 0..{len(classes) - 1})"
            )
        return ints, classes
    if raw.dtype.kind == "f" and np.isnan(raw).any():
        rows = np.flatnonzero(np.isnan(raw))
        raise DataError(
            f"{origin}: {len(rows)} item(s) have no label (NaN), e.g. row"
            f" {', '.join(map(str, rows[:5].tolist()))}"
        )
    as_text = raw.astype(str)
    names = classes if classes is not None else tuple(_sorted_names(np.unique(as_text)))
    index = {name: i for i, name in enumerate(names)}
    unknown = sorted(set(np.unique(as_text).tolist()) - index.keys())
    if unknown:
        raise DataError(
            f"{origin}: labels {', '.join(map(repr, unknown[:5]))} are not among the declared"
            f" classes ({', '.join(names)})"
        )
    if len(names) < 2:
        raise DataError(f"{origin}: found {len(names)} class; label quality needs at least 2")
    return np.array([index[t] for t in as_text.tolist()], dtype=np.int64), names


def _sorted_names(values: npt.NDArray[np.str_]) -> list[str]:
    """Class names sorted numerically when they are all integers, else alphabetically."""
    names = [str(v) for v in values]
    if all(n.lstrip("-").isdigit() for n in names):
        return sorted(names, key=int)
    return sorted(names)


def content_ids(features: npt.NDArray[np.generic]) -> npt.NDArray[np.str_]:
    """Ids from each row's content (stable under reordering); repeats get ``~2``, ``~3``..."""
    import numpy as np

    seen: Counter[str] = Counter()
    ids: list[str] = []
    for row in item_bytes(features):
        digest = hashlib.blake2b(row, digest_size=8).hexdigest()
        seen[digest] += 1
        ids.append(digest if seen[digest] == 1 else f"{digest}~{seen[digest]}")
    return np.array(ids, dtype=np.str_)


def item_bytes(features: npt.NDArray[Any], rows: Iterable[int] | None = None) -> Iterable[bytes]:
    """Each item's content as bytes: a text's UTF-8, an array row's raw values."""
    import numpy as np

    chosen = range(len(features)) if rows is None else rows
    if features.dtype == object:
        return (str(features[i]).encode() for i in chosen)
    flat = features.reshape(len(features), -1)
    return (np.ascontiguousarray(flat[i]).tobytes() for i in chosen)
