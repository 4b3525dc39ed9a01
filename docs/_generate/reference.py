"""Write the generated tables of the docs from the code they describe.

- ``docs/spec.md``: the source formats and every spec key, with its type, default and the
  formats it belongs to, from the spec's dataclasses (their type hints and ``field_doc``
  metadata, the same that the JSON Schema is generated from); the meaning of each key comes
  from ``spec_keys.yaml`` beside this script.
- ``docs/models.md``: the models, from the model registry (``model_registry.entries()``).

Each table sits between ``<!-- BEGIN GENERATED: name -->`` and ``<!-- END GENERATED: name -->``
in its page; the prose around it is written by hand.

    python docs/_generate/reference.py          # rewrite the tables
    python docs/_generate/reference.py --check  # exit 1 naming each page that is not current

``tests/test_docs.py`` runs the check, as ``tests/test_spec.py`` does for the JSON Schema.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import re
import sys
import types
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from pytest_labelquality.model_registry import ModelEntry, entries
from pytest_labelquality.spec import SpecFile, source_types

HERE = Path(__file__).resolve().parent
DOCS = HERE.parent
KEYS_FILE = HERE / "spec_keys.yaml"
BLOCK = re.compile(
    r"(?P<begin><!-- BEGIN GENERATED: (?P<name>[\w-]+) [^>]*-->\n)"
    r".*?"
    r"(?P<end><!-- END GENERATED: (?P=name) -->)",
    re.DOTALL,
)


@dataclasses.dataclass
class Key:
    """One dotted spec key, and how it reads in each source format that has it."""

    name: str
    shapes: dict[str, str]  # format (or "" outside source) -> "type, default"


class MissingMeaning(Exception):
    """The meaning file lacks a key of the spec, or names a key the spec does not have."""


# --- types and defaults ------------------------------------------------------------------------


def _optional(tp: Any) -> Any:
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in args:
        (inner,) = [a for a in args if a is not type(None)]
        return inner
    return tp


def _number(value: float) -> str:
    if isinstance(value, int) and value > 2**20 and (value + 1) & value == 0:
        return f"2^{(value + 1).bit_length() - 1} - 1"  # numpy's seeds: 4294967295
    return f"{value:g}" if isinstance(value, float) else str(value)


def _range(meta: dict[str, Any]) -> str:
    low = meta.get("minimum", meta.get("exclusiveMinimum"))
    high = meta.get("maximum", meta.get("exclusiveMaximum"))
    if low is not None and high is not None:
        left = "(" if "exclusiveMinimum" in meta else "["
        right = ")" if "exclusiveMaximum" in meta else "]"
        return f" in {left}{_number(low)}, {_number(high)}{right}"
    if low is not None:
        return f" {'>' if 'exclusiveMinimum' in meta else '>='} {_number(low)}"
    if high is not None:
        return f" {'<' if 'exclusiveMaximum' in meta else '<='} {_number(high)}"
    return ""


def _plural(word: str) -> str:
    return {"boolean": "booleans"}.get(word, word + "s")


def type_text(tp: Any, meta: dict[str, Any]) -> str:
    """A field's type in words: ``integer >= 2``, ``list of strings``, ``one of `a`, `b```."""
    tp = _optional(tp)
    origin = typing.get_origin(tp)
    if "choices" in meta or (isinstance(tp, type) and issubclass(tp, enum.Enum)):
        values = meta["choices"]() if "choices" in meta else [m.value for m in tp]
        return "one of " + ", ".join(f"`{v}`" for v in values)
    if dataclasses.is_dataclass(tp) or tp is typing.Any:
        return "mapping"
    if origin is tuple:
        item = type_text(typing.get_args(tp)[0], {})
        many = f"list of {_plural(item)}"
        if meta.get("minItems", 0) > 1:
            many = f"list of at least {meta['minItems']} {_plural(item)}"
        return f"{item} or {many}" if meta.get("oneOrMore") else many
    if origin is dict:
        value = typing.get_args(tp)[1]
        if value is typing.Any:
            return "mapping"
        return f"mapping of class names to {_plural(type_text(value, {}))}{_range(meta)}"
    words = {bool: "boolean", int: "integer", float: "number", str: "string"}
    if tp not in words:  # a protocol such as SourceSpec
        return "mapping"
    return words[tp] + _range(meta)


