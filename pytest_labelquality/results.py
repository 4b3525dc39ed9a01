"""Results as data: the failure message, the summary rows and the JSON file, from result dicts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pytest_labelquality import __version__

SUSPECTS_IN_MESSAGE = 5


def _pct(rate: float) -> str:
    return f"{rate:.1%}"


def _interval(result: dict[str, Any]) -> str:
    low, high = result["noise"]["interval"]
    if low != low:  # NaN: no bootstrap sample kept every class
        return ""
    return f", 95% interval {_pct(low)}-{_pct(high)}"


def failed_rules(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The gate's failed rules (rule, value, limit, class, message), as the JSON has them."""
    rules: list[dict[str, Any]] = result["gate"].get("failed_rules", [])
    return rules


def rule_text(rule: dict[str, Any]) -> str:
    """A failed rule in few words: ``max_new_suspects: 22 > 5``."""
    name = f"{rule['rule']}[{rule['class']}]" if rule.get("class") else rule["rule"]
    if rule["rule"] == "max_new_suspects":
        return f"{name}: {rule['value']:g} > {rule['limit']:g}"
    value = f"{rule['value']:+.1%}" if rule["rule"] == "max_increase" else _pct(rule["value"])
    return f"{name}: {value} > {_pct(rule['limit'])}"


def failure_message(result: dict[str, Any], report_path: Path, json_path: Path) -> str:
    """One paragraph: every rule that failed with its numbers, the suspects the failing rules
    counted, where the results are, what to do next."""
    where = f"{result['spec']['file']}:{result['spec']['line']}"
    rules = failed_rules(result)
    of_items = f" of {result['items']})"
    parts = [
        r["message"].replace(of_items, f" of {result['items']}{_interval(result)})", 1)
        if r["rule"] == "max_noise_rate"
        else r["message"]
        for r in rules
    ]
    change = result.get("baseline")
    about_change = {"max_new_suspects", "max_new_suspect_share"} & {r["rule"] for r in rules}
    shown = change["new_suspects"] if change and about_change else None
    suspects = [s for s in result["flagged"] if s["review"] not in ("correct", "fixed")]
    if shown is not None:
        suspects = [s for s in suspects if s["id"] in set(shown)]
    top = ", ".join(
        f"{s['id']} (given {s['given']!r}, suggested {s['suggested']!r})"
        for s in suspects[:SUSPECTS_IN_MESSAGE]
    )
    more = len(suspects) - SUSPECTS_IN_MESSAGE
    return (
        f"{'; '.join(parts)} for {result['name']!r} ({where}). "
        f"{'New suspects' if shown is not None else 'Most suspect'}: {top or 'none'}"
        f"{f' and {more} more' if more > 0 else ''}. "
        f"Review the suspects in {report_path} (data: {json_path}): fix their labels, record"
        " reviewed ones with 'python -m pytest_labelquality.reviews add', or raise the threshold if"
        f" this level of noise is accepted."
    )


def summary_row(result: dict[str, Any]) -> dict[str, str]:
    """The terminal summary's columns for one dataset."""
    noise = result["noise"]
    return {
        "dataset": result["name"],
        "items": str(result["items"]),
        "classes": str(len(result["classes"])),
        "noise": f"{_pct(noise['rate'])} ({noise['count']})",
        "max": _pct(result["gate"]["max_noise_rate"]),
        "new": str(len(change["new_suspects"])) if (change := result["baseline"]) else "-",
        "verdict": "PASS" if result["gate"]["passed"] else "FAIL",
        "cache": result["cache"]["status"],
        "seconds": f"{result['timings']['total']:.1f}",
    }


def summary_notes(result: dict[str, Any]) -> list[str]:
    """Lines under the table for one dataset: why it failed, and edits that wait for merge."""
    lines = [f"{result['name']}: FAIL {rule_text(r)}" for r in failed_rules(result)]
    trust = result.get("trust") or {}
    if trust.get("edited"):
        lines.append(
            f"{result['name']}: edits to {', '.join(trust['edited'])} take effect after merge"
            f" (judged against {trust['ref']})"
        )
    return lines


def format_table(rows: list[dict[str, str]]) -> list[str]:
    """Left-aligned columns with a header line."""
    if not rows:
        return []
    headers = list(rows[0])
    widths = {h: max(len(h), *(len(r[h]) for r in rows)) for h in headers}
    line = "  ".join(h.ljust(widths[h]) for h in headers).rstrip()
    return [line, *("  ".join(r[h].ljust(widths[h]) for h in headers).rstrip() for r in rows)]


def results_document(
    results: Iterable[dict[str, Any]], errors: Iterable[dict[str, str]] = ()
) -> dict[str, Any]:
    """The JSON file's content; ``errors`` are the spec files and datasets that could not be
    checked (then the run did not pass)."""
    ordered = sorted(results, key=lambda r: (r["spec"]["file"], r["spec"]["line"]))
    errors = list(errors)
    return {
        "plugin": "pytest-labelquality",
        "version": __version__,
        "passed": all(r["gate"]["passed"] for r in ordered) and not errors,
        "datasets": ordered,
        "errors": errors,
    }


def report_link(env: Mapping[str, str]) -> str | None:
    """Markdown naming the report artifact and linking the workflow run that holds it, on
    GitHub Actions (``LABEL_QUALITY_ARTIFACT`` names the artifact; the action sets it)."""
    keys = ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID")
    if not all(env.get(k) for k in keys):
        return None
    url = "{}/{}/actions/runs/{}".format(*(env[k] for k in keys))
    name = env.get("LABEL_QUALITY_ARTIFACT", "label-quality-report").replace("`", "")
    return f"the `{name}` artifact of [this workflow run]({url}#artifacts) (open index.html)"
