"""``format: text``: one text per row of a CSV, JSONL or Parquet table, with its label."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from pytest_labelquality.errors import DataError
from pytest_labelquality.formats import SourceFormat, check_path
from pytest_labelquality.formats.readers import CsvOptions, label_texts, read_table
from pytest_labelquality.source_specs import Flips, field_doc

if TYPE_CHECKING:
    from pytest_labelquality.cache import CacheRoot
    from pytest_labelquality.dataset import Dataset
    from pytest_labelquality.spec import DatasetSpec


@dataclass(frozen=True, kw_only=True)
class TextSource(CsvOptions):
    """Texts and labels from a CSV, JSONL or Parquet table (format from the extension)."""

    FORMAT: ClassVar[str] = "text"
    path: str = field(metadata=field_doc("The table, relative to the spec."))
    text: tuple[str, ...] = field(
        metadata=field_doc(
            "The text column, or several joined by a newline.", minItems=1, oneOrMore=1
        )
    )
    label: str = field(metadata=field_doc("The label column."))
    id: str | None = field(
        default=None, metadata=field_doc("The id column (default: a hash of the text).")
    )
    split: str | None = field(
        default=None,
        metadata=field_doc("The column holding each row's split (train, test...)."),
    )
    classes: tuple[str, ...] | None = field(
        default=None,
        metadata=field_doc("Class names (default: the labels found, sorted).", minItems=2),
    )
    flip: Flips | None = field(default=None, metadata=field_doc("Inject synthetic label flips."))


def load(spec: DatasetSpec, src: TextSource, cache_dir: CacheRoot | None) -> Dataset:
    """Read the texts; an empty or missing text or label fails with its file and line."""
    import numpy as np

    from pytest_labelquality.dataset import DataKind, Dataset, content_ids, encode_labels

    path = spec.resolve(src.path)
    wanted = list(dict.fromkeys([*src.text, src.label, *(c for c in (src.id, src.split) if c)]))
    table = read_table(path, wanted, src)
    texts: list[str] = []
    for row in range(len(table.rows)):
        parts = [table.columns[c][row] for c in src.text]
        for column, part in zip(src.text, parts, strict=True):
            if not isinstance(part, str | None):
                raise DataError(f"{table.where(row)}: column {column!r} is not text: {part!r}")
        joined = "\n".join(p.strip() for p in parts if p and p.strip())
        if not joined:
            raise DataError(f"{table.where(row)}: empty text in {', '.join(map(repr, src.text))}")
        texts.append(joined)
    if not texts:
        raise DataError(f"{path}: the table has no rows")
    features = np.array(texts, dtype=object)
    raw = np.array(label_texts(table, src.label), dtype=np.str_)
    labels, names = encode_labels(raw, src.classes, str(path))
    ids = (
        np.array([str(v) for v in table.columns[src.id]], dtype=np.str_)
        if src.id
        else content_ids(features)
    )
    return Dataset(
        features=features,
        labels=labels,
        ids=ids,
        class_names=names,
        kind=DataKind.TEXT,
        origin=str(path),
        flipped=np.empty(0, dtype=np.int64),
        locations=() if src.id else tuple(f"{src.path}:{line}" for line in table.rows),
        splits=tuple(label_texts(table, src.split)) if src.split else (),
    )


SOURCE = SourceFormat(TextSource, load, lambda spec, src: check_path(spec, src.path, "path"))
