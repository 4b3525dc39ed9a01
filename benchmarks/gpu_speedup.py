"""``small_cnn`` on a GPU against the CPU, side by side in one run, where TensorFlow sees a GPU.

Runs the same cold ``pytest --label-quality`` process twice on Quick, Draw! drawings (all 14
classes, 26,000 drawings, 5 folds, ``small_cnn``): once with the GPU, once with it hidden
(``CUDA_VISIBLE_DEVICES=-1``), and prints both wall times, the speed-up and both out-of-fold
accuracies (mixed precision on the GPU may move them slightly). Without a GPU it says so and
measures nothing.

    python benchmarks/gpu_speedup.py [--data DIR] [--classes cat dog]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from common import drawings_folder, gate_process
from model_quality import ALL14, SPEC


def gpu_visible() -> bool:
    """Whether TensorFlow sees a GPU, asked in a child process (the check initialises CUDA)."""
    probe = "import tensorflow as tf; print(len(tf.config.list_physical_devices('GPU')))"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=False
    )
    return out.returncode == 0 and out.stdout.strip() not in ("", "0")


def main() -> int:
    args = drawings_folder(
        __doc__ or "", ("--classes", {"nargs": "+", "default": ALL14, "help": "the classes"})
    )
    if args.data is None:
        return 0
    if not gpu_visible():
        print("no GPU visible to TensorFlow on this machine: nothing to measure (CPU only)")
        return 0
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for device, hide in (("gpu", None), ("cpu", "-1")):
            folder = Path(tmp) / device
            folder.mkdir()
            (folder / "bench.labelquality.yaml").write_text(
                SPEC.format(
                    name=f"gpu-{device}",
                    data=args.data.resolve(),
                    classes=f"[{', '.join(args.classes)}]",
                    flip="",
                    model="small_cnn",
                )
            )
            if hide is not None:
                os.environ["CUDA_VISIBLE_DEVICES"] = hide
            print(f"running small_cnn on the {device} ...", flush=True)
            code, wall, _, output = gate_process(folder)
            if code not in (0, 1):
                sys.exit(f"{device} run failed (exit {code}):\n{output[-4000:]}")
            result = json.loads((folder / "results.json").read_text())["datasets"][0]
            rows[device] = (wall, result["oof_accuracy"])
    (gpu_s, gpu_acc), (cpu_s, cpu_acc) = rows["gpu"], rows["cpu"]
    print(f"\n{len(args.classes)} classes, small_cnn, 5 folds, cold whole pytest processes")
    print(f"gpu {gpu_s:7.1f} s  OOF accuracy {gpu_acc:.3f}")
    print(f"cpu {cpu_s:7.1f} s  OOF accuracy {cpu_acc:.3f}")
    print(f"speed-up cpu/gpu {cpu_s / gpu_s:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
