"""The plugin's extras that a set of specs needs: what the GitHub Action installs beside the
plugin, so that a workflow copied as the docs show runs on photos, texts and Parquet files.

``python -m pytest_labelquality.extras PATH...`` prints them comma-separated (nothing when none
is needed). A spec that does not load adds nothing here: the gate reports it in its own run.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_labelquality.spec import DatasetSpec, ModelSpec


def spec_files(paths: Iterable[Path]) -> Iterator[Path]:
    """The spec files named by ``paths`` or found under them (hidden folders skipped)."""
    from pytest_labelquality.spec import is_spec_file

    for path in paths:
        if path.is_file() and is_spec_file(path):
            yield path
        elif path.is_dir():
            for found in sorted(path.rglob("*")):
                hidden = any(part.startswith(".") for part in found.relative_to(path).parts)
                if not hidden and found.is_file() and is_spec_file(found):
                    yield found


def needed(datasets: Iterable[DatasetSpec]) -> list[str]:
    """The extras the datasets' sources and models need, sorted."""
    from pytest_labelquality.formats import registered

    found: set[str] = set()
    for dataset in datasets:
        source: Any = dataset.source
        fmt = registered().get(getattr(source, "FORMAT", ""))
        found |= set(fmt.extras if fmt else ())
        values = [getattr(source, f.name) for f in dataclasses.fields(source)]
        if any(isinstance(v, str) and v.lower().endswith(".parquet") for v in values):
            found.add("parquet")
        found |= _model_extras(dataset.model, photos_or_texts=_photos_or_texts(source))
        if dataset.checks.enabled and getattr(source, "FORMAT", "") == "text":
            found.add("languages")  # texts in another language than most are outliers
    return sorted(found)


def _photos_or_texts(source: object) -> bool:
    """Whether the default model of ``source`` is the encoder's when the extra is installed:
    texts, and image folders that are not read as grey (drawings and digits keep theirs)."""
    kind = getattr(source, "FORMAT", "")
    return kind == "text" or (kind == "images" and str(getattr(source, "mode", "")) != "grey")


def _model_extras(model: ModelSpec, *, photos_or_texts: bool) -> set[str]:
    """What the named model (and its members, and its encoder) needs; unnamed or ``auto`` on
    photos and texts, the encoders extra, with which the default measured best (docs/models.md).
    A factory's and a hub encoder's packages are the user's (the action's extra-packages)."""
    from pytest_labelquality.ensemble import DEFAULT_MEMBERS
    from pytest_labelquality.model_registry import model_entry

    if model.factory:
        return set()
    entry = model_entry(model.name) if model.name else None
    if entry is None or entry.chooses:
        return {"encoders"} if photos_or_texts else set()
    names = (model.members or DEFAULT_MEMBERS) if entry.takes("members") else (entry.name,)
    found: set[str] = set()
    for name in names:
        member = model_entry(name)
        found |= set(member.needs if member else ())
    if model.encoder == "efficientnet_lite2":
        found.add("encoders-lite2")
    return found


def main(argv: list[str] | None = None) -> int:
    """Print the extras that the specs under the given paths need."""
    from pytest_labelquality.errors import LabelQualityError
    from pytest_labelquality.spec import load_spec

    datasets: list[DatasetSpec] = []
    named = (argv if argv is not None else sys.argv[1:]) or ["."]
    for path in spec_files(Path(p) for p in named):
        try:
            datasets += load_spec(path)
        except (LabelQualityError, OSError):
            continue
    print(",".join(needed(datasets)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
