"""Image folders as people keep them, measured side by side in one run.

1. CIFAR-10 subset (5,000 JPEG photos, a folder per class) copied to a temporary folder with 10% of
   the files moved to a wrong class folder (the flips, on disk): the default image model for 10
   classes (``small_cnn``) and ``hog_boosting``, each a cold whole pytest process (wall time, peak
   memory, out-of-fold accuracy, and precision, recall and F1 of the flagged files against the
   moved ones); then the default warm (images decoded: 0 expected), and 1% of the files moved to
   another class folder, re-checked incrementally (each moved file keeps its prediction:
   relabelled, none re-scored).
2. 50,000 PNGs written from the Quick, Draw! drawings (14 classes): loading alone, cold and warm,
   each a child process with its wall time, peak memory and files decoded.

Caches and copies live in a temporary folder, never in the shared data.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import textwrap
from pathlib import Path

from common import DEV_ONLY_PLUGINS, measured

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SPEC = """\
datasets:
  - name: cifar-{model}
    source: {{format: images, dir: cifar}}
    model: {{name: {model}}}
    gate: {{max_noise_rate: 1.0}}
"""


def run_pytest(work: Path, spec: str, label: str) -> dict[str, object]:
    status, wall, peak, out = measured(
        [
            sys.executable,
            "-m",
            "pytest",
            "--label-quality",
            "-q",
            "-p",
            "no:randomly",
            *DEV_ONLY_PLUGINS,
            spec,
            "--label-quality-cache-dir",
            str(work / "cache"),
        ],
        cwd=work,
    )
    if status not in (0, 1):
        print(out[-3000:])
        raise SystemExit(f"{label}: pytest exited {status}")
    result = json.loads((work / "label-quality-report" / "label-quality.json").read_text())
    data = result["datasets"][0]
    print(
        f"  {label}: {wall:.1f} s, {peak:.0f} MiB peak, cache {data['cache']['status']},"
        f" decoded {data['source'].get('decoded')}"
    )
    return {"wall": wall, "peak": peak, "data": data}


def cifar(work: Path, source: Path, models: list[str]) -> None:
    rng = random.Random(0)
    tree = work / "cifar"
    shutil.copytree(source, tree, ignore=shutil.ignore_patterns("README.md", "SHA256SUMS"))
    classes = sorted(p.name for p in tree.iterdir() if p.is_dir())
    files = sorted(tree.glob("*/*.jpg"))
    truth = {f.relative_to(tree).as_posix(): f.parent.name for f in files}
    moved: dict[str, str] = {}
    for f in rng.sample(files, len(files) // 10):  # 10% flips, on disk
        target = rng.choice([c for c in classes if c != f.parent.name])
        new = tree / target / f"flip-{f.parent.name}-{f.name}"
        f.rename(new)
        moved[new.relative_to(tree).as_posix()] = truth.pop(f.relative_to(tree).as_posix())
    truth.update(moved)
    print(f"CIFAR-10 subset: {len(files)} JPEGs, {len(moved)} moved to a wrong class folder")
    for model in models:
        (work / f"{model}.labelquality.yaml").write_text(SPEC.format(model=model))
        cold = run_pytest(work, f"{model}.labelquality.yaml", f"{model} cold")
        report(cold["data"], set(moved))  # type: ignore[arg-type]
    default = f"{models[0]}.labelquality.yaml"
    run_pytest(work, default, f"{models[0]} warm")
    current = sorted(tree.glob("*/*.jpg"))
    relabel = rng.sample(current, len(current) // 100)
    for f in relabel:
        target = rng.choice([c for c in classes if c != f.parent.name])
        f.rename(tree / target / f"pr-{f.name}")
    pr = run_pytest(work, default, f"{models[0]}, {len(relabel)} files moved (1%)")
    inc = pr["data"]["cache"]["incremental"] or {}  # type: ignore[index]
    kept = inc.get("relabelled") == len(relabel) and inc.get("scored") == 0
    print(
        f"    incremental: {inc.get('relabelled')} relabelled, {inc.get('scored')} re-scored;"
        f" each moved file kept its prediction: {kept}"
    )


def report(data: dict[str, object], moved: set[str]) -> None:
    flagged = {f["id"] for f in data["flagged"]}  # type: ignore[attr-defined]
    hits = len(flagged & moved)
    precision = hits / len(flagged) if flagged else 0.0
    recall = hits / len(moved)
    print(
        f"    out-of-fold accuracy against the given labels {data['oof_accuracy']:.3f};"
        f" flagged {len(flagged)}: precision {precision:.2f}, recall {recall:.2f},"
        f" F1 {2 * precision * recall / ((precision + recall) or 1):.2f}"
    )


def quickdraw_pngs(work: Path, source: Path, total: int) -> None:
    import numpy as np
    from PIL import Image

    arrays = sorted(source.glob("*.npy"))
    drawings = [np.load(path, mmap_mode="r") for path in arrays]
    root = work / "drawings"
    for path in arrays:
        (root / path.stem).mkdir(parents=True)
    written = 0
    # round-robin over the classes; past a class's own drawings, its mirror images, then
    # drawings shifted by a pixel (each PNG distinct)
    while written < total:
        c, i = written % len(arrays), written // len(arrays)
        rows = drawings[c]
        image = np.asarray(rows[i % len(rows)]).reshape(28, 28)
        variant = i // len(rows)
        if variant % 2:
            image = image[:, ::-1]
        if variant >= 2:
            image = np.roll(image, variant // 2, axis=1)
        name = f"{i:05d}.png"
        Image.fromarray(np.ascontiguousarray(image)).save(root / arrays[c].stem / name)
        written += 1
    print(f"{written} PNGs written from {len(arrays)} Quick, Draw! classes (with mirror images)")
    probe = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from pytest_labelquality.sources import load_dataset
        from pytest_labelquality.spec import load_spec
        spec = load_spec(Path({str(work / "d.labelquality.yaml")!r}))[0]
        start = time.perf_counter()
        data = load_dataset(spec, cache_dir=Path({str(work / "cache")!r}))
        print(len(data), data.stats["decoded"], f"{{time.perf_counter() - start:.1f}}")
    """)
    (work / "d.labelquality.yaml").write_text(
        "datasets:\n  - name: d\n    source: {format: images, dir: drawings}\n"
        "    gate: {max_noise_rate: 1}\n"
    )
    for label in ("cold", "warm"):
        _, wall, peak, out = measured([sys.executable, "-c", probe], cwd=work)
        items, decoded, inner = out.split()[-3:]
        print(
            f"  load {label}: {wall:.1f} s process ({inner} s loading), {peak:.0f} MiB peak,"
            f" {items} items, {decoded} decoded"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cifar", type=Path, default=SHARED / "cifar10_train_subset")
    parser.add_argument("--quickdraw", type=Path, default=SHARED / "quickdraw" / "numpy_bitmap")
    parser.add_argument("--models", default="small_cnn,hog_boosting")
    parser.add_argument("--pngs", type=int, default=50_000)
    parser.add_argument("--skip", choices=["cifar", "pngs"], action="append", default=[])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lq-images-") as tmp:
        work = Path(tmp)
        if "cifar" in args.skip:
            pass
        elif (args.cifar / "cat").is_dir():
            cifar(work, args.cifar, args.models.split(","))
        else:
            print(f"no CIFAR-10 subset at {args.cifar}; skipped")
        if "pngs" in args.skip:
            pass
        elif list(args.quickdraw.glob("*.npy")):
            quickdraw_pngs(work, args.quickdraw, args.pngs)
        else:
            print(f"no Quick, Draw! drawings at {args.quickdraw}; skipped")


if __name__ == "__main__":
    main()
