"""Results as data: the failure message, the summary rows and the JSON file, from result dicts."""

from __future__ import annotations

import json
from collections.abc import Iterable
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


def failure_message(result: dict[str, Any], report_path: Path, json_path: Path) -> str:
    """One paragraph: what is wrong, the numbers, where the results are, what to do next."""
    noise, gate = result["noise"], result["gate"]
    where = f"{result['spec']['file']}:{result['spec']['line']}"
    parts = []
    if noise["rate"] > gate["max_noise_rate"]:
        parts.append(
            f"estimated label noise {_pct(noise['rate'])} ({noise['count']} of"
            f" {result['items']}{_interval(result)}) exceeds max_noise_rate"
            f" {_pct(gate['max_noise_rate'])}"
        )
    parts += gate["change_failures"]
    for cls in result["per_class"]:
        if not cls["passed"]:
            parts.append(
                f"class {cls['name']!r}: {_pct(cls['rate'])} ({cls['flagged']} of"
                f" {cls['items']}) exceeds its max_class_noise_rate {_pct(cls['max_rate'])}"
            )
    change = result.get("baseline")
    shown = change["changed_suspects"] if change and gate["change_failures"] else None
    suspects = [s for s in result["flagged"] if s["review"] not in ("correct", "fixed")]
    if shown is not None:
        suspects = [s for s in suspects if s["id"] in set(shown)]
    top = ", ".join(
        f"{s['id']} (given {s['given']!r}, suggested {s['suggested']!r})"
        for s in suspects[:SUSPECTS_IN_MESSAGE]
    )
    return (
        f"{'; '.join(parts)} for {result['name']!r} ({where}). "
        f"{'New suspects' if shown is not None else 'Most suspect'}: {top}. "
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
        "new": str(len(change["changed_suspects"])) if (change := result["baseline"]) else "-",
        "verdict": "PASS" if result["gate"]["passed"] else "FAIL",
        "cache": result["cache"]["status"],
        "seconds": f"{result['timings']['total']:.1f}",
    }


def format_table(rows: list[dict[str, str]]) -> list[str]:
    """Left-aligned columns with a header line."""
    if not rows:
        return []
    headers = list(rows[0])
    widths = {h: max(len(h), *(len(r[h]) for r in rows)) for h in headers}
    line = "  ".join(h.ljust(widths[h]) for h in headers).rstrip()
    return [line, *("  ".join(r[h].ljust(widths[h]) for h in headers).rstrip() for r in rows)]


def results_document(results: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The JSON file's content."""
    ordered = sorted(results, key=lambda r: (r["spec"]["file"], r["spec"]["line"]))
    return {
        "plugin": "pytest-labelquality",
        "version": __version__,
        "passed": all(r["gate"]["passed"] for r in ordered),
        "datasets": ordered,
    }


def write_json(path: Path, document: dict[str, Any]) -> None:
    """Write the results file atomically, so a reader never sees half a file."""
    from pytest_labelquality.report import write_text_atomic

    write_text_atomic(path, json.dumps(document, indent=1) + "\n")


def ranking_path(folder: Path, name: str, taken: set[Path]) -> Path:
    """Where a dataset's ranking goes: ``label-quality-ranking.<name>.csv.gz``, numbered when
    two spec files use the same dataset name."""
    path = folder / f"label-quality-ranking.{name}.csv.gz"
    number = 2
    while path in taken:
        path = folder / f"label-quality-ranking.{name}.{number}.csv.gz"
        number += 1
    return path


def write_rankings(results: Iterable[dict[str, Any]], folder: Path) -> None:
    """Move each result's whole ranking into a gzipped CSV beside the JSON (every item: rank,
    index, id, given and suggested label, p(suggested), score, flagged), and record its file
    name in the result as ``ranking_file``."""
    import csv
    import gzip
    import io
    import os

    taken: set[Path] = set()
    for result in sorted(results, key=lambda r: (r["spec"]["file"], r["spec"]["line"])):
        columns = result.pop("ranking", None)
        if columns is None:
            continue
        path = ranking_path(folder, result["name"], taken)
        taken.add(path)
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(zip(*columns.values(), strict=True))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
        try:
            tmp.write_bytes(gzip.compress(text.getvalue().encode(), mtime=0))
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        result["ranking_file"] = path.name


def write_outputs(
    results: list[dict[str, Any]],
    *,
    json_path: Path,
    html_path: Path,
    markdown_path: Path | None,
    step_summary: str | None,
    max_suspects: int,
    repository: Path,
) -> None:
    """Write the JSON, the HTML report and the Markdown summary (to a file, and appended to
    GitHub's ``$GITHUB_STEP_SUMMARY`` when set)."""
    from pytest_labelquality.report import (
        git_commit,
        render_html,
        render_markdown,
        write_text_atomic,
    )

    write_rankings(results, json_path.parent)
    document = results_document(results)
    write_json(json_path, document)
    html = render_html(document, max_suspects=max_suspects, git_commit=git_commit(repository))
    write_text_atomic(html_path, html)
    if markdown_path is None and not step_summary:
        return
    markdown = render_markdown(document)
    if markdown_path is not None:
        write_text_atomic(markdown_path, markdown)
    if step_summary:
        with Path(step_summary).open("a", encoding="utf-8") as handle:
            handle.write(markdown)
