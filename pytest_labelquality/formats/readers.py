"""Reading tables (CSV, JSONL, Parquet) into named columns, with the file and row of any problem.

Shared by the text, feature-table and image-folder formats.
"""

from __future__ import annotations

import contextlib
import csv
import enum
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_labelquality.errors import DataError
from pytest_labelquality.source_specs import field_doc


class TableKind(enum.StrEnum):
    """A table's file format, from its extension."""

    CSV = "csv"
    JSONL = "jsonl"
    PARQUET = "parquet"


EXTENSIONS = {
    ".csv": TableKind.CSV,
    ".tsv": TableKind.CSV,
    ".txt": TableKind.CSV,
    ".jsonl": TableKind.JSONL,
    ".ndjson": TableKind.JSONL,
    ".parquet": TableKind.PARQUET,
    ".pq": TableKind.PARQUET,
}


def text_encoding_problem(name: str) -> str:
    """Why ``name`` cannot decode a text file ('' when it can): an unknown codec, or one that is
    not a text encoding (base64, zlib)."""
    import codecs

    try:
        info = codecs.lookup(name)
    except LookupError:
        return "is not an encoding Python knows"
    if not getattr(info, "_is_text_encoding", True):
        return f"is a {info.name} codec, not a text encoding"
    return ""


@dataclass(frozen=True, kw_only=True)
class CsvOptions:
    """How a CSV table is read (ignored for JSONL and Parquet)."""

    header: bool = field(default=True, metadata=field_doc("CSV: the first row names the columns."))
    columns: tuple[str, ...] | None = field(
        default=None,
        metadata=field_doc(
            "CSV without a header: the column names (default: 1, 2, 3...).", minItems=1
        ),
    )
    delimiter: str | None = field(
        default=None,
        metadata=field_doc(
            "CSV: the field delimiter, one character (default: tab for .tsv, else ,).",
            minLength=1,
            maxLength=1,
            hint="""e.g. ',', ';' or a tab ("\\t", in double quotes)""",
        ),
    )
    quotechar: str = field(
        default='"',
        metadata=field_doc(
            "CSV: the quote character, one character.",
            minLength=1,
            maxLength=1,
            hint="""the character around fields that hold the delimiter, e.g. '"'""",
        ),
    )
    encoding: str = field(
        default="utf-8",
        metadata=field_doc(
            "CSV: the text encoding, a name Python's codecs know (UTF-8 with a BOM is read right).",
            check=text_encoding_problem,
            hint="use a codec name such as utf-8, utf-16, latin-1 or cp1252",
        ),
    )


@dataclass(frozen=True)
class Table:
    """Columns by name; ``rows[i]`` is where row ``i`` sits in the file (``path:line``...)."""

    path: Path
    columns: dict[str, list[Any]]
    rows: list[str]

    def where(self, row: int) -> str:
        """The file and line (CSV, JSONL) or row (Parquet) of a row, for an error message."""
        return f"{self.path}:{self.rows[row]}"


def label_texts(table: Table, column: str) -> list[str]:
    """A label column as text, compared as the values it holds: numbers by value (``2``,
    ``2.0`` and ``"2.0"`` are one class, ``2``), other values as written. A missing label (empty,
    null, NaN) is an error naming its rows."""
    values = table.columns[column]
    missing = [i for i, v in enumerate(values) if _missing_value(v)]
    if missing:
        shown = ", ".join(table.rows[i] for i in missing[:5])
        raise DataError(
            f"{table.where(missing[0])}: no label in column {column!r}; {len(missing)} of"
            f" {len(values)} rows have none (at {shown}); label every row or remove it"
        )
    nested = [i for i, v in enumerate(values) if isinstance(v, list | dict)]
    if nested:
        raise DataError(
            f"{table.where(nested[0])}: the label in column {column!r} is"
            f" {values[nested[0]]!r}, a list or object; a label is one value (text or a number)"
        )
    numbers = [_label_number(v) for v in values]
    if all(n is not None for n in numbers):
        return [_number_text(n) for n in numbers if n is not None]
    return [_number_text(float(v)) if _is_number(v) else str(v) for v in values]


def _missing_value(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float):
        return value != value  # NaN
    return isinstance(value, str) and not value.strip()


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _label_number(value: Any) -> float | None:
    """A label as a number when it is one, or text that reads as one; else None."""
    if _is_number(value):
        return float(value)
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        return number if number == number and abs(number) != float("inf") else None
    return None


def _number_text(number: float) -> str:
    return str(int(number)) if number.is_integer() else repr(number)


def table_kind(path: Path) -> TableKind:
    """The format of a table file, from its extension."""
    kind = EXTENSIONS.get(path.suffix.lower())
    if kind is None:
        raise DataError(
            f"{path}: cannot tell the table format from the extension {path.suffix!r};"
            f" use one of {', '.join(EXTENSIONS)}"
        )
    return kind


def read_table(path: Path, wanted: Sequence[str], options: CsvOptions | None = None) -> Table:
    """The ``wanted`` columns of a CSV, JSONL or Parquet file; a missing column, a short row,
    invalid UTF-8 or JSON fail with the file and line."""
    kind = table_kind(path)
    try:
        if kind is TableKind.PARQUET:
            return _read_parquet(path, wanted)
        if kind is TableKind.JSONL:
            return _read_jsonl(path, wanted)
        return _read_csv(path, wanted, options or CsvOptions())
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: not valid {exc.encoding} ({exc.reason})") from None


