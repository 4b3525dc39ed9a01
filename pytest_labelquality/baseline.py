"""Committed baselines: the accepted state of each dataset, and what a change did relative to it.

A baseline sits beside its spec (``x.labelquality.yaml`` -> ``x.labelquality.baseline.json``) and
records, per dataset, the accepted noise estimate, every item's content hash and label by stable
id, and which items were suspect. It is written only on request, once, at the end of a run.
"""

from __future__ import annotations

import json
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_labelquality.errors import DataError

BASELINE_VERSION = 1


def baseline_path(spec_path: Path) -> Path:
    """Where the baseline of a spec file lives."""
    name = spec_path.name.rsplit(".", 1)[0]
    return spec_path.with_name(f"{name}.baseline.json")


def load_baseline(spec_path: Path, ref: str | None = None) -> dict[str, Any] | None:
    """The spec's baseline document (as at commit ``ref`` when given), or None when there is
    none."""
    from pytest_labelquality.trust import read_trusted

    path = baseline_path(spec_path)
    text, _ = read_trusted(path, ref)
    if text is None:
        return None
    where = f"{ref}:{path}" if ref else str(path)
    regenerate = "delete it and write a new one with --label-quality-update-baseline"
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise DataError(f"{where}: not a readable baseline ({exc}); {regenerate}") from None
    version = document.get("version") if isinstance(document, dict) else None
    if isinstance(document, dict) and version != BASELINE_VERSION:
        raise DataError(
            f"{where}: baseline version {version!r}, expected {BASELINE_VERSION}; {regenerate}"
        )
    problem = _shape_problem(document)
    if problem:
        raise DataError(f"{where}: not a baseline: {problem}; {regenerate}")
    return typing.cast(dict[str, Any], document)


def _kind(value: object) -> str:
    """A JSON value's kind, for a message: 'a list', 'null', 'a string'."""
    names = {dict: "an object", list: "a list", str: "a string", bool: "true or false"}
    if value is None:
        return "null"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return names.get(type(value), type(value).__name__)


def _shape_problem(document: object) -> str:
    """What is wrong with a baseline document's shape, or '' (each dataset's estimate, items
    and suspects, as :func:`baseline_entry` writes them)."""
    if not isinstance(document, dict):
        return f"the file holds {_kind(document)}, expected an object with 'datasets'"
    datasets = document.get("datasets")
    if "datasets" not in document:
        return "the object has no 'datasets'"
    if not isinstance(datasets, dict):
        return f"'datasets' is {_kind(datasets)}, expected an object of datasets by name"
    for name, entry in datasets.items():
        at = f"datasets.{name}"
        if not isinstance(entry, dict):
            return f"{at} is {_kind(entry)}, expected an object"
        for key, kinds, expected in _ENTRY_FIELDS:
            value = entry.get(key)
            if key not in entry:
                return f"{at} has no {key!r}"
            if not isinstance(value, kinds) or isinstance(value, bool):
                return f"{at}.{key} is {_kind(value)}, expected {expected}"
        bad = next(
            (
                i
                for i, v in entry["items"].items()
                if not (isinstance(v, list) and len(v) == 2 and all(isinstance(t, str) for t in v))
            ),
            None,
        )
        if bad is not None:
            return f"{at}.items.{bad} is not [content hash, label]"
        if not all(isinstance(i, str) for i in entry["suspects"]):
            return f"{at}.suspects holds a value that is not an item id"
    return ""


#: What each dataset entry of a baseline holds: (key, JSON types, what the message expects).
_ENTRY_FIELDS: tuple[tuple[str, type | tuple[type, ...], str], ...] = (
    ("noise_rate", (int, float), "a number"),
    ("noise_count", int, "a whole number"),
    ("items", dict, "an object of items by id"),
    ("suspects", list, "a list of item ids"),
)


def baseline_entry(
    noise_rate: float, noise_count: int, items: dict[str, tuple[str, str]], suspects: list[str]
) -> dict[str, Any]:
    """What the baseline keeps of one dataset's run: the estimate, every item, the suspects."""
    return {
        "noise_rate": noise_rate,
        "noise_count": noise_count,
        "items": {i: list(v) for i, v in items.items()},
        "suspects": sorted(suspects),
    }


def write_baselines(entries: dict[Path, dict[str, dict[str, Any]]], commit: str | None) -> None:
    """Merge each spec's new dataset entries into its baseline file (others are kept)."""
    from pytest_labelquality.files import folder_lock, write_text_atomic

    for spec_path, datasets in entries.items():
        with folder_lock(spec_path.parent):  # another run's datasets are merged, not lost
            existing = load_baseline(spec_path) or {"datasets": {}}
            merged = {**existing["datasets"], **datasets}
            document = {"version": BASELINE_VERSION, "commit": commit, "datasets": merged}
            write_text_atomic(baseline_path(spec_path), json.dumps(document, indent=1) + "\n")


@dataclass(frozen=True)
class Change:
    """What this version of a dataset changed against its baseline, by stable id.

    One meaning per word: a *new suspect* is a counted suspect among the items this change
    added or relabelled (what ``max_new_suspects`` counts); *resolved* items were suspect in the
    baseline and are not flagged now; items accepted by a review are a list of their own.
    """

    baseline_rate: float
    baseline_commit: str | None
    changed: frozenset[str]
    new_suspects: tuple[str, ...]
    unchanged_new_suspects: tuple[str, ...]
    resolved_suspects: tuple[str, ...]
    accepted_by_review: tuple[str, ...]
    still_suspect: tuple[str, ...]

    def as_dict(self, noise_rate: float) -> dict[str, Any]:
        """JSON form, with the change of the estimate (``changed_suspects`` is the older name
        of ``new_suspects``, kept for readers of earlier results)."""
        return {
            "baseline_commit": self.baseline_commit,
            "baseline_noise_rate": self.baseline_rate,
            "noise_rate_change": noise_rate - self.baseline_rate,
            "changed_items": len(self.changed),
            "new_suspects": list(self.new_suspects),
            "changed_suspects": list(self.new_suspects),
            "unchanged_new_suspects": list(self.unchanged_new_suspects),
            "resolved_suspects": list(self.resolved_suspects),
            "accepted_by_review": list(self.accepted_by_review),
            "still_suspect": len(self.still_suspect),
        }


def compare(
    document: dict[str, Any] | None,
    dataset: str,
    items: dict[str, tuple[str, str]],
    flagged: list[str],
    accepted: frozenset[str] = frozenset(),
) -> Change | None:
    """Match items across versions by id; None when the baseline has no entry for the dataset.

    ``flagged`` are the flagged ids, most suspect first; ``accepted`` those a review accepts.
    An item is *changed* when its id is new or its content hash or label differs.
    """
    if document is None or dataset not in document["datasets"]:
        return None
    base = document["datasets"][dataset]
    before: dict[str, list[str]] = base["items"]
    changed = frozenset(i for i, v in items.items() if before.get(i) != list(v))
    was_suspect = set(base["suspects"])
    counted = [i for i in flagged if i not in accepted]
    return Change(
        baseline_rate=float(base["noise_rate"]),
        baseline_commit=document.get("commit"),
        changed=changed,
        new_suspects=tuple(i for i in counted if i in changed),
        unchanged_new_suspects=tuple(
            i for i in counted if i not in changed and i not in was_suspect
        ),
        resolved_suspects=tuple(sorted(was_suspect - set(flagged))),
        accepted_by_review=tuple(i for i in flagged if i in accepted),
        still_suspect=tuple(i for i in counted if i in was_suspect and i not in changed),
    )
