"""The gate beside a CPU hog: wall time of a cold run on an idle machine against the same run
beside busy processes (four on 2 cores by default), side by side in one run.

Each run is a whole ``pytest --label-quality`` process with a fresh cache, training
``hog_boosting`` (boosted trees on OpenMP threads) on Quick, Draw! drawings. ``--compare-old``
adds the thread settings before this benchmark existed: OpenMP and BLAS as wide as the cores
whatever the load, and OpenMP's default wait policy (its threads spin while they wait).

    python benchmarks/under_load.py [--hogs 4] [--classes 4] [--limit 1500] [--compare-old]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import drawings_folder, measured

CLASSES = ("cat", "dog", "apple", "fish", "bicycle", "duck", "frog", "lion")
HOG = "while True: pass"


def main() -> None:
    args = drawings_folder(
        __doc__ or "",
        ("--hogs", {"type": int, "default": 4, "help": "busy processes beside the run"}),
        ("--classes", {"type": int, "default": 4, "help": "Quick, Draw! classes"}),
        ("--limit", {"type": int, "default": 1500, "help": "drawings per class"}),
        ("--compare-old", {"action": "store_true", "help": "also the old thread settings"}),
    )
    if args.data is None:
        return
    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as folder:
        project = Path(folder)
        classes = ", ".join(CLASSES[: args.classes])
        (project / "q.labelquality.yaml").write_text(
            "datasets:\n  - name: quickdraw\n"
            f"    source: {{format: quickdraw, dir: {args.data}, classes: [{classes}],"
            f" limit: {args.limit}}}\n"
            "    model: {name: hog_boosting}\n    cv: {folds: 3}\n    gate: {max_noise_rate: 1.0}\n"
        )
        old = {"LABEL_QUALITY_THREADS": str(cores), "OMP_WAIT_POLICY": ""}
        runs = [("idle", 0, {}), (f"beside {args.hogs} busy processes", args.hogs, {})]
        if args.compare_old:
            runs.append((f"beside {args.hogs} busy processes, old thread settings", args.hogs, old))
        print(
            f"{args.classes} classes x {args.limit} drawings, hog_boosting, 3 folds, cold;"
            f" {cores} cores"
        )
        walls: list[float] = []
        for i, (label, hogs, env) in enumerate(runs):
            busy = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(hogs)]
            try:
                before = os.getloadavg()[0]
                command = [
                    sys.executable, "-m", "pytest", "--label-quality", "-p", "no:cacheprovider",
                    f"--label-quality-cache-dir={project / f'cache{i}'}",
                ]  # fmt: skip
                status, wall, peak, output = measured(
                    command, cwd=project, env={**os.environ, **env}
                )
                after = os.getloadavg()[0]
            finally:
                for hog in busy:
                    hog.kill()
                    hog.wait()
            if status != 0:
                print(output[-3000:])
                raise SystemExit(f"the run {label!r} exited with {status}")
            walls.append(wall)
            print(
                f"{label:<55} {wall:7.1f} s  peak {peak:5.0f} MiB  load average {before:.1f}"
                f" at start, {after:.1f} at end"
            )
        print(f"beside the busy processes / idle: {walls[1] / walls[0]:.2f}x (target: within 3x)")
        if args.compare_old:
            print(f"old thread settings / new, both beside them: {walls[2] / walls[1]:.2f}x")


if __name__ == "__main__":
    main()