def _missing(path: Path, wanted: Sequence[str], names: Sequence[str]) -> None:
    absent = [c for c in wanted if c not in names]
    if absent:
        shown = ", ".join(names[:30]) or "none"
        raise DataError(f"{path}: no column {absent[0]!r}; columns: {shown}")


#: The longest CSV field read, in characters: Python's csv module stops at 128 KiB, shorter than
#: some texts; past this bound a field is more likely an unclosed quote running to the end of
#: the file than one item's text.
CSV_FIELD_LIMIT = 16 * 2**20


@contextlib.contextmanager
def _csv_field_limit() -> Iterator[None]:
    """The csv module's field limit raised to :data:`CSV_FIELD_LIMIT` while a table is read (it
    is global to the process: a higher limit the user set stays, and it is put back after)."""
    previous = csv.field_size_limit()
    csv.field_size_limit(max(previous, CSV_FIELD_LIMIT))
    try:
        yield
    finally:
        csv.field_size_limit(previous)


def _csv_problem(path: Path, line: int, exc: csv.Error, quotechar: str) -> DataError:
    """A row the csv module cannot parse, as one line naming the file, the line and the fix."""
    text = str(exc)
    if "field larger than field limit" in text:
        text = (
            f"a field is longer than {csv.field_size_limit():,} characters; an unclosed"
            f" quote ({quotechar}) makes the rest of the file one field: close it, or shorten"
            " the field"
        )
    elif "NUL" in text:
        text = "the line holds a NUL byte; is this a CSV file? Remove the byte or convert the file"
    return DataError(f"{path}:{line}: cannot read the row: {text}")


def _read_csv(path: Path, wanted: Sequence[str], options: CsvOptions) -> Table:
    encoding = options.encoding
    if encoding.lower().replace("_", "-") in ("utf-8", "utf8"):
        encoding = "utf-8-sig"  # a leading byte-order mark is not part of the first name
    delimiter = options.delimiter or ("\t" if path.suffix.lower() == ".tsv" else ",")
    with _csv_field_limit(), path.open(newline="", encoding=encoding) as handle:
        reader = csv.reader(handle, delimiter=delimiter, quotechar=options.quotechar)
        try:
            header, records, rows = _csv_records(path, reader, options)
        except csv.Error as exc:
            raise _csv_problem(path, reader.line_num, exc, options.quotechar) from None
    names = header or list(options.columns or ())
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise DataError(
            f"{path}:1: column {twice[0]!r} appears {names.count(twice[0])} times; give each"
            " column its own name"
        )
    _missing(path, wanted, names)
    where = [names.index(c) for c in wanted]
    columns = {c: [r[i] for r in records] for c, i in zip(wanted, where, strict=True)}
    return Table(path, columns, rows)


def _csv_records(
    path: Path, reader: Any, options: CsvOptions
) -> tuple[list[str] | None, list[list[str]], list[str]]:
    """The header (None without one and no rows), the records and each record's first line."""
    header: list[str] | None = None
    if options.header:
        header = next(reader, None)
        if header is None:
            raise DataError(f"{path}: the file is empty; expected a header row")
    records: list[list[str]] = []
    rows: list[str] = []
    last = reader.line_num
    for record in reader:
        start, last = last + 1, reader.line_num  # a quoted field may span lines
        if not record:  # a blank line
            continue
        if header is None:
            header = list(options.columns or (str(i) for i in range(1, len(record) + 1)))
        if len(record) != len(header):
            expected = "the header has" if options.header else "expected"
            raise DataError(
                f"{path}:{reader.line_num}: {len(record)} fields, {expected} {len(header)}"
            )
        records.append(record)
        rows.append(str(start))
    return header, records, rows


def _read_jsonl(path: Path, wanted: Sequence[str]) -> Table:
    columns: dict[str, list[Any]] = {c: [] for c in wanted}
    rows: list[str] = []
    seen: set[str] = set()
    with path.open(encoding="utf-8-sig") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line, object_pairs_hook=_unique_keys)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{line_no}: not valid JSON ({exc.msg})") from None
            except _DuplicateKey as exc:
                raise DataError(f"{path}:{line_no}: key {exc.args[0]!r} appears twice") from None
            except ValueError as exc:  # an integer of more digits than Python converts
                raise DataError(f"{path}:{line_no}: not readable JSON ({exc})") from None
            if not isinstance(record, dict):
                raise DataError(f"{path}:{line_no}: expected a JSON object per line")
            seen.update(record)
            for c in wanted:
                columns[c].append(record.get(c))
            rows.append(str(line_no))
    if rows:
        _missing(path, wanted, sorted(seen))
    return Table(path, columns, rows)


class _DuplicateKey(ValueError):
    """A JSON object that names one key twice (``json`` would keep the last silently)."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise _DuplicateKey(key)
        seen.add(key)
    return dict(pairs)


def _read_parquet(path: Path, wanted: Sequence[str]) -> Table:
    from pytest_labelquality.formats import need

    parquet = need("pyarrow.parquet", "parquet")
    try:
        names = list(parquet.read_schema(path).names)
        _missing(path, wanted, names)
        table = parquet.read_table(path, columns=list(dict.fromkeys(wanted)))
    except (OSError, ValueError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise DataError(f"{path}: not a readable Parquet file ({exc})") from None
    columns = {c: table.column(c).to_pylist() for c in wanted}
    return Table(path, columns, [f"row {i}" for i in range(table.num_rows)])
