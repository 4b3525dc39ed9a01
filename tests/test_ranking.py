"""The whole ranking beside the JSON, the items below the estimate, and the honest count in
every output: through pytest in a subprocess, on iris with known flips."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import pytest
from test_plugin import NOISY_ROWS, write_iris

SPEC = """\
datasets:
  - name: iris-noisy
    source: {format: npz, path: noisy.npz, ids: ids, classes: [setosa, versicolor, virginica]}
    model: {name: logistic_regression}
    gate: {max_noise_rate: 0.5}
"""


@pytest.fixture
def noisy(pytester: pytest.Pytester) -> pytest.Pytester:
    write_iris(pytester.path / "noisy.npz", flip_rows=NOISY_ROWS)
    pytester.makefile(".labelquality.yaml", data=SPEC)
    return pytester


def test_every_item_is_ranked_and_the_top_is_shown_below_the_estimate(
    noisy: pytest.Pytester,
) -> None:
    run = noisy.runpytest_subprocess("--label-quality", "--label-quality-show-top=40")
    run.assert_outcomes(passed=1)
    run.stdout.fnmatch_lines(
        ["*iris-noisy: count by off_diagonal * off_diagonal_calibrated * of 150; canary: *"]
    )
    report = noisy.path / "label-quality-report"
    (result,) = json.loads((report / "label-quality.json").read_text())["datasets"]
    assert "ranking" not in result
    assert result["ranking_file"] == "label-quality-ranking.iris-noisy.csv.gz"
    with gzip.open(report / result["ranking_file"], "rt") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 150
    assert {r["id"] for r in rows} == {f"iris-{i}" for i in range(150)}
    scores = [float(r["score"]) for r in rows]
    assert scores == sorted(scores)
    count = result["noise"]["count"]
    assert [r["flagged"] for r in rows] == ["1"] * count + ["0"] * (150 - count)
    assert [r["id"] for r in rows[:count]] == [f["id"] for f in result["flagged"]]
    below = result["below_estimate"]
    assert [b["rank"] for b in below] == list(range(count + 1, 41))
    assert [b["id"] for b in below] == [r["id"] for r in rows[count:40]]
    assert all(b["given"] == r["given"] for b, r in zip(below, rows[count:40], strict=True))
    html = (report / "index.html").read_text()
    assert html.count('class="flip below"') == 40 - count
    assert 'href="label-quality-ranking.iris-noisy.csv.gz"' in html


def test_both_estimators_and_the_canary_are_in_the_results(noisy: pytest.Pytester) -> None:
    noisy.runpytest_subprocess("--label-quality").assert_outcomes(passed=1)
    report = noisy.path / "label-quality-report"
    (result,) = json.loads((report / "label-quality.json").read_text())["datasets"]
    noise = result["noise"]
    counts = {name: e["count"] for name, e in noise["estimators"].items()}
    assert set(counts) == {"off_diagonal", "off_diagonal_calibrated"}
    assert noise["count"] == counts["off_diagonal_calibrated"]  # 3 classes: calibrated
    assert noise["band"] == [min(counts.values()) / 150, max(counts.values()) / 150]
    canary = noise["canary"]
    assert canary["injected"] == 10
    assert canary["count_before"] == noise["count"]
    assert 0 <= canary["recovered"] <= 10
    assert result["below_estimate"] == []
    html = (report / "index.html").read_text()
    assert "canary flips found" in html
    assert "between cleanlab&#39;s estimators" in html or "between cleanlab's estimators" in html


def test_show_top_has_an_ini_twin_and_is_validated(noisy: pytest.Pytester) -> None:
    noisy.makeini("[pytest]\nlabel_quality_show_top = 30\n")
    noisy.runpytest_subprocess("--label-quality").assert_outcomes(passed=1)
    result = json.loads(Path(noisy.path / "label-quality-report/label-quality.json").read_text())
    below = result["datasets"][0]["below_estimate"]
    assert below
    assert below[-1]["rank"] == 30
    run = noisy.runpytest_subprocess("--label-quality", "--label-quality-show-top=x")
    assert run.ret == pytest.ExitCode.USAGE_ERROR
    noisy.makeini("[pytest]\nlabel_quality_show_top = -2\n")
    run = noisy.runpytest_subprocess("--label-quality")
    assert run.ret == pytest.ExitCode.USAGE_ERROR
    run.stderr.fnmatch_lines(["*ini label_quality_show_top must be 0 or more, got -2*"])
