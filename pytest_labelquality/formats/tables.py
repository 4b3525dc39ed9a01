"""Feature tables: ``format: jsonl`` and ``format: parquet`` beside ``csv``, one item per row.

Numeric columns are features as they are; a column holding any text is categorical: its values
become the index of the category (sorted names; an empty value is a category of its own), and
the built-in models one-hot encode it (``hist_gradient_boosting`` uses its native categories).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pytest_labelquality.errors import DataError
from pytest_labelquality.formats import SourceFormat, check_path
from pytest_labelquality.formats.readers import Table, label_texts, read_table
from pytest_labelquality.source_specs import CsvSource

if TYPE_CHECKING:
    from pytest_labelquality.cache import CacheRoot
    from pytest_labelquality.dataset import Dataset
    from pytest_labelquality.spec import DatasetSpec


@dataclass(frozen=True)
class JsonlSource(CsvSource):
    """A JSON Lines file, one object per line: feature keys, a label key, optionally an id."""

    FORMAT: ClassVar[str] = "jsonl"


@dataclass(frozen=True)
class ParquetSource(JsonlSource):
    """A Parquet file: feature columns, a label column, optionally an id column."""

    FORMAT: ClassVar[str] = "parquet"


def _all_columns(path: Path) -> list[str]:
    """Every column name of a table, in file order."""
    import json

    from pytest_labelquality.formats.readers import TableKind, table_kind

    kind = table_kind(path)
    if kind is TableKind.PARQUET:
        from pytest_labelquality.formats import need

        return list(need("pyarrow.parquet", "parquet").read_schema(path).names)
    if kind is TableKind.JSONL:
        names: dict[str, None] = {}
        with path.open(encoding="utf-8-sig") as handle:
            for line in handle:
                if line.strip():
                    try:
                        names.update(dict.fromkeys(json.loads(line)))
                    except (ValueError, TypeError):  # JSON errors, too many digits
                        break  # read_table reports the line
        return list(names)
    import csv

    with path.open(newline="", encoding="utf-8-sig") as handle:
        try:
            return next(csv.reader(handle), [])
        except csv.Error:
            return []  # read_table reports the line


def load_features(spec: DatasetSpec, src: CsvSource, cache_dir: CacheRoot | None) -> Dataset:
    """A feature table: numeric and categorical columns, a label and optional id per row."""
    import numpy as np

    from pytest_labelquality.dataset import DataKind, Dataset, content_ids, encode_labels

    path = spec.resolve(src.path)
    own = (src.label, src.id, src.split)
    columns = src.features or tuple(c for c in _all_columns(path) if c not in own)
    table = read_table(path, [*columns, *(c for c in own if c)])
    if not columns:
        raise DataError(
            f"{path}: no feature columns besides the label {src.label!r}; a model needs at least"
            " one column to learn from"
        )
    n = len(table.rows)
    features = np.empty((n, len(columns)), dtype=np.float64)
    categories: list[tuple[str, ...]] = []
    for j, name in enumerate(columns):
        features[:, j], names = _encoded(table, name)
        categories.append(names)
    raw = np.array(label_texts(table, src.label), dtype=np.str_)
    labels, names = encode_labels(raw, src.classes, str(path))
    return Dataset(
        features=features,
        labels=labels,
        ids=np.array([str(v) for v in table.columns[src.id]], dtype=np.str_)
        if src.id
        else content_ids(features),
        class_names=names,
        kind=DataKind.TABULAR,
        origin=str(path),
        flipped=np.empty(0, dtype=np.int64),
        feature_names=tuple(columns),
        categories=tuple(categories) if any(categories) else (),
        splits=tuple(label_texts(table, src.split)) if src.split else (),
    )


def _number(value: Any) -> float | None:
    """A cell as a number (empty or null: NaN), or None when it is text."""
    if value is None or value == "":
        return math.nan
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        try:
            return float(value)
        except OverflowError:  # a JSON integer past 1.8e308
            digits = len(str(abs(value)))
            raise DataError(f"a number of {digits} digits is too large for a float") from None
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    raise DataError(f"unsupported value {value!r}")


def _encoded(table: Table, name: str) -> tuple[list[float], tuple[str, ...]]:
    """A column's values: numbers as they are, or category indices and the category names."""
    values = table.columns[name]
    numbers = []
    for row, value in enumerate(values):
        try:
            numbers.append(_number(value))
        except DataError as exc:
            raise DataError(f"{table.where(row)}: column {name!r}: {exc}") from None
    if all(v is not None for v in numbers):
        return [v for v in numbers if v is not None], ()
    text = ["" if v is None else str(v) for v in values]
    names = tuple(sorted(set(text)))
    index = {c: float(i) for i, c in enumerate(names)}
    return [index[t] for t in text], names


def _check(spec: DatasetSpec, src: CsvSource) -> tuple[str, str] | None:
    return check_path(spec, src.path, "path")


SOURCE = SourceFormat(JsonlSource, load_features, _check)
PARQUET = SourceFormat(ParquetSource, load_features, _check, extras=("parquet",))
