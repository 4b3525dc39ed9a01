"""The HTML report and the job-summary Markdown, rendered from a :class:`result.RunResult`.

Rendering is pure: the typed results go in, text comes out. Numbers are turned into view data
here; the packaged Jinja2 templates (autoescape on) only lay it out. Class names, ids and
previews are untrusted, so they reach the page only through autoescaping, and a
Content-Security-Policy forbids any request other than ``data:`` images.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import math
import re
import shlex
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import jinja2

    from pytest_labelquality.result import (
        Change,
        DatasetResult,
        Histogram,
        Preview,
        RunResult,
        Suspect,
    )

INLINE_FEATURES = 6
TEXT_SNIPPET = 280
#: A neighbour's text beside a suspect is cut to this many characters.
NEIGHBOUR_SNIPPET = 90
MATRIX_CLASSES = 40
CHANGE_LIST_LIMIT = 200
TEXT_DARK = "#1f2328"
TEXT_LIGHT = "#ffffff"
HEAT_RGB = (207, 34, 46)
MIN_CONTRAST = 4.5
HISTOGRAM_WIDTH = 400
HISTOGRAM_HEIGHT = 110
#: GitHub's limit on a pull-request comment (65,536 characters); a job summary may hold 1 MiB.
MARKDOWN_LIMIT = 65_536
WEAK_MODEL_EXPLANATION = (
    "Confident learning trusts the model's out-of-fold probabilities: a model that barely beats"
    " always answering the most common class flags its own mistakes rather than wrong labels,"
    " so the estimate and the suspects below may say more about the model than about the data."
)


def render_html(
    run: RunResult,
    *,
    max_suspects: int = 100,
    git_commit: str | None = None,
    results_path: Path | None = None,
    root: Path | None = None,
) -> str:
    """One self-contained HTML page for every dataset of a run, ``max_suspects`` suspects per
    page of each gallery (0: one page). The review commands it builds name the spec and
    ``results_path`` relative to ``root`` (where a reviewer runs them)."""
    if max_suspects < 0:
        raise ValueError(f"max_suspects must be >= 0, got {max_suspects}")
    from markupsafe import Markup

    env = _environment()
    script = Markup(env.get_template("report.js").render())  # static file, no user data
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
    datasets = sorted(run.datasets, key=lambda d: (d.spec.file, d.spec.line))
    anchors = _anchors([d.name for d in datasets])
    views = [
        _dataset_view(d, anchor, max_suspects=max_suspects, root=root, results_path=results_path)
        for d, anchor in zip(datasets, anchors, strict=True)
    ]
    from pytest_labelquality.results import passed_sentence

    return env.get_template("report.html.j2").render(
        summary=passed_sentence(run),
        plugin=run.plugin,
        version=run.version,
        passed=run.passed,
        datasets=views,
        errors=run.errors,
        git_commit=git_commit,
        script=script,
        script_hash=f"sha256-{digest}",
    )


def render_markdown(
    run: RunResult,
    *,
    top: int = 5,
    report_link: str | None = None,
    limit: int = MARKDOWN_LIMIT,
) -> str:
    """A GitHub job summary or pull-request comment: one row per dataset with its failed rules,
    edits that take effect after merge, then for each failing dataset why, and the suspects its
    failing rules counted (the new suspects when a rule on the change failed). Cut to ``limit``
    characters at a line, with a note, to fit GitHub's limits."""
    from pytest_labelquality.results import issues_sentence, passed_sentence, rule_text

    datasets = sorted(run.datasets, key=lambda d: (d.spec.file, d.spec.line))
    failed, errors = run.failed, run.errors
    verdict = "PASS" if run.passed else "FAIL"
    lines = [f"## Label quality: {verdict}", ""]
    if report_link:
        lines += [f"Report: {report_link}", ""]
    if errors:
        what = "dataset or spec file" if len(errors) == 1 else "datasets or spec files"
        lines += [f"**{len(errors)} {what} could not be checked:**", ""]
        lines += [f"- {_md(e.test)}: {_md(e.error)}" for e in errors]
        lines.append("")
    lines.append(passed_sentence(run))
    if not datasets:
        return "\n".join([*lines, ""])
    lines += [
        "",
        "| Dataset | Verdict | Noise | 95% interval | Max | OOF accuracy | Items | New suspects"
        " | Failed rules |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for d in datasets:
        noise, change = d.noise, d.baseline
        cells = [
            _md(d.name),
            "PASS" if d.passed else "FAIL",
            f"{_pct(noise.rate)} ({noise.count})",
            _interval_text(noise.interval) or "n/a",
            _pct(d.gate.max_noise_rate),
            _pct(d.oof_accuracy),
            str(d.items),
            str(len(change.new_suspects)) if change else "-",
            "<br>".join(_md(rule_text(r)) for r in d.gate.failed_rules) or "-",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    found = [(d.name, issues_sentence(d)) for d in datasets]
    if any(sentence for _, sentence in found):
        lines += ["", "Duplicates, leaks and outliers:", ""]
        lines += [f"- {_md(name)}: {sentence}" for name, sentence in found if sentence]
    for d in datasets:
        trust = d.trust
        if trust and trust.edited:
            files = ", ".join(f"`{_md(Path(f).name)}`" for f in trust.edited)
            lines += [
                "",
                f"> [!WARNING]\n> **{_md(d.name)}: this change edits {files}; the edits take"
                f" effect after merge.** The gate judged against the version of"
                f" {_md(trust.ref[:12])}.",
            ]
    for d in failed:
        lines += ["", f"### {_md(d.name)}: why it failed", ""]
        lines += [f"- {_md(r.message)}" for r in d.gate.failed_rules]
        suspects = list(d.gated_suspects)
        if d.baseline is not None and d.gate.rules_on_change_failed:
            title, shown = "New suspects the gate counted", suspects
        else:
            title, shown = "Most suspect items", suspects[: max(top, 0)]
        lines += ["", f"{title} ({len(suspects)}):", ""]
        if not shown:
            lines.append("No item counts as suspect.")
            continue
        lines += [
            "| Rank | ID | Given | p(given) | Suggested | p(suggested) |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        lines += [
            f"| {s.rank} | {_md(s.name)} | {_md(s.given)} | {_prob(s.given_prob)}"
            f" | {_md(s.suggested)} | {_prob(s.suggested_prob)} |"
            for s in shown
        ]
        if len(suspects) > len(shown):
            lines += ["", f"{len(suspects) - len(shown)} more in the HTML report."]
        if report_link and shown is suspects:
            ids = " ".join(shlex.quote(s.id) for s in shown)
            lines += [
                "",
                "A maintainer who finds them labelled right can accept them with a comment (the"
                " pull request's author cannot):",
                "",
                f"```\n/label-quality accept {ids}\n```",
            ]
    return _truncate([*lines, ""], limit)


def _prob(value: float | None) -> str:
    return f"{value:.2f}" if isinstance(value, int | float) else "n/a"


def _truncate(lines: list[str], limit: int) -> str:
    """The lines joined, cut at a line boundary so that the text and a note fit ``limit``."""
    text = "\n".join(lines)
    if len(text) <= limit:
        return text
    note = "\n\n_Truncated to fit GitHub's size limit: {} more lines in the HTML report._\n"
    budget = limit - len(note) - 10
    kept, size = [], 0
    for line in lines:
        if size + len(line) + 1 > budget:
            break
        kept.append(line)
        size += len(line) + 1
    return "\n".join(kept) + note.format(len(lines) - len(kept))


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


def _interval_text(interval: tuple[float, float]) -> str | None:
    low, high = interval
    if low != low or high != high:
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


def _relative(path: str | Path, root: Path | None) -> str:
    """``path`` relative to ``root`` when inside it, else as given."""
    if root is None:
        return str(path)
    try:
        return str(Path(path).resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def _dataset_view(
    result: DatasetResult,
    anchor: str,
    *,
    max_suspects: int,
    root: Path | None = None,
    results_path: Path | None = None,
) -> dict[str, Any]:
    from pytest_labelquality.result import WarningCode

    noise, gate = result.noise, result.gate
    flagged = list(result.counted_suspects)
    reviewed = [s for s in result.flagged if s.accepted]
    injected = result.injected
    flipped = frozenset(injected.indices) if injected else frozenset()
    index = {name: str(i) for i, name in enumerate(result.classes)}
    change = result.baseline
    new = frozenset(change.new_suspects) if change else frozenset()
    links = {s.id: f"{anchor}-item-{s.rank}" for s in result.flagged}
    trust = result.trust
    exemplars = result.exemplars or {}
    below = list(result.below_estimate)
    pool = _neighbour_pool([*flagged, *below], result.neighbour_previews or {})
    previewed = frozenset(p["id"] for p in pool)
    return {
        "anchor": anchor,
        "name": result.name,
        "passed": result.passed,
        "verdict": "PASS" if result.passed else "FAIL",
        "rate": noise.rate,
        "count": noise.count,
        "item_count": result.items,
        "interval": _interval_text(noise.interval),
        "max_noise_rate": gate.max_noise_rate,
        "over_threshold": noise.rate > gate.max_noise_rate,
        "failing_classes": [c.name for c in result.per_class if not c.passed],
        "failed_rules": gate.failed_rules,
        "trust_edits": trust.edited if trust else (),
        "trust_ref": trust.ref if trust else None,
        "oof_accuracy": result.oof_accuracy,
        "weak_model": result.has_warning(WarningCode.WEAK_MODEL),
        "weak_model_explanation": WEAK_MODEL_EXPLANATION,
        "warnings": [w.message for w in result.warnings],
        "spec": str(result.spec),
        "spec_file": _relative(result.spec.file, root),
        "results_file": _relative(results_path, root) if results_path else "",
        "kind": result.source.kind,
        "per_class": result.per_class,
        "matrix": _matrix_view(list(result.classes), result.noise_matrix),
        "histogram": _histogram_view(result.score_histogram),
        "suspects": [_suspect_view(s, index, flipped, new, anchor, previewed) for s in flagged],
        "reviewed": [_suspect_view(s, index, flipped, new, anchor) for s in reviewed],
        "reviewed_total": len(reviewed),
        "stale_reviews": result.reviews.stale,
        "change": change,
        "change_lists": _change_lists(change, links) if change else [],
        "change_failures": gate.change_failures,
        "suspects_total": len(flagged),
        "page_size": max_suspects,
        "given_options": _options(list(result.classes), [s.given for s in flagged]),
        "suggested_options": _options(list(result.classes), [s.suggested for s in flagged]),
        "exemplars": [
            {"index": index[name], "name": name, "items": items}
            for name, items in exemplars.items()
            if name in index
        ],
        "injected": injected,
        "below": [_suspect_view(s, index, flipped, new, previewed=previewed) for s in below],
        "neighbour_pool": pool,
        "band": _interval_text(noise.band),
        "estimators": noise.estimators,
        "canary": noise.canary,
        "ranking_file": result.ranking_file,
        "provenance": _provenance(result),
        "issues": result.issues,
    }


def _change_lists(change: Change, links: dict[str, str]) -> list[dict[str, Any]]:
    """The baseline block's lists of ids, each id with its card's anchor when it has one."""
    lists = [
        (
            "new",
            change.new_suspects,
            "New suspects (this change added or relabelled them; the gate counts these)",
        ),
        (
            "unchanged",
            change.unchanged_new_suspects,
            "Newly suspect, though this change did not touch them",
        ),
        (
            "resolved",
            change.resolved_suspects,
            "Resolved (suspect in the baseline, no longer flagged)",
        ),
        ("accepted", change.accepted_by_review, "Accepted by review (flagged, not counted)"),
    ]
    out = []
    for kind, ids, title in lists:
        if ids:
            shown = [{"id": i, "href": links.get(i)} for i in ids[:CHANGE_LIST_LIMIT]]
            out.append({"kind": kind, "title": title, "ids": shown, "more": len(ids) - len(shown)})
    return out


def _options(classes: list[str], values: list[str]) -> list[dict[str, Any]]:
    """Filter choices: the classes that occur among the shown suspects, in class order."""
    counts = Counter(values)
    return [
        {"value": str(i), "label": name, "count": counts[name]}
        for i, name in enumerate(classes)
        if counts[name]
    ]


def _matrix_view(classes: list[str], matrix: tuple[tuple[int, ...], ...]) -> dict[str, Any]:
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
            background, color = heat_colors(count / peak if peak else 0.0, count)
            kinds = ["diag" if i == j else "", "" if count else "zero"]
            cells.append(
                {
                    "count": count,
                    "css": " ".join(k for k in kinds if k),
                    "style": f"background:{background};color:{color}",
                    "given": str(i),
                    "suggested": str(j),
                }
            )
        rows.append({"label": classes[i], "cells": cells, "total": sum(c["count"] for c in cells)})
    return {"labels": [classes[j] for j in keep], "rows": rows, "omitted": size - len(keep)}


def _hex(rgb: tuple[float, float, float]) -> str:
    return "#" + "".join(f"{round(c):02x}" for c in rgb)


def relative_luminance(color: str) -> float:
    """WCAG 2 relative luminance of a ``#rrggbb`` colour."""
    channels = [int(color[k : k + 2], 16) / 255 for k in (1, 3, 5)]
    r, g, b = (c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(first: str, second: str) -> float:
    """WCAG 2 contrast ratio of two ``#rrggbb`` colours (1 to 21)."""
    high, low = sorted((relative_luminance(first), relative_luminance(second)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def heat_colors(share: float, count: int) -> tuple[str, str]:
    """A heatmap cell's background (red, darker for a larger ``share`` of the peak) and the
    text colour that reads on it at a contrast of at least 4.5:1. Mid-tones where neither dark
    nor white text reaches 4.5:1 are darkened until white text does."""
    if not count:
        return "#ffffff", "#59636e"
    alpha = 0.08 + 0.77 * share
    while True:
        background = _hex(tuple(255 * (1 - alpha) + c * alpha for c in HEAT_RGB))  # type: ignore[arg-type]
        best = max((TEXT_DARK, TEXT_LIGHT), key=lambda t: contrast_ratio(background, t))
        if contrast_ratio(background, best) >= MIN_CONTRAST or alpha >= 1:
            return background, best
        alpha = min(1.0, alpha + 0.02)


def _histogram_view(histogram: Histogram) -> dict[str, Any] | None:
    """Bar geometry for the inline SVG chart of label-quality scores, with the cut-off."""
    if not histogram.counts:
        return None
    counts, edges, cutoff = histogram.counts, histogram.edges, histogram.cutoff
    left, bottom, top = 36, HISTOGRAM_HEIGHT - 20, 8
    width = HISTOGRAM_WIDTH - left - 8
    tallest = max(counts) or 1
    slot = width / len(counts)
    bars = []
    # A log scale, and at least 2 units for any bin that holds an item, so that a small tail
    # of flagged items stays visible beside thousands of clean ones.
    for k, count in enumerate(counts):
        height = (bottom - top) * math.log1p(count) / math.log1p(tallest)
        height = max(height, 2.0) if count else 0.0
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


def _neighbour_pool(suspects: list[Suspect], previews: dict[str, Preview]) -> list[dict[str, Any]]:
    """The previews of the shown suspects' neighbours (an image or a text snippet), each once:
    the page's script puts a copy beside each card that lists it, when the card is shown."""
    pool: dict[int, dict[str, Any]] = {}
    for suspect in suspects:
        for near in (*(suspect.suggested_neighbours or ()), *(suspect.given_neighbours or ())):
            shown = previews.get(near.id)
            if near.index in pool or shown is None:
                continue
            image = shown.image
            if image is not None and not image.startswith("data:image/png;base64,"):
                image = None
            text = shown.text
            if text is not None and len(text) > NEIGHBOUR_SNIPPET:
                text = text[:NEIGHBOUR_SNIPPET].rstrip() + "…"
            if image is not None or text is not None:
                pool[near.index] = {"item": near.index, "id": near.id, "image": image, "text": text}
    return list(pool.values())


def _neighbour_rows(suspect: Suspect, previewed: frozenset[str]) -> list[dict[str, Any]]:
    """A card's rows of neighbours: of its suggested class, then of its given class (those
    without a preview in the page show their id)."""
    rows = []
    for role, name, near in (
        ("suggested", suspect.suggested, suspect.suggested_neighbours),
        ("given", suspect.given, suspect.given_neighbours),
    ):
        if near is None:
            continue
        items = [
            {
                "item": n.index,
                "id": n.id,
                "similarity": f"{n.similarity:.2f}",
                "preview": n.id in previewed,
            }
            for n in near
        ]
        rows.append({"role": role, "name": name, "items": items})
    return rows


def _suspect_view(
    suspect: Suspect,
    index: dict[str, str],
    flipped: frozenset[int],
    new: frozenset[str] = frozenset(),
    anchor: str = "ds",
    previewed: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    from pytest_labelquality.sources import review_hash

    preview = suspect.preview
    content = suspect.content_hash
    view: dict[str, Any] = {
        "rank": suspect.rank,
        "id": suspect.id,
        "where": suspect.location.split(' "', 1)[0] if suspect.location else None,
        "given": suspect.given,
        "suggested": suspect.suggested,
        "given_prob": suspect.given_prob,
        "suggested_prob": suspect.suggested_prob,
        "score": suspect.score,
        "hash": suspect.hash,
        "review": suspect.review.value if suspect.review else None,
        "anchor": f"{anchor}-item-{suspect.rank}",
        "given_index": index.get(suspect.given, ""),
        "suggested_index": index.get(suspect.suggested, ""),
        # what a fixed review records when the fix gives the suggested label
        "fixed_hash": review_hash(content, suspect.suggested) if content else "",
        "injected_flip": suspect.index in flipped,
        "new_suspect": suspect.id in new,
        "image": None,
        "features": None,
        "more_features": None,
        "text": None,
        "full_text": None,
        "thumbnail": bool(preview and preview.thumbnail),
        "neighbours": _neighbour_rows(suspect, previewed),
    }
    if preview is None:
        return view
    if preview.image is not None and preview.image.startswith("data:image/png;base64,"):
        view["image"] = preview.image
    features = preview.features
    if features is not None:
        pairs = [(str(k), _num(v)) for k, v in features.items()]
        if len(pairs) > INLINE_FEATURES:
            view["features"] = [pairs[i] for i in _largest(list(features.values()))]
            view["more_features"] = pairs
        else:
            view["features"] = pairs
    text = preview.text
    if text is not None:
        view["text"] = text if len(text) <= TEXT_SNIPPET else text[:TEXT_SNIPPET].rstrip() + "…"
        view["full_text"] = text if len(text) > TEXT_SNIPPET else None
    return view


def _largest(values: list[Any]) -> list[int]:
    """Positions of the :data:`INLINE_FEATURES` values of largest magnitude, largest first."""

    def magnitude(i: int) -> float:
        value = values[i]
        number = abs(value) if isinstance(value, int | float) else 0.0
        return number if number == number else 0.0

    return sorted(range(len(values)), key=lambda i: (-magnitude(i), i))[:INLINE_FEATURES]


def _provenance(result: DatasetResult) -> list[tuple[str, str]]:
    """Label and value pairs: everything needed to reproduce or question the run."""
    model = result.model.to_json()
    name = model.pop("name", "?")
    settings = ", ".join(f"{k} {_setting(v)}" for k, v in model.items() if v is not None)
    cv, cache, timings, source = result.cv, result.cache, result.timings, result.source
    folds = timings.fold_seconds
    stages = {
        "load": timings.load,
        "fingerprint": timings.fingerprint,
        "train and detect": timings.train_and_detect,
        "total": timings.total,
    }
    return [
        ("Spec", str(result.spec)),
        ("Source", f"{source.origin} ({source.kind})"),
        ("Items and classes", f"{_num(result.items)} items, {len(result.classes)} classes"),
        ("Model", f"{name} ({settings})" if settings else str(name)),
        ("Cross-validation", f"{cv.folds} folds, seed {cv.seed}, {cv.jobs} jobs"),
        ("Detection", ", ".join(f"{k} {v}" for k, v in result.noise.method.to_json().items())),
        (
            "Cache",
            f"{cache.status} ({cache.folds_cached} folds cached), key {cache.key}",
        ),
        ("Versions", ", ".join(f"{k} {v}" for k, v in result.versions.items())),
        (
            "Timings",
            ", ".join(f"{k} {v:.2f}s" for k, v in stages.items())
            + (f"; folds {', '.join(f'{s:.2f}s' for s in folds)}" if folds else ""),
        ),
    ]


def _setting(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return _num(value)
