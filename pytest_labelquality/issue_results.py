"""From what :mod:`data_issues` found to the typed result and to what the gate's rules read:
items named as a reviewer finds them (id, class, split, file and line, a brief preview)."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pytest_labelquality.data_issues import Findings, leaks
from pytest_labelquality.gate import IssueCounts, Rule
from pytest_labelquality.previews import preview
from pytest_labelquality.result import (
    DataIssues,
    Decision,
    DuplicateGroup,
    IssueItem,
    ItemPair,
    NewIssues,
    Outlier,
)
from pytest_labelquality.sources import item_keys, review_hash

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from pytest_labelquality.dataset import Dataset

#: Groups, pairs, outliers and leaks listed in the result, each (all are counted).
ISSUES_LISTED = 200
#: Examples a failed rule's message names.
EXAMPLES = 3


@dataclass(frozen=True)
class IssueSearch:
    """What the search found, on what vectors, at which near-duplicate threshold."""

    found: Findings
    vectors: str
    threshold: float


def issue_result(
    data: Dataset,
    search: IssueSearch,
    decisions: Mapping[str, Decision],
    changed: frozenset[str] | None = None,
) -> DataIssues:
    """The result's section on duplicates, leaks and outliers; reviews' ``decisions`` take
    groups and pairs of ``duplicate-ok`` items and ``outlier-ok`` outliers out of it. With the
    ids a change added or relabelled (``changed``, against a baseline), each kind also counts
    what holds one of them: what the change brought in."""
    import numpy as np

    index = {str(item): i for i, item in enumerate(data.ids.tolist())}

    def reviewed(decision: Decision) -> npt.NDArray[np.int64]:
        chosen = [index[i] for i, d in decisions.items() if d is decision and i in index]
        return np.array(sorted(chosen), dtype=np.int64)

    everything = search.found
    found = everything.without(reviewed(Decision.DUPLICATE_OK))
    accepted_outliers = set(reviewed(Decision.OUTLIER_OK).tolist())
    outliers = np.array(
        [i for i in found.outliers.tolist() if i not in accepted_outliers], dtype=np.int64
    )
    before = len(everything.exact_groups()) + len(everything.near_pairs)
    after = len(found.exact_groups()) + len(found.near_pairs)
    accepted = before - after + len(everything.outliers) - len(outliers)

    @functools.cache  # an item in several pairs is hashed and previewed once
    def item(i: int) -> IssueItem:
        content, label = item_keys(data, [i])[str(data.ids[i])]
        return IssueItem(
            index=i,
            id=str(data.ids[i]),
            class_name=data.class_names[data.labels[i]],
            split=data.splits[i] if data.splits else None,
            location=data.location(i),
            preview=preview(data, i, brief=True),
            hash=review_hash(content, label),
            changed=None if changed is None else str(data.ids[i]) in changed,
        )

    labels = data.labels
    groups = [(g, len(np.unique(labels[g])) > 1) for g in found.exact_groups()]  # by first member
    groups.sort(key=lambda pair: not pair[1])  # conflicting first, stable
    leaked = leaks(found, np.array(data.splits)) if data.splits else []
    touched = (
        None
        if changed is None
        else np.isin(data.ids, np.array(sorted(changed), dtype=data.ids.dtype))
    )

    def new(members: list[list[int]]) -> int | None:
        return None if touched is None else sum(bool(touched[m].any()) for m in members)

    counts = np.bincount(labels, minlength=len(data.class_names))
    return DataIssues(
        vectors=search.vectors,
        near_similarity=search.threshold,
        exact_groups=len(groups),
        conflicting_groups=sum(conflicting for _, conflicting in groups),
        redundant=len(found.redundant()),
        near_pairs=len(found.near_pairs),
        outliers=len(outliers),
        outlier_cutoff=round(float(found.outlier_cutoff), 6),
        language=found.main_language,
        leaks=len(leaked),
        accepted=accepted,
        new=None
        if touched is None
        else NewIssues(
            conflicting_groups=new([g.tolist() for g, conflicting in groups if conflicting]) or 0,
            near_pairs=new(found.near_pairs.tolist()) or 0,
            outliers=new([[i] for i in outliers.tolist()]) or 0,
            leaks=new([[i, j] for i, j, _ in leaked]) or 0,
        ),
        splits=(
            {s: int(c) for s, c in zip(*np.unique(data.splits, return_counts=True), strict=True)}
            if data.splits
            else None
        ),
        imbalance=round(float(counts.max() / max(counts.min(), 1)), 3),
        groups=tuple(
            DuplicateGroup(tuple(item(int(i)) for i in g), conflicting)
            for g, conflicting in groups[:ISSUES_LISTED]
        ),
        pairs=tuple(
            ItemPair(item(i), item(j), round(s, 4))
            for (i, j), s in zip(
                found.near_pairs[:ISSUES_LISTED].tolist(),
                found.near_similarity[:ISSUES_LISTED].tolist(),
                strict=True,
            )
        ),
        outlier_items=tuple(
            Outlier(
                item(int(i)),
                round(float(found.outlier_distance[i]), 4),
                str(found.language[i]) if found.foreign[i] else None,
            )
            for i in outliers[:ISSUES_LISTED]
        ),
        leak_pairs=tuple(
            ItemPair(item(i), item(j), None if s is None else round(s, 4))
            for i, j, s in leaked[:ISSUES_LISTED]
        ),
    )


def issue_counts(issues: DataIssues, items: int) -> IssueCounts:
    """What the gate's rules on duplicates, leaks and outliers read, with examples."""

    def named(i: IssueItem) -> str:
        where = f" in {i.split}" if i.split else ""
        return f"{i.id} ({i.class_name!r}{where})"

    def pairs(listed: tuple[ItemPair, ...]) -> str:
        return "; ".join(f"{named(p.a)} ~ {named(p.b)}" for p in listed[:EXAMPLES])

    conflicting = [g for g in issues.groups if g.conflicting][:EXAMPLES]
    new = issues.new
    listed = [
        *(i for g in issues.groups if g.conflicting for i in g.items),
        *(i for p in (*issues.pairs, *issues.leak_pairs) for i in (p.a, p.b)),
        *(o.item for o in issues.outlier_items),
    ]
    brought = list(dict.fromkeys(named(i) for i in listed if i.changed))[:EXAMPLES]
    return IssueCounts(
        items=items,
        conflicting_groups=issues.conflicting_groups,
        redundant=issues.redundant,
        outliers=issues.outliers,
        leaks=issues.leaks,
        examples={
            Rule.MAX_CONFLICTING_DUPLICATES: "; ".join(
                " = ".join(named(i) for i in g.items) for g in conflicting
            ),
            Rule.MAX_NEAR_DUPLICATE_SHARE: pairs(issues.pairs),
            Rule.MAX_OUTLIER_SHARE: ", ".join(named(o.item) for o in issues.outlier_items[:3]),
            Rule.MAX_LEAKS: pairs(issues.leak_pairs),
            Rule.MAX_NEW_DATA_ISSUES: ", ".join(brought),
        },
        new=None if new is None else new.total,
        new_words="" if new is None else new.described(leaks=True),
    )
