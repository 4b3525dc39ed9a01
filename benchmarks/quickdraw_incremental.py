"""How far an incremental re-check is from a full retrain, on the 4,000 Quick, Draw! drawings.

For a pull request that relabels 1% of the drawings, and one that adds 1% new ones (taken from
the shared files' unused rows, or mirrored copies), the script checks the changed data twice:
incrementally, from the base run's cache, and from scratch with an empty cache. It prints the
wall time of each, the two noise estimates and their difference, and the overlap of the flagged
sets (shared items over the union, and the share of the full run's suspects the incremental run
also names).

    python benchmarks/quickdraw_incremental.py      # about 5 minutes on 2 cores
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import drawings_folder

from pytest_labelquality.runner import check_dataset
from pytest_labelquality.spec import load_spec

SPEC = """\
datasets:
  - name: cat-dog
    source: {format: npz, path: drawings.npz, ids: ids, classes: [cat, dog], shape: [28, 28]}
    model: {mirror: true}  # as for a quickdraw source: a mirrored drawing keeps its label
    gate: {max_noise_rate: 1.0}
"""


def main() -> int:
    args = drawings_folder(__doc__ or "")
    if args.data is None:
        return 0
    cats, dogs = np.load(args.data / "cat.npy"), np.load(args.data / "dog.npy")
    x = np.concatenate([cats, dogs])
    y = np.repeat([0, 1], [len(cats), len(dogs)])
    ids = np.array([f"cat/{i}" for i in range(len(cats))] + [f"dog/{i}" for i in range(len(dogs))])
    rng = np.random.default_rng(0)
    share = round(0.01 * len(y))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "pr.labelquality.yaml").write_text(SPEC)

        def check(cache: str) -> tuple[dict[str, Any], float]:
            (spec,) = load_spec(work / "pr.labelquality.yaml")
            start = time.perf_counter()
            result = check_dataset(spec, cache_dir=work / cache, progress=lambda _: None).to_json()
            return result, time.perf_counter() - start

        np.savez(work / "drawings.npz", x=x, y=y, ids=ids)
        base, took = check("base")
        print(f"base run: {took:.0f}s, estimate {base['noise']['rate']:.3f}", flush=True)
        relabelled = y.copy()
        flip = rng.choice(len(y), size=share, replace=False)
        relabelled[flip] = 1 - relabelled[flip]
        mirrored = x.reshape(-1, 28, 28)[rng.choice(len(y), size=share, replace=False), :, ::-1]
        changes = {
            "relabel 1%": (x, relabelled, ids),
            "add 1%": (
                np.concatenate([x, mirrored.reshape(share, 784)]),
                np.concatenate([y, rng.integers(0, 2, share)]),
                np.concatenate([ids, [f"new/{i}" for i in range(share)]]),
            ),
        }
        for name, (features, labels, names) in changes.items():
            np.savez(work / "drawings.npz", x=features, y=labels, ids=names)
            shutil.copytree(work / "base", work / "pr", dirs_exist_ok=True)
            quick, quick_s = check("pr")
            assert quick["cache"]["status"] == "incremental", quick["cache"]
            full, full_s = check(f"full-{len(rows)}")
            a = {s["id"] for s in quick["flagged"]}
            b = {s["id"] for s in full["flagged"]}
            rows.append(
                (
                    name,
                    quick_s,
                    full_s,
                    quick["noise"]["rate"],
                    full["noise"]["rate"],
                    len(a & b) / max(len(a | b), 1),
                    len(a & b) / max(len(b), 1),
                )
            )
            print(f"{rows[-1][0]}: measured", flush=True)
            shutil.rmtree(work / "pr")
    print(
        "\nchange       incremental s  full s  estimate incr.  estimate full  difference"
        "  flagged overlap (shared/union)  full's suspects also named"
    )
    for name, quick_s, full_s, qa, fa, jaccard, kept in rows:
        print(
            f"{name:12} {quick_s:13.1f} {full_s:7.1f} {qa:15.3f} {fa:14.3f} {qa - fa:+11.3f}"
            f" {jaccard:31.2f} {kept:27.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
