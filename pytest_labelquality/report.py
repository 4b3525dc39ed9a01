"""The HTML report and the job-summary Markdown, rendered from the results document.

Rendering is pure: a results document (see :func:`results.results_document`) goes in, text comes
out. Numbers are turned into view data here; the packaged Jinja2 templates (autoescape on) only
lay it out. Class names, ids and previews are untrusted, so they reach the page only through
autoescaping, and a Content-Security-Policy forbids any request other than ``data:`` images.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import math
import os
import re
import subprocess
import tempfile
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import jinja2

INLINE_FEATURES = 6
TEXT_SNIPPET = 280
MATRIX_CLASSES = 40
HISTOGRAM_WIDTH = 400
HISTOGRAM_HEIGHT = 110
WEAK_MODEL_PREFIX = "the model is too weak"
WEAK_MODEL_EXPLANATION = (
    "Confident learning trusts the model's out-of-fold probabilities: a model that barely beats"
    " always answering the most common class flags its own mistakes rather than wrong labels,"
    " so the estimate and the suspects below may say more about the model than about the data."
)


def render_html(
    document: dict[str, Any], *, max_suspects: int = 100, git_commit: str | None = None
) -> str:
    """One self-contained HTML page for every dataset of a run, at most ``max_suspects`` each."""
    if max_suspects < 0:
        raise ValueError(f"max_suspects must be >= 0, got {max_suspects}")
    from markupsafe import Markup

    env = _environment()
    script = Markup(env.get_template("report.js").render())  # static file, no user data
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
    datasets = document.get("datasets", [])
    anchors = _anchors([d["name"] for d in datasets])
    views = [
        _dataset_view(d, anchor, max_suspects=max_suspects)
        for d, anchor in zip(datasets, anchors, strict=True)
    ]
    failed = sum(not v["passed"] for v in views)
    return env.get_template("report.html.j2").render(
        plugin=document.get("plugin", "pytest-labelquality"),
        version=document.get("version", ""),
        passed=bool(document.get("passed", failed == 0)),
        failed=failed,
        datasets=views,
        git_commit=git_commit,
        script=script,
        script_hash=f"sha256-{digest}",
    )


def render_markdown(document: dict[str, Any], *, top: int = 5) -> str:
    """A GitHub job summary: one row per dataset, then the top suspects of each failing one."""
    datasets = document.get("datasets", [])
    failed = [d for d in datasets if not d["gate"]["passed"]]
    verdict = "PASS" if not failed else "FAIL"
    lines = [f"## Label quality: {verdict}", ""]
    if not datasets:
        return "\n".join([*lines, "No datasets were checked.", ""])
    lines.append(f"{len(datasets) - len(failed)} of {_plural(len(datasets), 'dataset')} passed.")
    lines += [
        "",
        "| Dataset | Verdict | Noise | 95% interval | Max | OOF accuracy | Items |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for d in datasets:
        noise = d["noise"]
        lines.append(
            "| "
            + " | ".join(
                [
                    _md(d["name"]),
                    "PASS" if d["gate"]["passed"] else "FAIL",
                    f"{_pct(noise['rate'])} ({noise['count']})",
                    _interval_text(noise.get("interval")) or "n/a",
                    _pct(d["gate"]["max_noise_rate"]),
                    _pct(d["oof_accuracy"]),
                    str(d["items"]),
                ]
            )
            + " |"
        )
    for d in failed:
        suspects = d["flagged"][: max(top, 0)]
        lines += ["", f"### {_md(d['name'])}: most suspect items", ""]
        if not suspects:
            lines.append("No item was flagged; a per-class maximum failed.")
            continue
        lines += ["| Rank | ID | Given | Suggested | Score |", "| --- | --- | --- | --- | --- |"]
        lines += [
            f"| {s['rank']} | {_md(s['id'])} | {_md(s['given'])} | {_md(s['suggested'])}"
            f" | {s['score']:.4f} |"
            for s in suspects
        ]
        if len(d["flagged"]) > len(suspects):
            lines += ["", f"{len(d['flagged']) - len(suspects)} more in the HTML report."]
    return "\n".join([*lines, ""])


def git_commit(path: Path) -> str | None:
    """The ``HEAD`` commit of the repository holding ``path``; None outside one or without git."""
    folder = path if path.is_dir() else path.parent
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = done.stdout.strip()
    if done.returncode != 0 or not re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", commit):
        return None
    return commit


def write_text_atomic(path: Path, text: str) -> None:
    """Write through a temporary file in the same folder, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@functools.cache
