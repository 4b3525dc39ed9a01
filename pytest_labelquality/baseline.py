"""Committed baselines: the accepted state of each dataset, and what a change did relative to it.

A baseline sits beside its spec (``x.labelquality.yaml`` -> ``x.labelquality.baseline.json``) and
records, per dataset, the accepted noise estimate, every item's content hash and label by stable
id, and which items were suspect. It is written only on request, once, at the end of a run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_labelquality.errors import DataError

BASELINE_VERSION = 1


def baseline_path(spec_path: Path) -> Path:
    """Where the baseline of a spec file lives."""
    name = spec_path.name.rsplit(".", 1)[0]
    return spec_path.with_name(f"{name}.baseline.json")


def load_baseline(spec_path: Path) -> dict[str, Any] | None:
    """The spec's baseline document, or None when there is none."""
    path = baseline_path(spec_path)
    try:
        document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable baseline ({exc}); regenerate it") from None
    if document.get("version") != BASELINE_VERSION:
        raise DataError(
            f"{path}: baseline version {document.get('version')!r}, expected"
            f" {BASELINE_VERSION}; regenerate it with --label-quality-update-baseline"
        )
    return document


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
    from pytest_labelquality.report import write_text_atomic

    for spec_path, datasets in entries.items():
        existing = load_baseline(spec_path) or {"datasets": {}}
        merged = {**existing["datasets"], **datasets}
        document = {"version": BASELINE_VERSION, "commit": commit, "datasets": merged}
        write_text_atomic(baseline_path(spec_path), json.dumps(document, indent=1) + "\n")


@dataclass(frozen=True)
class Change:
    """What this version of a dataset changed against its baseline, by stable id."""

    baseline_rate: float
    baseline_commit: str | None
    changed: frozenset[str]
    new_suspects: tuple[str, ...]
    resolved_suspects: tuple[str, ...]
    still_suspect: tuple[str, ...]

    @property
    def changed_suspects(self) -> tuple[str, ...]:
        """Suspects among the items this change added or relabelled."""
        return tuple(i for i in self.new_suspects if i in self.changed)

    def as_dict(self, noise_rate: float) -> dict[str, Any]:
        """JSON form, with the change of the estimate."""
        return {
            "baseline_commit": self.baseline_commit,
            "baseline_noise_rate": self.baseline_rate,
            "noise_rate_change": noise_rate - self.baseline_rate,
            "changed_items": len(self.changed),
            "new_suspects": list(self.new_suspects),
            "changed_suspects": list(self.changed_suspects),
            "resolved_suspects": list(self.resolved_suspects),
            "still_suspect": len(self.still_suspect),
        }


def compare(
    document: dict[str, Any] | None,
    dataset: str,
    items: dict[str, tuple[str, str]],
    suspects: list[str],
) -> Change | None:
    """Match items across versions by id; None when the baseline has no entry for the dataset.

    An item is *changed* when its id is new or its content hash or label differs. A suspect is
    *new* unless it was already suspect with the same content and label.
    """
    if document is None or dataset not in document["datasets"]:
        return None
    base = document["datasets"][dataset]
    before: dict[str, list[str]] = base["items"]
    changed = frozenset(i for i, v in items.items() if before.get(i) != list(v))
    was_suspect = set(base["suspects"])
    now = set(suspects)
    ranked_new = tuple(i for i in suspects if i not in was_suspect or i in changed)
    return Change(
        baseline_rate=float(base["noise_rate"]),
        baseline_commit=document.get("commit"),
        changed=changed,
        new_suspects=ranked_new,
        resolved_suspects=tuple(sorted(was_suspect - now)),
        still_suspect=tuple(i for i in suspects if i in was_suspect and i not in changed),
    )
