"""Reviewed items: a committed list of items a person has checked, so a false alarm stays quiet.

A review file sits beside its spec (``x.labelquality.yaml`` -> ``x.labelquality.reviews.yaml``) and
is a YAML list; each entry names the dataset, the item's id, the hash of its content and label at
review time, the decision, who decided and an optional note. An entry applies while the item's
hash is unchanged. Add entries from the last run's results without writing hashes by hand:

    python -m pytest_labelquality.reviews add SPEC DATASET ID [ID ...] --decision correct --by NAME

Reviewing an id again replaces its entry. A ``fixed`` review may record the label change itself
(``--label NEW``): its hash is then that of the item with the new label, so the very fix it
records does not make it stale (until the fix lands, the item still counts and the run says so).
Maintainers' decisions (the accept command of a pull-request comment) are review files of the
same form on a branch of their own, read at that branch (:func:`load_decisions`).
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_labelquality.errors import LabelQualityError, SpecError
from pytest_labelquality.result import ACCEPTING, ISSUE_DECISIONS, Decision, RunResult, Suspect


@dataclass(frozen=True)
class Review:
    """One reviewed item."""

    dataset: str = field(metadata={"doc": "The dataset's name in the spec."})
    id: str = field(metadata={"doc": "The item's stable id."})
    hash: str = field(metadata={"doc": "Hash of the item's content and label when reviewed."})
    decision: Decision = field(
        metadata={
            "doc": "correct, fixed or ambiguous (labels); duplicate-ok, outlier-ok or remove"
            " (duplicates, leaks, outliers)."
        }
    )
    by: str = field(metadata={"doc": "Who decided."})
    note: str = field(default="", metadata={"doc": "Why."})
    date: str = field(default="", metadata={"doc": "When (ISO date)."})
    label: str = field(default="", metadata={"doc": "fixed: the label the fix gives the item."})


def reviews_path(spec_path: Path) -> Path:
    """Where the review file of a spec lives."""
    name = spec_path.name.rsplit(".", 1)[0]
    return spec_path.with_name(f"{name}.reviews.yaml")


def load_reviews(spec_path: Path, dataset: str, ref: str | None = None) -> list[Review]:
    """The dataset's review entries (as at commit ``ref`` when given; none when the file is
    absent); located errors otherwise."""
    from pytest_labelquality.trust import read_trusted

    path = reviews_path(spec_path)
    text, _ = read_trusted(path, ref)
    return _entries(Path(f"{ref}:{path}") if ref else path, text, dataset)


def load_decisions(spec_path: Path, dataset: str, ref: str, root: Path | None) -> list[Review]:
    """The dataset's entries in the review file as at ``ref``, the branch of maintainers'
    decisions, found by the file's path relative to ``root`` (pytest's rootdir)."""
    from pytest_labelquality.files import relative_path
    from pytest_labelquality.trust import decisions_text

    inside = relative_path(reviews_path(spec_path), root)
    text = decisions_text(root or spec_path.parent, ref, inside)
    return _entries(Path(f"{ref}:{inside}"), text, dataset)


def _entries(where: Path, text: str | None, dataset: str) -> list[Review]:
    from pytest_labelquality.spec import load_typed

    if text is None:
        return []
    entries: tuple[Review, ...] = load_typed(where, tuple[Review, ...], text=text)
    seen: dict[tuple[str, str], int] = {}
    for index, review in enumerate(entries):
        first = seen.setdefault((review.dataset, review.id), index)
        if first != index:  # which would apply? ``reviews add`` replaces, never repeats
            raise SpecError(
                where,
                _entry_line(text, index),
                f"[{index}].id",
                f"item {review.id!r} of {review.dataset!r} is reviewed twice (also entry"
                f" [{first}]); keep one entry per item",
            )
    return [r for r in entries if r.dataset == dataset]


def _entry_line(text: str, index: int) -> int:
    """The line where the ``index``-th entry of a YAML list starts (1 when unknown)."""
    import yaml

    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return 1
    if isinstance(node, yaml.SequenceNode) and index < len(node.value):
        return int(node.value[index].start_mark.line) + 1
    return 1


@dataclass(frozen=True)
class ReviewOutcome:
    """Which reviews apply to this version of the data."""

    decisions: dict[str, Decision]
    stale: tuple[Review, ...]
    pending: tuple[Review, ...] = ()

    @property
    def accepted(self) -> frozenset[str]:
        """Ids that no longer count against the gate."""
        return frozenset(i for i, d in self.decisions.items() if d in ACCEPTING)

    def stale_warnings(self) -> list[str]:
        """One warning per entry whose item changed since it was reviewed."""
        return [
            f"the review of {r.id!r} ({r.decision.value}, by {r.by}) no longer applies: the"
            " item's content or label changed since, so it counts again; review it anew"
            for r in self.stale
        ]

    def pending_warnings(self) -> list[str]:
        """One warning per entry whose recorded fix is not in the data yet."""
        return [
            f"the fix recorded for {r.id!r} (label {r.label!r}, by {r.by}) is not in the data"
            " yet: the item counts until its label is changed"
            for r in self.pending
        ]


def apply_reviews(
    reviews: list[Review], keys: dict[str, tuple[str, str]], decided: Sequence[Review] = ()
) -> ReviewOutcome:
    """Match entries to items (id: content hash, label) by id and hash; later entries win.

    A ``fixed`` entry with a label applies once the item carries that label; before, it is
    pending rather than stale. An entry whose item is not in the data (one a pull request adds,
    reviewed before its merge, or one removed since) is left aside without a warning, and so is
    a maintainer's decision (``decided``) that does not match the item: it may be another
    pull request's; one that matches wins over the review file."""
    from pytest_labelquality.sources import review_hash

    decisions: dict[str, Decision] = {}
    latest: dict[str, Review] = {}
    for review in reviews:
        latest[review.id] = review
    for review in decided:
        key = keys.get(review.id)
        if key is not None and review_hash(*key) == review.hash:
            latest[review.id] = review
    stale, pending = [], []
    for item, review in latest.items():
        key = keys.get(item)
        if key is None:
            continue
        if review_hash(*key) == review.hash:
            decisions[item] = review.decision
        elif review.label and key[1] != review.label:
            pending.append(review)
        else:
            stale.append(review)
    return ReviewOutcome(decisions=decisions, stale=tuple(stale), pending=tuple(pending))


