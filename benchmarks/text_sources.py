"""Texts as people keep them, measured side by side in one run.

1. AG News test set (7,600 real news items, 4 classes, a headerless CSV of label, title and
   description) with 10% uniform flips, the default text model: cold and warm whole pytest
   processes (wall time, peak memory), precision and recall of the flagged items against the
   flips, ranked by cleanlab's ``normalized_margin``; then the same folds ranked by
   ``self_confidence`` (nothing retrained: the folds come from the cache). The gate's default,
   ``given_vs_rival``, is compared with both in ``benchmarks/ranking.py``.
2. The same texts with class-conditional flips, the confusions people make: 10% of World
   flipped to Business, of Business to Sci/Tech and of Sci/Tech to Business, under both
   rankings: uniform flips favour ``self_confidence``, look-alike flips ``normalized_margin``.
3. 25,000 texts built from AG News with light synthetic variation: the 7,600 originals, then
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
      flip: {flip}
    detection: {{ranked_by: {ranked_by}}}
    gate: {{max_noise_rate: 1.0}}
"""
NM = "normalized_margin"  # cleanlab's margin; self_confidence is the other ranking measured
UNIFORM = "{rate: 0.1, seed: 0}"
# AG News classes: 1 World, 2 Sports, 3 Business, 4 Sci/Tech
LOOK_ALIKE = "{rate: 0.1, seed: 0, pairs: {'1': '3', '3': '4', '4': '3'}}"


def write(work: Path, name: str, path: str, flip: str, ranked_by: str = NM) -> None:
    spec = SPEC.format(name=name, path=path, flip=flip, ranked_by=ranked_by)
    (work / f"{name}.labelquality.yaml").write_text(spec)


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
    parser.add_argument("--large", type=int, default=25_000, help="0: skip the large set")
    args = parser.parse_args()
    if not args.data.is_file():
        print(f"no AG News test set at {args.data}; nothing to measure")
        return
    with tempfile.TemporaryDirectory(prefix="lq-text-") as tmp:
        work = Path(tmp)
        data = str(args.data)
        write(work, "news", data, UNIFORM)
        write(work, "news-sc", data, UNIFORM, "self_confidence")
        print("AG News, 7,600 texts, 10% uniform flips, tfidf_linear:")
        run(work, "news", "cold, normalized_margin")
        run(work, "news", "warm, normalized_margin")
        run(work, "news-sc", "same folds, self_confidence")
        write(work, "pairs", data, LOOK_ALIKE)
        write(work, "pairs-sc", data, LOOK_ALIKE, "self_confidence")
        print("AG News, 10% of 3 classes flipped, World->Business, Business<->Sci/Tech:")
        run(work, "pairs", "cold, normalized_margin")
        run(work, "pairs-sc", "same folds, self_confidence")
        if args.large <= 0:
            return
        with args.data.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
        with (work / "large.csv").open("w", newline="", encoding="utf-8") as handle:
            csv.writer(handle).writerows(varied(rows, args.large))
        write(work, "large", "large.csv", UNIFORM)
        print(f"{args.large:,} texts from AG News with light variation, 10% flips:")
        run(work, "large", "cold")


if __name__ == "__main__":
    main()