def _yaml_value(value: Any) -> str:
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return "[" + ", ".join(map(_yaml_value, value)) + "]"
    if isinstance(value, str):
        return value if value and value.strip() == value else repr(value)
    return str(value)


def shape_text(f: dataclasses.Field[Any], tp: Any) -> str:
    """``type, default`` of one field, as the reference's second column reads it."""
    text = type_text(tp, dict(f.metadata))
    if f.default is not dataclasses.MISSING:
        default = f.default
    elif f.default_factory is not dataclasses.MISSING:
        default = f.default_factory()
    else:
        return f"{text}, required"
    if default is None or default in ({}, ()) or dataclasses.is_dataclass(default):
        return text
    return f"{text}, default `{_yaml_value(default)}`"


# --- walking the spec ---------------------------------------------------------------------------


def _fields(cls: type[Any]) -> Iterator[tuple[dataclasses.Field[Any], Any]]:
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.metadata.get("yaml", True):
            yield f, hints[f.name]


def _nested(tp: Any) -> type[Any] | None:
    tp = _optional(tp)
    if typing.get_origin(tp) is tuple:
        tp = typing.get_args(tp)[0]
    return typing.cast("type[Any]", tp) if dataclasses.is_dataclass(tp) else None


def spec_keys() -> list[Key]:
    """Every key of a spec file, in the dataclasses' order; source keys once, with each format's
    type and default."""
    keys: dict[str, Key] = {}

    def add(name: str, fmt: str, shape: str) -> None:
        keys.setdefault(name, Key(name, {})).shapes[fmt] = shape

    def walk(cls: type[Any], prefix: str, fmt: str) -> None:
        for f, tp in _fields(cls):
            name = f"{prefix}{f.name}"
            add(name, fmt, shape_text(f, tp))
            if name == "source":
                add("source.format", "", "")
                for source in source_types():
                    walk(source, "source.", source.FORMAT)
            elif (inner := _nested(tp)) is not None:
                walk(inner, "" if name == "datasets" else f"{name}.", fmt)

    walk(SpecFile, "", "")
    formats = [s.FORMAT for s in source_types()]
    keys["source.format"].shapes = {"": "one of " + ", ".join(f"`{f}`" for f in formats)}
    return list(keys.values())


def shapes_text(key: Key) -> str:
    """The second column: one shape, or each group of formats with its own."""
    if set(key.shapes) == {""}:
        return key.shapes[""]
    groups: dict[str, list[str]] = {}
    for fmt, shape in key.shapes.items():
        groups.setdefault(shape, []).append(fmt)
    every = len(key.shapes) == len(source_types())
    if len(groups) == 1:
        ((shape, fmts),) = groups.items()
        return shape if every else f"{shape} ({', '.join(fmts)})"
    return "; ".join(f"{', '.join(fmts)}: {shape}" for shape, fmts in groups.items())


def meanings() -> dict[str, str]:
    loaded = yaml.safe_load(KEYS_FILE.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict), f"{KEYS_FILE}: expected a mapping of key to meaning"
    return {str(k): " ".join(str(v).split()) for k, v in loaded.items()}


def cell(text: str) -> str:
    return text.replace("|", "\\|")


def keys_table() -> str:
    keys, meaning = spec_keys(), meanings()
    names = [k.name for k in keys]
    missing = [n for n in names if n not in meaning]
    stale = [n for n in meaning if n not in names]
    if missing or stale:
        problems = []
        if missing:
            problems.append(f"give the meaning of {', '.join(missing)}")
        if stale:
            problems.append(f"remove {', '.join(stale)}, which the spec no longer has")
        raise MissingMeaning(f"{KEYS_FILE.relative_to(DOCS.parent)}: {'; '.join(problems)}")
    lines = ["| key | type, default | meaning |", "| --- | --- | --- |"]
    for key in keys:
        lines.append(f"| `{key.name}` | {cell(shapes_text(key))} | {cell(meaning[key.name])} |")
    return "\n".join(lines)


