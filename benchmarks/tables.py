"""The table default side by side with tabaudit, on the same CSVs with planted flips.

scikit-learn's digits, wine and breast_cancer are written as CSVs, and 10%, 10% and 5% of their
rows get another class (uniformly, a seed per round). On each CSV, one run of each:

- the gate's default for tables (``table_ensemble``), a whole ``pytest --label-quality`` process;
- ``logistic_regression`` (the default before ``table_ensemble``), on the same cache;
- tabaudit's label-noise check as its users run it (``tabaudit audit --checks label_noise``,
  the rows it calls likely mislabeled), when tabaudit is installed (``pip install tabaudit``;
  it is not a dependency of this project).

It prints precision, recall and F1 of the flagged rows against the flipped ones, averaged over
the rounds, and the wall time of each tool.

    python benchmarks/tables.py              # 10 rounds (about 10 min on 2 cores)
    python benchmarks/tables.py --rounds 3
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from common import DEV_ONLY_PLUGINS, measured

DATASETS = {"digits": 0.10, "wine": 0.10, "breast_cancer": 0.05}
MODELS = ("table_ensemble", "logistic_regression")


def write_csvs(work: Path, name: str, rate: float, seed: int) -> tuple[Path, Path, set[int]]:
    """The dataset with flips as a CSV with a ``row`` column (for the gate) and one without (for
    tabaudit, which would take the row number as a feature); the flipped rows."""
    import numpy as np
    import sklearn.datasets

    bunch = getattr(sklearn.datasets, f"load_{name}")()
    rng = np.random.default_rng(seed)
    labels = bunch.target.copy()
    classes = len(bunch.target_names)
    flipped = rng.choice(len(labels), size=round(rate * len(labels)), replace=False)
    labels[flipped] = (labels[flipped] + rng.integers(1, classes, size=len(flipped))) % classes
    header = [f"f{j}" for j in range(bunch.data.shape[1])]
    gate, plain = work / f"{name}-{seed}.csv", work / f"{name}-{seed}-plain.csv"
    with gate.open("w", newline="") as g, plain.open("w", newline="") as p:
        with_row, without = csv.writer(g), csv.writer(p)
        with_row.writerow(["row", *header, "label"])
        without.writerow([*header, "label"])
        for i, (x, y) in enumerate(zip(bunch.data, labels, strict=True)):
            values = [repr(float(v)) for v in x]
            with_row.writerow([i, *values, f"c{y}"])
            without.writerow([*values, f"c{y}"])
    return gate, plain, {int(i) for i in flipped}


def gate(work: Path, path: Path, model: str, cache: Path) -> tuple[set[int], float]:
    """The rows the gate flags with ``model``, and the process's wall seconds."""
    spec = work / f"{path.stem}-{model}.labelquality.yaml"
    spec.write_text(
        f"datasets:\n  - name: {path.stem}\n"
        f"    source: {{format: csv, path: {path.name}, label: label, id: row}}\n"
        f"    model: {{name: {model}}}\n    gate: {{max_noise_rate: 1.0}}\n"
    )
    out = work / f"{spec.stem}.json"
    status, wall, _, log = measured(
        [
            sys.executable, "-m", "pytest", "--label-quality", "-q", "-p", "no:randomly",
            *DEV_ONLY_PLUGINS, spec.name, "--label-quality-cache-dir", str(cache),
            "--label-quality-json", str(out),
        ],
        cwd=work,
    )  # fmt: skip
    if status not in (0, 1):
        print(log[-3000:])
        raise SystemExit(f"{spec.name}: pytest exited {status}")
    data = json.loads(out.read_text())["datasets"][0]
    return {int(item["id"]) for item in data["flagged"]}, wall


def tabaudit(tool: str, work: Path, path: Path) -> tuple[set[int], float]:
    """The rows tabaudit's label-noise check calls likely mislabeled, and its wall seconds."""
    out = work / f"{path.stem}-tabaudit.json"
    command = [tool, "audit", str(path), "--target", "label", "--checks", "label_noise"]
    status, wall, _, log = measured([*command, "--json", str(out), "--quiet"], cwd=work)
    if status not in (0, 1):
        print(log[-3000:])
        raise SystemExit(f"tabaudit exited {status} on {path.name}")
    findings = json.loads(out.read_text())["findings"]
    rows: set[int] = set()
    for finding in findings:
        if finding["check"] == "label_noise":
            rows |= set(finding["evidence"]["rows_likely"])
    return rows, wall


def scored(flagged: set[int], flipped: set[int]) -> tuple[float, float, float]:
    hits = len(flagged & flipped)
    precision = hits / len(flagged) if flagged else 0.0
    recall = hits / len(flipped)
    return precision, recall, 2 * precision * recall / ((precision + recall) or 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    tool = shutil.which("tabaudit") or shutil.which(
        "tabaudit", path=str(Path(sys.executable).parent)
    )
    if tool is None:
        print("tabaudit is not installed (pip install tabaudit): its column is left out")
    tools = [*MODELS, *(["tabaudit"] if tool else [])]
    print(f"{'dataset':<22}" + "".join(f"{t:>34}" for t in tools))
    with tempfile.TemporaryDirectory(prefix="lq-tables-") as tmp:
        work = Path(tmp)
        for name, rate in DATASETS.items():
            figures: dict[str, list[tuple[float, ...]]] = {t: [] for t in tools}
            for seed in range(args.rounds):
                gate_csv, plain_csv, flipped = write_csvs(work, name, rate, seed)
                cache = work / "cache" / f"{name}-{seed}"
                for model in MODELS:
                    flagged, wall = gate(work, gate_csv, model, cache)
                    figures[model].append((*scored(flagged, flipped), wall))
                if tool:
                    flagged, wall = tabaudit(tool, work, plain_csv)
                    figures["tabaudit"].append((*scored(flagged, flipped), wall))
            cells: list[str] = []
            for t in tools:
                p, r, f, w = (statistics.mean(column) for column in zip(*figures[t], strict=True))
                cells.append(f"P {p:.2f} R {r:.2f} F1 {f:.3f} {w:5.1f} s")
            label = f"{name} {rate:.0%} flips"
            print(f"{label:<22}" + "".join(f"{c:>34}" for c in cells))
    print(f"means over {args.rounds} rounds; seconds: one whole process each")


if __name__ == "__main__":
    main()
