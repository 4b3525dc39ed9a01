"""Folds in this process against folds on 2 local workers of Ray and of Dask, side by side in one
run: wall seconds, CPU seconds (this process and every process it started: the clusters'
workers, schedulers and raylets), their ratios to the local backend, and whether the estimate
and the flagged items are the same.

Quick, Draw! drawings with ``hog_boosting`` (the default for fewer than 5 image classes), each
backend with a fresh cache. The clusters start once, before the runs, and their start-up is
shown apart: a team's cluster is already running. Also prints what the figures scale from: the
seconds per fold, the data each worker received, and the cache's bytes per item.

    python benchmarks/distributed.py [--classes 4] [--limit 3000] [--folds 4]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# this file's name would hide the distributed package: its folder goes last, for common only
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE] + [str(HERE)]
from common import drawings_folder  # noqa: E402  (after the path is set)

CLASSES = ("cat", "apple", "bicycle", "diamond", "fish", "lion")


def cpu_seconds() -> float:
    """User and system seconds of this process and every live process below it."""
    import psutil

    me = psutil.Process()
    total = 0.0
    for process in [me, *me.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.Error:  # gone between listing and reading
            continue
        total += times.user + times.system
    return total


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def main() -> None:
    args = drawings_folder(
        __doc__ or "",
        ("--classes", {"type": int, "default": 4, "help": "Quick, Draw! classes"}),
        ("--limit", {"type": int, "default": 3000, "help": "drawings per class"}),
        ("--folds", {"type": int, "default": 4, "help": "folds"}),
    )
    if args.data is None:
        return
    import distributed
    import ray

    from pytest_labelquality.backends import Backend, BackendName
    from pytest_labelquality.runner import check_dataset
    from pytest_labelquality.spec import load_spec

    print(f"load average before: {os.getloadavg()[0]:.1f} on {len(os.sched_getaffinity(0))} cores")
    start = time.perf_counter()
    context = ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray_start = time.perf_counter() - start
    start = time.perf_counter()
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    )
    dask_start = time.perf_counter() - start
    backends = {
        "local": Backend(),
        "ray, 2 workers": Backend(BackendName.RAY, context.address_info["gcs_address"]),
        "dask, 2 workers": Backend(BackendName.DASK, cluster.scheduler_address),
    }
    print(f"cluster start-up (not in the runs): ray {ray_start:.1f}s, dask {dask_start:.1f}s")
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as folder:
        project = Path(folder)
        classes = ", ".join(CLASSES[: args.classes])
        spec_path = project / "q.labelquality.yaml"
        spec_path.write_text(
            "datasets:\n  - name: quickdraw\n"
            f"    source: {{format: quickdraw, dir: {args.data}, classes: [{classes}],"
            f" limit: {args.limit}}}\n"
            f"    model: {{name: hog_boosting}}\n    cv: {{folds: {args.folds}}}\n"
            "    gate: {max_noise_rate: 1.0}\n"
        )
        (spec,) = load_spec(spec_path)
        for label, backend in backends.items():
            cache = project / label.split(",")[0]
            cpu, wall = cpu_seconds(), time.perf_counter()
            checked = check_dataset(spec, cache_dir=cache, progress=lambda _: None, backend=backend)
            result = checked.to_json()
            wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
            rows.append(
                {
                    "label": label,
                    "wall": wall,
                    "cpu": cpu,
                    "answer": (result["noise"]["count"], [f["id"] for f in result["flagged"]]),
                    "fold_seconds": result["timings"]["fold_seconds"],
                    "items": result["items"],
                    "cache_bytes": folder_bytes(cache),
                }
            )
    cluster.close()
    ray.shutdown()
    base = rows[0]
    items = base["items"]
    print(
        f"\n{items} drawings ({args.classes} classes x {args.limit}), hog_boosting,"
        f" {args.folds} folds, cold cache\n"
    )
    print("| backend | wall s | CPU s | wall vs local | CPU vs local | same answer |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    for row in rows:
        same = "yes" if row["answer"] == base["answer"] else "NO"
        print(
            f"| {row['label']} | {row['wall']:.1f} | {row['cpu']:.1f} |"
            f" {row['wall'] / base['wall']:.2f}x | {row['cpu'] / base['cpu']:.2f}x | {same} |"
        )
    data_mb = items * 28 * 28 / 2**20
    print(f"\ndata put/scattered once per run: {data_mb:.1f} MiB of 28x28 uint8 drawings")
    for row in rows:
        folds = ", ".join(f"{s:.1f}" for s in row["fold_seconds"])
        print(
            f"{row['label']}: seconds per fold {folds};"
            f" cache {row['cache_bytes'] / items:.0f} bytes per item"
        )
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
