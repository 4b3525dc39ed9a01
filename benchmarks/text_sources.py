"""Texts as people keep them, measured side by side in one run.

1. AG News test set (7,600 real news items, 4 classes, a headerless CSV of label, title and
   description) with 10% uniform flips, the default text model: cold and warm whole pytest
   processes (wall time, peak memory), precision and recall of the flagged items against the
   flips.
2. 25,000 texts built from AG News with light synthetic variation: the 7,600 originals, then
   copies in which each word is dropped with probability 0.15 and two random adjacent words are
   swapped (seeded), so no two texts are identical; 10% flips; one cold pytest process.

Caches live in a temporary folder, never in the shared data.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
import tempfile
from pathlib import Path

from common import DEV_ONLY_PLUGINS, measured

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "ag_news" / "test.csv"
SPEC = """\
datasets:
  - name: {name}
    source:
      format: text
      path: {path}
      header: false
      columns: [label, title, description]
      text: [title, description]
      label: label
      flip: {{rate: 0.1, seed: 0}}
    gate: {{max_noise_rate: 1.0}}
"""


def run(work: Path, name: str, label: str) -> None:
    status, wall, peak, out = measured(
        [
            sys.executable, "-m", "pytest", "--label-quality", "-q", "-p", "no:randomly",
            *DEV_ONLY_PLUGINS, f"{name}.labelquality.yaml",
            "--label-quality-cache-dir", str(work / "cache"),
        ],
        cwd=work,
    )  # fmt: skip
    if status not in (0, 1):
        print(out[-3000:])
        raise SystemExit(f"{label}: pytest exited {status}")
    data = json.loads((work / "label-quality-report" / "label-quality.json").read_text())
    found = data["datasets"][0]
    injected = found["injected"]
    print(
        f"  {label}: {wall:.1f} s, {peak:.0f} MiB peak, cache {found['cache']['status']},"
        f" {found['items']} items, estimate {found['noise']['rate']:.1%},"
        f" precision {injected['precision']:.3f}, recall {injected['recall']:.3f},"
        f" out-of-fold accuracy {found['oof_accuracy']:.3f}"
    )


def varied(rows: list[list[str]], total: int) -> list[list[str]]:
    rng = random.Random(0)
    out = [list(r) for r in rows]
    while len(out) < total:
        label, title, body = rows[len(out) % len(rows)]
        words = [w for w in body.split() if rng.random() > 0.15] or body.split()
        if len(words) > 2:
            i = rng.randrange(len(words) - 1)
            words[i], words[i + 1] = words[i + 1], words[i]
        out.append([label, title, " ".join(words)])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=SHARED)
    parser.add_argument("--large", type=int, default=25_000)
    args = parser.parse_args()
    if not args.data.is_file():
        print(f"no AG News test set at {args.data}; nothing to measure")
        return
    with tempfile.TemporaryDirectory(prefix="lq-text-") as tmp:
        work = Path(tmp)
        (work / "news.labelquality.yaml").write_text(
            SPEC.format(name="ag-news", path=str(args.data))
        )
        print("AG News, 7,600 texts, 10% flips, tfidf_linear:")
        run(work, "news", "cold")
        run(work, "news", "warm")
        with args.data.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
        with (work / "large.csv").open("w", newline="", encoding="utf-8") as handle:
            csv.writer(handle).writerows(varied(rows, args.large))
        (work / "large.labelquality.yaml").write_text(
            SPEC.format(name="ag-news-large", path="large.csv")
        )
        print(f"{args.large:,} texts from AG News with light variation, 10% flips:")
        run(work, "large", "cold")


if __name__ == "__main__":
    main()
