"""Baselines: the accepted state of each dataset, and what a change did relative to it.

A baseline records, per dataset, the accepted noise estimate, every item's content hash and
label by stable id, and which items were suspect. It is committed beside its spec
(``x.labelquality.yaml`` -> ``x.labelquality.baseline.json``), or kept in a store folder that CI
saves per commit (the spec's path inside it), so that nobody commits it by hand. Either is
written only on request, once, at the end of a run, one sorted line per item so that its diffs
stay small.
"""

from __future__ import annotations

import json
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_labelquality.errors import DataError

BASELINE_VERSION = 1


def baseline_path(spec_path: Path, store: Path | None = None, root: Path | None = None) -> Path:
    """Where the baseline of a spec file lives: beside it, or in ``store`` under the spec's
    path relative to ``root`` (pytest's rootdir)."""
    from pytest_labelquality.files import relative_path

    name = spec_path.name.rsplit(".", 1)[0]
    beside = spec_path.with_name(f"{name}.baseline.json")
    if store is None:
        return beside
    inside = Path(relative_path(beside, root))
    return store / (inside.name if inside.is_absolute() else inside)


def load_baseline(
    spec_path: Path,
    ref: str | None = None,
    *,
    store: Path | None = None,
    root: Path | None = None,
) -> dict[str, Any] | None:
    """The spec's baseline document, or None when there is none: from ``store`` when given
    (its ``commit`` is that of the run that wrote it), else the committed file (as at commit
    ``ref`` when given), whose ``commit`` is the commit that holds it (None when uncommitted)."""
    from pytest_labelquality.trust import holding_commit, read_trusted

    path = baseline_path(spec_path, store, root)
    if store is None:
        text, _ = read_trusted(path, ref)
    else:
        text = read_trusted(path, None)[0]
    if text is None:
        return None
    where = f"{ref}:{path}" if ref and store is None else str(path)
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
    if store is None:
        document["commit"] = holding_commit(path, ref)
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


def write_baselines(
    entries: dict[Path, dict[str, dict[str, Any]]],
    commit: str | None,
    *,
    store: Path | None = None,
    root: Path | None = None,
) -> list[Path]:
    """Merge each spec's new dataset entries into its baseline (others are kept); returns the
    files written. In ``store`` the file records ``commit``, the commit this run checked; a
    committed file records none, since the commit that will hold it does not exist yet."""
    from pytest_labelquality.files import folder_lock, write_text_atomic

    written = []
    for spec_path, datasets in entries.items():
        path = baseline_path(spec_path, store, root)
        path.parent.mkdir(parents=True, exist_ok=True)
        with folder_lock(path.parent):  # another run's datasets are merged, not lost
            existing = load_baseline(spec_path, store=store, root=root) or {"datasets": {}}
            merged = {**existing["datasets"], **datasets}
            write_text_atomic(path, baseline_text(merged, commit if store else None))
        written.append(path)
    return written


def baseline_text(datasets: dict[str, dict[str, Any]], commit: str | None) -> str:
    """A baseline document as JSON with one sorted line per item and per suspect, so that a
    refreshed baseline's diff holds the lines of the items that changed."""
    head = {"version": BASELINE_VERSION, **({"commit": commit} if commit else {})}
    lines = [json.dumps(head)[:-1] + ', "datasets": {']
    for n, name in enumerate(sorted(datasets)):
        entry = datasets[name]
        scalars = {k: v for k, v in sorted(entry.items()) if k not in ("items", "suspects")}
        lines.append(f'{json.dumps(name)}: {json.dumps(scalars)[:-1]}, "suspects": [')
        lines += _listed([json.dumps(i) for i in sorted(entry["suspects"])])
        lines.append('], "items": {')
        items = entry["items"]
        lines += _listed([f"{json.dumps(i)}: {json.dumps(list(items[i]))}" for i in sorted(items)])
        lines.append("}}" + ("," if n < len(datasets) - 1 else ""))
    return "\n".join([*lines, "}}", ""])


def _listed(values: list[str]) -> list[str]:
    """JSON values one per line, each but the last followed by a comma."""
    return [v + ("," if k < len(values) - 1 else "") for k, v in enumerate(values)]


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
