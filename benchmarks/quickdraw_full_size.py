"""The gate at the walkthrough's full size: 275,361 drawings (123,202 cats, 152,159 dogs).

The set is built from the 4,000 shared drawings by random shifts (up to 2 pixels) and mirror
images, in the full task's class ratio, and written as an ``.npz`` with item ids (so that a
relabel keeps its id). It serves time and memory only: copies of one drawing in different folds
make its noise estimate meaningless. Each step is a whole ``pytest --label-quality`` process,
measured for wall time and peak resident memory:

1. cold: an empty cache, every fold trained;
2. warm: the same data again;
3. a pull request relabelling 1% of the drawings, with the base's cache present;
4. a pull request adding 1% new drawings, with the base's cache present.

    python benchmarks/quickdraw_full_size.py            # about 5 minutes on 2 cores
    python benchmarks/quickdraw_full_size.py --mirror   # predictions averaged with mirror images

The ``.npz`` spec has ``hog_boosting``'s npz default, no mirror images; ``--mirror`` sets
``mirror: true`` as a ``quickdraw`` source would (at this size mirror images only average the
predictions: training sets above 50,000 items are not doubled).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from common import drawings_folder, measured

FULL = {"cat": 123_202, "dog": 152_159}
SPEC = """\
datasets:
  - name: quickdraw-full
    source: {{format: npz, path: {data}, ids: ids, classes: [cat, dog], shape: [28, 28]}}
    model: {{mirror: {mirror}}}
    gate: {{max_noise_rate: 1.0}}
"""


def augmented(source: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` drawings made from ``source`` by shifts of up to 2 pixels and mirroring."""
    out = np.empty((count, 784), dtype=np.uint8)
    images = source.reshape(-1, 28, 28)
    for start in range(0, count, 20_000):
        n = min(20_000, count - start)
        picked = images[rng.integers(0, len(images), n)]
        mirror = rng.random(n) < 0.5
        picked[mirror] = picked[mirror][:, :, ::-1]
        dy, dx = rng.integers(-2, 3, 2)
        out[start : start + n] = np.roll(picked, (dy, dx), axis=(1, 2)).reshape(n, 784)
    return out


def main() -> int:
    mirror = {"action": "store_true", "help": "model.mirror: true, as for a quickdraw source"}
    args = drawings_folder(__doc__ or "", ("--mirror", mirror))
    if args.data is None:
        return 0
    rng = np.random.default_rng(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = work / "drawings.npz"
        parts = [augmented(np.load(args.data / f"{c}.npy"), n, rng) for c, n in FULL.items()]
        x = np.concatenate(parts)
        y = np.repeat([0, 1], list(FULL.values()))
        ids = np.array([f"d{i}" for i in range(len(y))])
        np.savez(data, x=x, y=y, ids=ids)
        (work / "full.labelquality.yaml").write_text(
            SPEC.format(data=data, mirror=str(args.mirror).lower())
        )
        command = [
            sys.executable, "-m", "pytest", "--label-quality", "-p", "no:cacheprovider",
            f"--label-quality-cache-dir={work / 'cache'}",
            f"--label-quality-json={work / 'results.json'}", "-q", str(work),
        ]  # fmt: skip

        def step(name: str) -> None:
            code, wall, peak, output = measured(command, cwd=work)
            if code not in (0, 1):
                sys.exit(f"{name} failed (exit {code}):\n{output[-4000:]}")
            result = json.loads((work / "results.json").read_text())["datasets"][0]
            rows.append((name, wall, peak, result["cache"]["status"], result["noise"]["rate"]))
            print(f"{name}: {wall:.1f}s, peak {peak:.0f} MiB, cache {result['cache']['status']}")
            for line in output.splitlines():
                if "[label-quality]" in line:
                    print(f"    {line}")

        step("cold")
        step("warm")
        share = round(0.01 * len(y))
        relabel = rng.choice(len(y), size=share, replace=False)
        y[relabel] = 1 - y[relabel]
        np.savez(data, x=x, y=y, ids=ids)
        step("PR relabelling 1%")
        extra = augmented(np.load(args.data / "dog.npy"), share, rng)
        more_ids = np.array([f"new{i}" for i in range(share)])
        np.savez(
            data,
            x=np.concatenate([x, extra]),
            y=np.concatenate([y, np.ones(share, dtype=y.dtype)]),
            ids=np.concatenate([ids, more_ids]),
        )
        step("PR adding 1%")
    print("\nstep                  wall s  peak MiB  cache        estimate")
    for name, wall, peak, status, rate in rows:
        print(f"{name:20} {wall:7.1f} {peak:9.0f}  {status:11} {rate:9.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
