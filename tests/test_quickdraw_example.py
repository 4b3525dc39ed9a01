"""The shipped Quick, Draw! example as a user runs it, on real drawings (skips without them)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "quickdraw"


def test_example_spec_gates_real_cats_and_dogs(
    pytester: pytest.Pytester, quickdraw_dir: Path
) -> None:
    shutil.copy(EXAMPLE / "quickdraw.labelquality.yaml", pytester.path)
    (pytester.path / "data").symlink_to(quickdraw_dir)
    run = pytester.runpytest_subprocess("--label-quality", "-k", "not walkthrough")
    run.assert_outcomes(passed=1)
    run.stdout.fnmatch_lines(["*fold 5/5: trained on 3200 items*", "quickdraw-cat-dog * PASS *"])
    document = json.loads((pytester.path / "label-quality-report/label-quality.json").read_text())
    (result,) = document["datasets"]
    assert result["items"] == 4000
    assert result["classes"] == ["cat", "dog"]
    assert result["model"] == {"name": "hog_boosting", "mirror": True}
    assert result["noise"]["method"]["count"] == "off_diagonal_calibrated"
    assert result["noise"]["count"] == len(result["flagged"])
    assert 0.0 < result["noise"]["rate"] < 0.25
    assert result["oof_accuracy"] > 0.75
    assert result["flagged"][0]["preview"]["image"].startswith("data:image/png;base64,")
    html = (pytester.path / "label-quality-report/index.html").read_text()
    assert "quickdraw-cat-dog" in html
