"""The built-in encoders on a GPU against the CPU, side by side in one run.

Encodes the same CIFAR photos with EfficientNet-Lite0 and the same AG News texts with MiniLM-L6,
once on onnxruntime's CUDA provider and once with ``LABEL_QUALITY_DEVICE=cpu``, each in a fresh
process (so each loads its own session), and prints the seconds, the speed-up and how far the two
devices' vectors lie apart (the embedding cache key leaves the device out: the vectors must
agree within tolerance for that to be honest). Without the CUDA provider (``onnxruntime-gpu``)
it measures the CPU only and says so.

    python benchmarks/encoder_gpu.py [--photos 2000] [--texts 2000]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
CIFAR = SHARED / "cifar10_train_subset"
AG_NEWS = SHARED / "ag_news" / "test.csv"

#: Run in a child: encode, save the vectors, print the seconds and the provider used.
CHILD = """
import json, sys, time
import numpy as np
from pathlib import Path
from pytest_labelquality.encoders import load_encoder
kind, items_file, out = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
if kind == "image":
    from pytest_labelquality.formats.images import FileImages
    encoder = load_encoder("efficientnet_lite0", kind="image")
    items = FileImages(tuple(items_file.read_text().splitlines()), encoder.resolution)
    batches = [np.stack(items[list(range(s, min(s + 256, len(items))))])
               for s in range(0, len(items), 256)]
else:
    encoder = load_encoder("minilm_l6", kind="text")
    batches = [np.array(json.loads(items_file.read_text()), dtype=object)]
encoder.encode(batches[0][:8])  # the session is built and warmed before the clock starts
start = time.perf_counter()
vectors = np.concatenate([encoder.encode(b) for b in batches])
seconds = time.perf_counter() - start
np.save(out, vectors)
providers = encoder.session().get_providers()
print(json.dumps({"seconds": seconds, "provider": providers[0], "items": len(vectors)}))
"""


def cuda_provider() -> bool:
    """Whether onnxruntime offers the CUDA provider (asked in a child: it loads CUDA)."""
    probe = "import onnxruntime as o; print('CUDAExecutionProvider' in o.get_available_providers())"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    return out.stdout.strip() == "True"


def encode(kind: str, items: Path, out: Path, device: str) -> dict[str, object]:
    env = {**os.environ, "LABEL_QUALITY_DEVICE": device}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, kind, str(items), str(out)],
        capture_output=True,
        text=True,
        env=env,
    )
    if done.returncode:
        sys.exit(f"{kind} on {device} failed:\n{done.stderr[-3000:]}")
    figures: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--photos", type=int, default=2000)
    parser.add_argument("--texts", type=int, default=2000)
    args = parser.parse_args()
    import numpy as np

    gpu = cuda_provider()
    if not gpu:
        print("onnxruntime has no CUDA provider on this machine: the CPU is measured alone")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        jobs = []
        if CIFAR.is_dir():
            files = sorted(str(p) for p in CIFAR.rglob("*.jpg"))[: args.photos]
            (work / "photos.txt").write_text("\n".join(files))
            jobs.append(("image", work / "photos.txt", f"{len(files)} CIFAR photos, Lite0"))
        if AG_NEWS.is_file():
            with AG_NEWS.open(encoding="utf-8", newline="") as handle:
                texts = [f"{t} {d}" for _, t, d in csv.reader(handle)][: args.texts]
            (work / "texts.json").write_text(json.dumps(texts))
            jobs.append(("text", work / "texts.json", f"{len(texts)} AG News texts, MiniLM-L6"))
        if not jobs:
            print(f"no shared data under {SHARED}: nothing to measure")
            return 0
        for kind, items, label in jobs:
            cpu = encode(kind, items, work / f"{kind}-cpu.npy", "cpu")
            line = f"{label}: cpu {cpu['seconds']:.1f} s ({cpu['provider']})"
            if gpu:
                on_gpu = encode(kind, items, work / f"{kind}-gpu.npy", "auto")
                a, b = np.load(work / f"{kind}-cpu.npy"), np.load(work / f"{kind}-gpu.npy")
                cosine = np.sum(a * b, 1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
                line += (
                    f", gpu {on_gpu['seconds']:.1f} s ({on_gpu['provider']}),"
                    f" speed-up {float(cpu['seconds']) / float(on_gpu['seconds']):.1f}x;"
                    f" vectors: max |cpu - gpu| {np.abs(a - b).max():.2e},"
                    f" lowest cosine {cosine.min():.6f}"
                )
            print(line, flush=True)
    print(
        f"load average after the run: {os.getloadavg()[0]:.1f} (2-core machine: {os.cpu_count()})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
