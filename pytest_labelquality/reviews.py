"""Reviewed items: a committed list of items a person has checked, so a false alarm stays quiet.

A review file sits beside its spec (``x.labelquality.yaml`` -> ``x.labelquality.reviews.yaml``) and
is a YAML list; each entry names the dataset, the item's id, the hash of its content and label at
review time, the decision, who decided and an optional note. An entry applies while the item's
hash is unchanged. Add entries from the last run's results without writing hashes by hand:

    python -m pytest_labelquality.reviews add SPEC DATASET ID [ID ...] --decision correct --by NAME
"""

from __future__ import annotations

import argparse
import datetime
import enum
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_labelquality.errors import LabelQualityError


class Decision(enum.StrEnum):
    """What the reviewer concluded."""

    CORRECT = "correct"
    FIXED = "fixed"
    AMBIGUOUS = "ambiguous"


#: Decisions that take an item out of the gated count (ambiguous items still count).
ACCEPTING = frozenset({Decision.CORRECT, Decision.FIXED})


@dataclass(frozen=True)
class Review:
    """One reviewed item."""

    dataset: str = field(metadata={"doc": "The dataset's name in the spec."})
    id: str = field(metadata={"doc": "The item's stable id."})
    hash: str = field(metadata={"doc": "Hash of the item's content and label when reviewed."})
    decision: Decision = field(metadata={"doc": "correct, fixed or ambiguous."})
    by: str = field(metadata={"doc": "Who decided."})
    note: str = field(default="", metadata={"doc": "Why."})
    date: str = field(default="", metadata={"doc": "When (ISO date)."})


def reviews_path(spec_path: Path) -> Path:
    """Where the review file of a spec lives."""
    name = spec_path.name.rsplit(".", 1)[0]
    return spec_path.with_name(f"{name}.reviews.yaml")


def load_reviews(spec_path: Path, dataset: str) -> list[Review]:
    """The dataset's review entries (none when the file is absent); located errors otherwise."""
    from pytest_labelquality.spec import load_typed

    path = reviews_path(spec_path)
    if not path.is_file():
        return []
    entries: tuple[Review, ...] = load_typed(path, tuple[Review, ...])
    return [r for r in entries if r.dataset == dataset]


@dataclass(frozen=True)
class ReviewOutcome:
    """Which reviews apply to this version of the data."""

    decisions: dict[str, Decision]
    stale: tuple[Review, ...]

    @property
    def accepted(self) -> frozenset[str]:
        """Ids that no longer count against the gate."""
        return frozenset(i for i, d in self.decisions.items() if d in ACCEPTING)

    def warnings(self) -> list[str]:
        """One warning per entry whose item changed since it was reviewed."""
        return [
            f"the review of {r.id!r} ({r.decision.value}, by {r.by}) no longer applies: the"
            " item's content or label changed since, so it counts again; review it anew"
            for r in self.stale
        ]


def apply_reviews(reviews: list[Review], hashes: dict[str, str]) -> ReviewOutcome:
    """Match entries to items by id and hash; later entries for an id win."""
    decisions: dict[str, Decision] = {}
    stale: dict[str, Review] = {}
    for review in reviews:
        if hashes.get(review.id) == review.hash:
            decisions[review.id] = review.decision
            stale.pop(review.id, None)
        else:
            stale[review.id] = review
            decisions.pop(review.id, None)
    return ReviewOutcome(decisions=decisions, stale=tuple(stale.values()))


def add_reviews(
    spec_path: Path,
    dataset: str,
    ids: list[str],
    *,
    decision: Decision,
    by: str,
    note: str,
    results_path: Path,
) -> list[Review]:
    """Append entries for ``ids``, with hashes from the last run's results; returns them."""
    try:
        document = json.loads(results_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LabelQualityError(f"cannot read the results {results_path}: {exc}") from None
    found = [
        d
        for d in document.get("datasets", [])
        if d["name"] == dataset and Path(d["spec"]["file"]).resolve() == spec_path.resolve()
    ]
    if not found:
        raise LabelQualityError(
            f"{results_path} has no results for {dataset!r} of {spec_path}; run"
            " pytest --label-quality on it first"
        )
    hashes = {item["id"]: item["hash"] for item in found[0]["flagged"]}
    missing = [i for i in ids if i not in hashes]
    if missing:
        raise LabelQualityError(
            f"not among the suspects of {dataset!r} in the last run: {', '.join(missing)}"
        )
    today = datetime.date.today().isoformat()
    added = [Review(dataset, i, hashes[i], decision, by, note, today) for i in dict.fromkeys(ids)]
    path = reviews_path(spec_path)
    lines = [] if path.exists() else [f"# Reviewed items of {spec_path.name}\n"]
    for review in added:
        lines.append(_entry_yaml(review))
    with path.open("a", encoding="utf-8") as handle:
        handle.writelines(lines)
    return added


def _entry_yaml(review: Review) -> str:
    """One list entry; appending text keeps the file's comments and order."""
    fields: dict[str, Any] = {
        "dataset": review.dataset,
        "id": review.id,
        "hash": review.hash,
        "decision": review.decision.value,
        "by": review.by,
        "date": review.date,
    }
    if review.note:
        fields["note"] = review.note
    body = "\n".join(f"  {k}: {json.dumps(v)}" for k, v in fields.items())
    return "-" + body[1:] + "\n"


def main(argv: list[str] | None = None) -> int:
    """``python -m pytest_labelquality.reviews add ...``"""
    parser = argparse.ArgumentParser(prog="python -m pytest_labelquality.reviews")
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add", help="mark suspects of the last run as reviewed")
    add.add_argument("spec", type=Path, help="the spec file")
    add.add_argument("dataset", help="the dataset's name in the spec")
    add.add_argument("ids", nargs="+", help="item ids, as in the report")
    add.add_argument("--decision", type=Decision, choices=list(Decision), required=True)
    add.add_argument("--by", required=True, help="who decided")
    add.add_argument("--note", default="", help="why")
    add.add_argument(
        "--results",
        type=Path,
        default=Path("label-quality-report/label-quality.json"),
        help="the last run's results (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    try:
        added = add_reviews(
            args.spec,
            args.dataset,
            args.ids,
            decision=args.decision,
            by=args.by,
            note=args.note,
            results_path=args.results,
        )
    except LabelQualityError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"added {len(added)} review(s) to {reviews_path(args.spec)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