def same_spec(recorded: str, spec_path: Path) -> bool:
    """Whether the spec a result names is ``spec_path``. Results name it relative to the
    repository of the run that wrote them (any machine's checkout), so a relative name matches
    the end of ``spec_path`` resolved; an absolute one (older results) matches it resolved."""
    given = spec_path.resolve()
    name = Path(recorded)
    if name.is_absolute():
        return name.resolve() == given
    parts = name.parts
    return len(parts) <= len(given.parts) and given.parts[-len(parts) :] == parts


def add_reviews(
    spec_path: Path,
    dataset: str,
    ids: list[str],
    *,
    decision: Decision,
    by: str,
    note: str,
    results_path: Path,
    label: str = "",
) -> list[Review]:
    """Record entries for ``ids``, with hashes from the last run's results, replacing earlier
    entries for the same items; returns them. ``label`` (fixed only) is the label the fix set."""
    from pytest_labelquality.sources import review_hash

    try:
        run = RunResult.from_json(json.loads(results_path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        raise LabelQualityError(f"cannot read the results {results_path}: {exc}") from None
    found = [d for d in run.datasets if d.name == dataset and same_spec(d.spec.file, spec_path)]
    if not found:
        recorded = sorted({f"{d.spec.file} ({d.name})" for d in run.datasets})
        raise LabelQualityError(
            f"{results_path} has no results for {dataset!r} of {spec_path}; it holds"
            f" {', '.join(recorded) or 'no datasets'}; run pytest --label-quality on it first"
        )
    if label and decision is not Decision.FIXED:
        raise LabelQualityError("--label records a fix: use it with --decision fixed")
    if label and label not in found[0].classes:
        raise LabelQualityError(
            f"--label {label!r} is not a class of {dataset!r}: {', '.join(found[0].classes)}"
        )
    if decision in ISSUE_DECISIONS:
        issues = found[0].issues
        listed = issues.listed_items() if issues else {}
        missing = [i for i in ids if i not in listed or listed[i].hash is None]
        if missing:
            raise LabelQualityError(
                f"not among the duplicates, leaks and outliers of {dataset!r} in the last run:"
                f" {', '.join(missing)}"
            )
        return _record(
            spec_path,
            [
                Review(dataset, i, str(listed[i].hash), decision, by, note, _today(), "")
                for i in dict.fromkeys(ids)
            ],
        )
    by_id: dict[str, Suspect] = {item.id: item for item in found[0].flagged}
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise LabelQualityError(
            f"not among the suspects of {dataset!r} in the last run: {', '.join(missing)}"
        )
    if label and any(by_id[i].content_hash is None for i in ids):
        raise LabelQualityError(
            f"{results_path} predates --label: run pytest --label-quality again"
        )
    today = _today()
    added = [
        Review(
            dataset,
            i,
            review_hash(by_id[i].content_hash or "", label) if label else by_id[i].hash,
            decision,
            by,
            note,
            today,
            label,
        )
        for i in dict.fromkeys(ids)
    ]
    return _record(spec_path, added)


def _today() -> str:
    return datetime.date.today().isoformat()


def _record(spec_path: Path, added: list[Review]) -> list[Review]:
    """Write ``added`` to the spec's review file, replacing earlier entries for their items."""
    from pytest_labelquality.files import folder_lock, write_text_atomic

    path = reviews_path(spec_path)
    with folder_lock(path.parent):  # read again under the lock: concurrent adds all survive
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            text = f"# Reviewed items of {spec_path.name}\n"
        kept = _without_entries(text, added[0].dataset, {r.id for r in added})
        write_text_atomic(path, kept + "".join(_entry_yaml(r) for r in added))
    return added


def _without_entries(text: str, dataset: str, ids: set[str]) -> str:
    """The file's text without the list entries of ``dataset`` for ``ids``; comments and the
    order of every other entry are kept."""
    import yaml

    blocks: list[list[str]] = [[]]
    for line in text.splitlines(keepends=True):
        if line.startswith("-"):
            blocks.append([])
        blocks[-1].append(line)
    kept = []
    for block in blocks:
        body = "".join(block)
        try:
            parsed = yaml.safe_load(body) if body.startswith("-") else None
        except yaml.YAMLError:
            parsed = None
        entry = parsed[0] if isinstance(parsed, list) and parsed else None
        if isinstance(entry, dict) and entry.get("dataset") == dataset and entry.get("id") in ids:
            continue
        kept.append(body if body.endswith("\n") or not body else body + "\n")
    return "".join(kept)


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
    if review.label:
        fields["label"] = review.label
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
        "--label", default="", help="with --decision fixed: the label the fix gives the items"
    )
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
            label=args.label,
        )
    except LabelQualityError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"recorded {len(added)} review(s) in {reviews_path(args.spec)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