def formats_table() -> str:
    lines = [
        "| `format` | what it reads | required keys | optional keys |",
        "| --- | --- | --- | --- |",
    ]
    for source in source_types():
        required: list[str] = []
        optional: list[str] = []
        for f, _ in _fields(source):
            needed = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            (required if needed else optional).append(f"`{f.name}`")
        what = " ".join((source.__doc__ or "").split()).replace("``", "`")
        lines.append(
            f"| `{source.FORMAT}` | {cell(what)} | {', '.join(required)} | {', '.join(optional)} |"
        )
    return "\n".join(lines)


# --- the models ---------------------------------------------------------------------------------


def _listed(values: typing.Iterable[str]) -> str:
    return ", ".join(f"`{v}`" for v in values) or "-"


def _settings(entry: ModelEntry) -> str:
    words = {
        "params": "`params`",
        "keras": "`epochs`, `batch_size`, `learning_rate`",
        "mirror": "`mirror`",
        "encoder": "`encoder`, `tokenizer`",
    }
    order = ("params", "keras", "mirror", "encoder")
    return ", ".join(words[s] for s in order if entry.takes(s)) or "-"  # type: ignore[arg-type]


def _trains(entry: ModelEntry) -> str:
    if entry.chooses:
        return "chooses another model on the first fold"
    if entry.members is not None:
        return "combines its members' runs"
    if entry.embeds:
        return "a head on a frozen encoder's embeddings"
    return "Keras" if entry.keras else "scikit-learn"


def models_table(listing: Callable[[], tuple[ModelEntry, ...]] = entries) -> str:
    order = ("image", "text", "table")
    lines = [
        "| `model.name` | what it is | trains on | how it trains | settings | needs"
        " | `auto` tries it for |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for entry in listing():
        accepts = ", ".join(k + "s" for k in order if k in entry.accepts)
        needs = ", ".join(f"`{n}` extra" for n in entry.needs) or "-"
        auto = ", ".join(k + "s" for k in order if k in entry.auto_for) or "-"
        lines.append(
            f"| `{entry.name}` | {cell(entry.summary)} | {accepts} | {_trains(entry)}"
            f" | {_settings(entry)} | {needs} | {auto} |"
        )
    return "\n".join(lines)


# --- the pages ----------------------------------------------------------------------------------

TABLES: dict[str, tuple[str, Callable[[], str]]] = {
    "spec-formats": ("spec.md", formats_table),
    "spec-keys": ("spec.md", keys_table),
    "models": ("models.md", models_table),
}


def rendered(page: Path, text: str) -> str:
    """The page with each of its generated blocks written anew."""
    found: set[str] = set()

    def replace(match: re.Match[str]) -> str:
        name = match["name"]
        if name not in TABLES or TABLES[name][0] != page.name:
            raise MissingMeaning(f"{page.name}: unknown generated block {name!r}")
        found.add(name)
        return f"{match['begin']}\n{TABLES[name][1]()}\n\n{match['end']}"

    out = BLOCK.sub(replace, text)
    wanted = {n for n, (p, _) in TABLES.items() if p == page.name}
    if wanted - found:
        raise MissingMeaning(f"{page.name}: no block for {', '.join(sorted(wanted - found))}")
    return out


def pages() -> dict[Path, tuple[str, str]]:
    """Each generated page: its committed text and its text as generated now."""
    out = {}
    for name in sorted({p for p, _ in TABLES.values()}):
        page = DOCS / name
        text = page.read_text(encoding="utf-8")
        out[page] = (text, rendered(page, text))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if stale")
    args = parser.parse_args(argv)
    try:
        generated = pages()
    except MissingMeaning as exc:
        print(exc, file=sys.stderr)
        return 1
    stale = [page for page, (old, new) in generated.items() if old != new]
    if args.check:
        for page in stale:
            print(f"{page.relative_to(DOCS.parent)} is not current: run {Path(__file__).name}")
        return 1 if stale else 0
    for page in stale:
        page.write_text(generated[page][1], encoding="utf-8")
        print(f"wrote {page.relative_to(DOCS.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