def _environment() -> jinja2.Environment:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("pytest_labelquality", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pct"] = _pct
    env.filters["num"] = _num
    return env


def _pct(rate: float | None) -> str:
    if rate is None or rate != rate:
        return "n/a"
    return f"{rate:.1%}"


def _num(value: Any) -> str:
    """Thousands separators for ints, up to four significant decimals for floats."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if math.isnan(value):
        return "n/a"
    return f"{value:.4g}"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _interval_text(interval: list[float] | None) -> str | None:
    if not interval or len(interval) != 2:
        return None
    low, high = interval
    if low is None or high is None or low != low or high != high:
        return None
    return f"{_pct(low)} to {_pct(high)}"


_MD_ESCAPES = {
    "\\": "\\\\",
    "&": "&amp;",
    "<": "&lt;",
    ">": "&gt;",
    "|": "&#124;",
    "`": "&#96;",
    "[": "\\[",
    "]": "\\]",
    "\r": " ",
    "\n": " ",
}


def _md(value: Any) -> str:
    """User data made inert inside a Markdown table cell: no column break, code span or HTML."""
    return "".join(_MD_ESCAPES.get(ch, ch) for ch in str(value))


def _anchors(names: list[str]) -> list[str]:
    """Unique, markup-safe element ids from dataset names."""
    seen: set[str] = set()
    anchors = []
    for i, name in enumerate(names, start=1):
        anchor = "ds-" + (re.sub(r"[^A-Za-z0-9_-]+", "-", str(name)).strip("-") or str(i))
        if anchor in seen:
            anchor = f"{anchor}-{i}"
        seen.add(anchor)
        anchors.append(anchor)
    return anchors


def _dataset_view(result: dict[str, Any], anchor: str, *, max_suspects: int) -> dict[str, Any]:
    noise, gate = result["noise"], result["gate"]
    warnings = [str(w) for w in result.get("warnings", [])]
    failing_classes = [c["name"] for c in result["per_class"] if not c["passed"]]
    accepted = {"correct", "fixed"}
    flagged = [s for s in result["flagged"] if s.get("review") not in accepted]
    reviewed = [s for s in result["flagged"] if s.get("review") in accepted]
    shown = flagged[:max_suspects]
    injected = result.get("injected")
    flipped = frozenset(injected["indices"]) if injected else frozenset()
    index = {name: str(i) for i, name in enumerate(result["classes"])}
    change = result.get("baseline")
    new = frozenset(change["new_suspects"]) if change else frozenset()
    return {
        "anchor": anchor,
        "name": result["name"],
        "passed": bool(gate["passed"]),
        "verdict": "PASS" if gate["passed"] else "FAIL",
        "rate": noise["rate"],
        "count": noise["count"],
        "item_count": result["items"],
        "interval": _interval_text(noise.get("interval")),
        "max_noise_rate": gate["max_noise_rate"],
        "over_threshold": noise["rate"] > gate["max_noise_rate"],
        "failing_classes": failing_classes,
        "oof_accuracy": result["oof_accuracy"],
        "weak_model": any(w.startswith(WEAK_MODEL_PREFIX) for w in warnings),
        "weak_model_explanation": WEAK_MODEL_EXPLANATION,
        "warnings": warnings,
        "spec": f"{result['spec']['file']}:{result['spec']['line']}",
        "kind": result.get("source", {}).get("kind", ""),
        "per_class": result["per_class"],
        "matrix": _matrix_view(result["classes"], result.get("noise_matrix", [])),
        "histogram": _histogram_view(result.get("score_histogram")),
        "suspects": [_suspect_view(s, index, flipped, new) for s in shown],
        "reviewed": [_suspect_view(s, index, flipped, new) for s in reviewed[:max_suspects]],
        "reviewed_total": len(reviewed),
        "stale_reviews": list(result.get("reviews", {}).get("stale", [])),
        "change": change,
        "change_failures": list(gate.get("change_failures", [])),
        "suspects_total": len(flagged),
        "suspects_hidden": len(flagged) - len(shown),
        "given_options": _options(result["classes"], [s["given"] for s in shown]),
        "suggested_options": _options(result["classes"], [s["suggested"] for s in shown]),
        "injected": injected,
        "below": [_suspect_view(s, index, flipped, new) for s in result.get("below_estimate", [])],
        "band": _interval_text(noise.get("band")),
        "estimators": noise.get("estimators", {}),
        "canary": noise.get("canary") or {},
        "ranking_file": result.get("ranking_file"),
        "provenance": _provenance(result),
    }


def _options(classes: list[str], values: list[str]) -> list[dict[str, Any]]:
    """Filter choices: the classes that occur among the shown suspects, in class order."""
    counts = Counter(values)
    return [
        {"value": str(i), "label": name, "count": counts[name]}
        for i, name in enumerate(classes)
        if counts[name]
    ]


def _matrix_view(classes: list[str], matrix: list[list[int]]) -> dict[str, Any]:
    """The flagged items' given-vs-suggested counts, limited to the classes that matter most."""
    size = len(classes)
    if not matrix or len(matrix) != size:
        return {"labels": [], "rows": [], "omitted": 0}
    weight = [sum(matrix[i]) + sum(row[i] for row in matrix) for i in range(size)]
    keep = [i for i in range(size) if weight[i] > 0] if size > MATRIX_CLASSES else list(range(size))
    if len(keep) > MATRIX_CLASSES:
        keep = sorted(sorted(keep, key=lambda i: -weight[i])[:MATRIX_CLASSES])
    peak = max((matrix[i][j] for i in keep for j in keep if i != j), default=0)
    rows = []
    for i in keep:
        cells: list[dict[str, Any]] = []
        for j in keep:
            count = int(matrix[i][j])
            share = count / peak if peak else 0.0
            kinds = [
                "diag" if i == j else "",
                "dark" if share > 0.55 else "",
                "" if count else "zero",
            ]
            cells.append(
                {
                    "count": count,
                    "css": " ".join(k for k in kinds if k),
                    "style": f"background:rgba(207,34,46,{0.08 + 0.77 * share:.2f})"
                    if count
                    else "",
                }
            )
        rows.append({"label": classes[i], "cells": cells, "total": sum(c["count"] for c in cells)})
    return {"labels": [classes[j] for j in keep], "rows": rows, "omitted": size - len(keep)}


def _histogram_view(histogram: dict[str, Any] | None) -> dict[str, Any] | None:
    """Bar geometry for the inline SVG chart of label-quality scores, with the cut-off."""
    if not histogram or not histogram.get("counts"):
        return None
    counts, edges = histogram["counts"], histogram["edges"]
    cutoff = histogram.get("cutoff")
    left, bottom, top = 36, HISTOGRAM_HEIGHT - 20, 8
    width = HISTOGRAM_WIDTH - left - 8
    tallest = max(counts) or 1
    slot = width / len(counts)
    bars = []
    for k, count in enumerate(counts):
        height = (bottom - top) * count / tallest
        bars.append(
            {
                "x": round(left + k * slot + 0.5, 2),
                "y": round(bottom - height, 2),
                "w": round(max(slot - 1, 0.5), 2),
                "h": round(height, 2),
                "count": count,
                "low": edges[k],
                "high": edges[k + 1],
                "flagged": cutoff is not None and edges[k] <= cutoff,
            }
        )
    ticks = [
        {"x": round(left + width * t, 2), "label": f"{t:g}"} for t in (0.0, 0.25, 0.5, 0.75, 1.0)
    ]
    return {
        "width": HISTOGRAM_WIDTH,
        "height": HISTOGRAM_HEIGHT,
        "left": left,
        "right": left + width,
        "top": top,
        "bottom": bottom,
        "tallest": tallest,
        "bars": bars,
        "ticks": ticks,
        "cutoff": cutoff,
        "cutoff_x": None if cutoff is None else round(left + width * min(max(cutoff, 0), 1), 2),
    }


def _suspect_view(
    suspect: dict[str, Any],
    index: dict[str, str],
    flipped: frozenset[int],
    new: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    preview = suspect.get("preview") or {}
    view: dict[str, Any] = {
        **suspect,
        "given_index": index.get(suspect["given"], ""),
        "suggested_index": index.get(suspect["suggested"], ""),
        "injected_flip": suspect.get("index") in flipped,
        "new_suspect": suspect.get("id") in new,
        "review": suspect.get("review"),
        "image": None,
        "features": None,
        "more_features": None,
        "text": None,
    }
    image = preview.get("image")
    if isinstance(image, str) and image.startswith("data:image/png;base64,"):
        view["image"] = image
    features = preview.get("features")
    if isinstance(features, dict):
        pairs = [(str(k), _num(v)) for k, v in features.items()]
        if len(pairs) > INLINE_FEATURES:
            view["features"] = [pairs[i] for i in _largest(list(features.values()))]
            view["more_features"] = pairs
        else:
            view["features"] = pairs
    text = preview.get("text")
    if isinstance(text, str):
        view["text"] = text if len(text) <= TEXT_SNIPPET else text[:TEXT_SNIPPET].rstrip() + "…"
    return view


def _largest(values: list[Any]) -> list[int]:
    """Positions of the :data:`INLINE_FEATURES` values of largest magnitude, largest first."""

    def magnitude(i: int) -> float:
        value = values[i]
        number = abs(value) if isinstance(value, int | float) else 0.0
        return number if number == number else 0.0

    return sorted(range(len(values)), key=lambda i: (-magnitude(i), i))[:INLINE_FEATURES]


def _provenance(result: dict[str, Any]) -> list[tuple[str, str]]:
    """Label and value pairs: everything needed to reproduce or question the run."""
    model = dict(result.get("model", {}))
    name = model.pop("name", "?")
    settings = ", ".join(f"{k} {_setting(v)}" for k, v in model.items() if v is not None)
    cv = result.get("cv", {})
    method = result["noise"].get("method", {})
    cache = result.get("cache", {})
    timings = result.get("timings", {})
    folds = timings.get("fold_seconds") or []
    source = result.get("source", {})
    rows = [
        ("Spec", f"{result['spec']['file']}:{result['spec']['line']}"),
        ("Source", f"{source.get('origin', '?')} ({source.get('kind', '?')})"),
        ("Items and classes", f"{_num(result['items'])} items, {len(result['classes'])} classes"),
        ("Model", f"{name} ({settings})" if settings else str(name)),
        (
            "Cross-validation",
            f"{cv.get('folds', '?')} folds, seed {result.get('seed', cv.get('seed', '?'))},"
            f" {cv.get('jobs', '?')} jobs",
        ),
        ("Detection", ", ".join(f"{k} {v}" for k, v in method.items())),
        (
            "Cache",
            f"{cache.get('status', '?')} ({cache.get('folds_cached', 0)} folds cached),"
            f" key {cache.get('key', '?')}",
        ),
        ("Versions", ", ".join(f"{k} {v}" for k, v in result.get("versions", {}).items())),
        (
            "Timings",
            ", ".join(
                f"{k.replace('_', ' ')} {v:.2f}s"
                for k, v in timings.items()
                if isinstance(v, int | float)
            )
            + (f"; folds {', '.join(f'{s:.2f}s' for s in folds)}" if folds else ""),
        ),
    ]
    return rows


def _setting(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return _num(value)
