"""Rows a person can find: an item of a text table without an id column is named by its file,
its line and the beginning of its text everywhere a person reads it, while its id stays the
content hash (stable when rows are inserted above it)."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

SPEC = """\
datasets:
  - name: notes
    source: {format: text, path: notes.csv, text: text, label: topic}
    model: {name: tfidf_linear}
    cv: {folds: 3}
    gate: {max_noise_rate: 0.01}
"""
WORDS = {
    "sport": "match goal team season coach league cup score player win",
    "money": "bank stock market price profit shares deal quarter oil trade",
}


def write_notes(path: Path) -> dict[int, str]:
    """90 notes of two topics, every third spanning two lines; the ten after the first 40 sit
    under the wrong topic. Returns the first line of each mislabelled row."""
    import random

    rng = random.Random(0)
    wrong: dict[int, str] = {}
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["topic", "text"])
        line = 2
        for i in range(90):
            topic = ("sport", "money")[i % 2]
            words = WORDS[topic].split()
            text = " ".join(rng.choice(words) for _ in range(12))
            if i % 3 == 0:
                text = text.replace(" ", "\n", 1)  # a quoted field across two lines
            given = topic
            if 40 <= i < 50:
                given = "money" if topic == "sport" else "sport"
                wrong[line] = text
            writer.writerow([given, text])
            line += text.count("\n") + 1
    return wrong


def test_text_rows_without_ids_are_named_by_file_line_and_text(pytester: pytest.Pytester) -> None:
    wrong = write_notes(pytester.path / "notes.csv")
    pytester.makefile(".labelquality.yaml", notes=SPEC)
    run = pytester.runpytest_subprocess(
        "--label-quality", "-p", "no:cacheprovider", "--label-quality-markdown", "notes.md"
    )
    run.assert_outcomes(failed=1)
    report = pytester.path / "label-quality-report"
    result = json.loads((report / "label-quality.json").read_text())["datasets"][0]
    located = {s["location"]: s["id"] for s in result["flagged"]}
    assert located, result["flagged"]
    lines = (pytester.path / "notes.csv").read_text().splitlines()
    for location, item in located.items():
        found = re.fullmatch(r'notes\.csv:(\d+) "(.+)"', location)
        assert found, location
        line, beginning = int(found.group(1)), found.group(2).removesuffix("...")
        # the line is the row's first line, and the text begins as the location says
        assert lines[line - 1].split(",", 1)[1].strip('"').startswith(beginning.split(" ")[0])
        assert re.fullmatch(r"[0-9a-f]{16}", item)  # the id is still the content hash
    assert {int(re.match(r"notes\.csv:(\d+)", k).group(1)) for k in located} & set(wrong)
    first = result["flagged"][0]["location"]
    assert first in run.stdout.str()  # the failure message
    assert first in (pytester.path / "notes.md").read_text()  # the job summary and PR comment
    html = (report / "index.html").read_text()
    assert (
        f'<span class="mono item-where" title="file and line">{first.split(" ")[0]}</span>' in html
    )
