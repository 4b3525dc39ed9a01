"""Results in words: the failure message, the summary rows and the Actions link, each
read from :class:`result.DatasetResult`."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_labelquality.gate import Rule
from pytest_labelquality.result import WarningCode

if TYPE_CHECKING:
    from pytest_labelquality.result import DatasetResult, RuleFailure, RunResult

SUSPECTS_IN_MESSAGE = 5


def _pct(rate: float) -> str:
    return f"{rate:.1%}"


def interval_text(result: DatasetResult) -> str:
    """``, 95% interval 1.0%-3.0%``, or ``""`` when no bootstrap sample kept every class."""
    low, high = result.noise.interval
    if low != low:
        return ""
    return f", 95% interval {_pct(low)}-{_pct(high)}"


def rule_text(rule: RuleFailure) -> str:
    """A failed rule in few words: ``max_new_suspects: 22 > 5``."""
    name = f"{rule.rule.value}[{rule.class_name}]" if rule.class_name else rule.rule.value
    if rule.rule.counts:
        return f"{name}: {rule.value:g} > {rule.limit:g}"
    value = f"{rule.value:+.1%}" if rule.rule is Rule.MAX_INCREASE else _pct(rule.value)
    return f"{name}: {value} > {_pct(rule.limit)}"


def failure_message(result: DatasetResult, report_path: Path, json_path: Path) -> str:
    """One paragraph: every rule that failed with its numbers, the suspects the failing rules
    counted, where the results are, what to do next."""
    of_items = f" of {result.items})"
    parts = [
        r.message.replace(of_items, f" of {result.items}{interval_text(result)})", 1)
        if r.rule is Rule.MAX_NOISE_RATE
        else r.message
        for r in result.gate.failed_rules
    ]
    if not any(r.rule.about_labels for r in result.gate.failed_rules):
        return (
            f"{'; '.join(parts)} for {result.name!r} ({result.spec}). Review them in"
            f" {report_path} (data: {json_path}): remove or merge the duplicates, keep each"
            " leaked item in one split, remove the outliers that do not belong, or raise the"
            " threshold if this is accepted."
        )
    new_only = result.baseline is not None and result.gate.rules_on_change_failed
    suspects = result.gated_suspects
    top = ", ".join(
        f"{s.name} (given {s.given!r}, suggested {s.suggested!r})"
        for s in suspects[:SUSPECTS_IN_MESSAGE]
    )
    more = len(suspects) - SUSPECTS_IN_MESSAGE
    weak = [w.message for w in result.warnings if w.code is WarningCode.WEAK_MODEL]
    first = f"{weak[0][0].upper()}{weak[0][1:]}. Then: " if weak else ""
    return (
        f"{first}{'; '.join(parts)} for {result.name!r} ({result.spec}). "
        f"{'New suspects' if new_only else 'Most suspect'}: {top or 'none'}"
        f"{f' and {more} more' if more > 0 else ''}. "
        f"Review the suspects in {report_path} (data: {json_path}): fix their labels, record"
        " reviewed ones with 'python -m pytest_labelquality.reviews add', or raise the threshold if"
        f" this level of noise is accepted."
    )


def summary_row(result: DatasetResult) -> dict[str, str]:
    """The terminal summary's columns for one dataset."""
    noise, change = result.noise, result.baseline
    return {
        "dataset": result.name,
        "items": str(result.items),
        "classes": str(len(result.classes)),
        "noise": f"{_pct(noise.rate)} ({noise.count})",
        "max": _pct(result.gate.max_noise_rate),
        "new": str(len(change.new_suspects)) if change else "-",
        "verdict": "PASS" if result.passed else "FAIL",
        "cache": result.cache.status,
        "seconds": f"{result.timings.total:.1f}",
    }


def summary_notes(result: DatasetResult) -> list[str]:
    """Lines under the table for one dataset: why it failed, and edits that wait for merge."""
    lines = [f"{result.name}: FAIL {rule_text(r)}" for r in result.gate.failed_rules]
    issues = issues_sentence(result)
    if issues:
        lines.append(f"{result.name}: {issues}")
    trust = result.trust
    if trust and trust.edited:
        lines.append(
            f"{result.name}: edits to {', '.join(trust.edited)} take effect after merge"
            f" (judged against {trust.ref})"
        )
    return lines


def issues_sentence(result: DatasetResult) -> str | None:
    """``3 groups of identical items (1 with different labels), 5 near-duplicate pairs, ...``,
    or None where the check did not look."""
    x = result.issues
    if x is None:
        return None
    text = (
        f"{x.exact_groups} group(s) of identical items ({x.conflicting_groups} with different"
        f" labels), {x.near_pairs} near-duplicate pair(s), {x.redundant} item(s) repeating"
        f" another, {x.outliers} outlier(s)"
    )
    text += f", {x.leaks} leak(s) between splits" if x.splits else ""
    if x.new is not None:
        text += f"; this change brought in {x.new.described(leaks=bool(x.splits))}"
    return text


def passed_sentence(run: RunResult) -> str:
    """``2 of 3 datasets passed (1 could not be checked).``: what could not be checked counts
    among the datasets, so the line never reads as a full pass above a FAIL."""
    checked, errored = len(run.datasets), len(run.errors)
    if not checked + errored:
        return "No datasets were checked."
    total = checked + errored
    text = f"{checked - len(run.failed)} of {total} dataset{'' if total == 1 else 's'} passed"
    return text + (f" ({errored} could not be checked)." if errored else ".")


def format_table(rows: list[dict[str, str]]) -> list[str]:
    """Left-aligned columns with a header line."""
    if not rows:
        return []
    headers = list(rows[0])
    widths = {h: max(len(h), *(len(r[h]) for r in rows)) for h in headers}
    line = "  ".join(h.ljust(widths[h]) for h in headers).rstrip()
    return [line, *("  ".join(r[h].ljust(widths[h]) for h in headers).rstrip() for r in rows)]


def report_link(env: Mapping[str, str]) -> str | None:
    """Markdown naming the report artifact and linking the workflow run that holds it, on
    GitHub Actions (``LABEL_QUALITY_ARTIFACT`` names the artifact; the action sets it)."""
    keys = ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID")
    if not all(env.get(k) for k in keys):
        return None
    url = "{}/{}/actions/runs/{}".format(*(env[k] for k in keys))
    name = env.get("LABEL_QUALITY_ARTIFACT", "label-quality-report").replace("`", "")
    return f"the `{name}` artifact of [this workflow run]({url}#artifacts) (open index.html)"
