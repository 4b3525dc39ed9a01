"""Side-by-side benchmark on Quick, Draw! cat vs dog: the walkthrough's pipeline against the gate.

Each pipeline runs as a whole ``pytest --label-quality`` process on a spec with 10% injected
flips, cold (an empty cache) and then warm, and the script prints one table: wall time, peak
resident memory, the noise estimate against the injected rate, precision/recall/F1 of the flagged
items against the flipped ones, and the ratios between the pipelines.

    python benchmarks/quickdraw_gate.py                   # all three pipelines (~6 min)
    python benchmarks/quickdraw_gate.py --only default    # just the gate's default (~20 s)

Pipelines: ``walkthrough_cnn`` (the original notebook's CNN, one epoch), ``cnn`` (the built-in
Keras CNN) and ``default`` (a spec that names no model: ``hog_boosting`` with mirror images,
Quick, Draw!'s default). The ratios compare the walkthrough with the default.

Reads ``../shared/data/quickdraw/numpy_bitmap`` (or ``--data DIR``) and exits with a message when
the drawings are absent.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
from pathlib import Path

from common import drawings_folder, gate_process

FLIP_RATE = 0.10
PIPELINES = ["walkthrough_cnn", "cnn", "default"]

SPEC = """\
datasets:
  - name: {name}
    source:
      format: quickdraw
      dir: {data}
      classes: [cat, dog]
      flip: {{rate: {rate}, seed: 0}}
{model}    cv: {{folds: 5, seed: 0}}
    gate: {{max_noise_rate: 1.0}}
"""


def run_gate(workdir: Path, model: str, data: Path) -> dict[str, float | str]:
    """One cold and one warm ``pytest --label-quality`` process; their figures."""
    spec_dir = workdir / model
    spec_dir.mkdir()
    (spec_dir / "bench.labelquality.yaml").write_text(
        SPEC.format(
            name=f"quickdraw-{model}",
            data=data,
            rate=FLIP_RATE,
            model="" if model == "default" else f"    model: {{name: {model}}}\n",
        )
    )
    figures: dict[str, float | str] = {"pipeline": model}
    for phase in ("cold", "warm"):
        code, wall, peak_mb, output = gate_process(spec_dir)
        if code not in (0, 1):
            sys.exit(f"{model} {phase} run failed (exit {code}):\n{output[-4000:]}")
        figures[f"{phase}_s"] = wall
        figures[f"{phase}_peak_mb"] = peak_mb
    result = json.loads((spec_dir / "results.json").read_text())["datasets"][0]
    injected = result["injected"]
    figures.update(
        estimate=result["noise"]["rate"],
        low=result["noise"]["interval"][0],
        high=result["noise"]["interval"][1],
        precision=injected["precision"],
        recall=injected["recall"],
        f1=injected["f1"],
        oof_accuracy=result["oof_accuracy"],
        cache=result["cache"]["status"],
    )
    return figures


def main() -> int:
    only = {"choices": PIPELINES, "help": "run a single pipeline"}
    args = drawings_folder(__doc__ or "", ("--only", only))
    if args.data is None:
        return 0
    models = [args.only] if args.only else PIPELINES
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in models:
            print(f"running {model} ...", flush=True)
            rows.append(run_gate(Path(tmp), model, args.data.resolve()))
    print(
        f"\nQuick, Draw! cat+dog, 4000 drawings, {FLIP_RATE:.0%} injected flips, 5 folds;"
        f" {platform.processor() or platform.machine()}, {os.cpu_count()} cores\n"
    )
    header = (
        f"{'pipeline':16} {'cold s':>7} {'warm s':>7} {'peak MB':>8} {'estimate':>9}"
        f" {'95% interval':>14} {'precision':>9} {'recall':>7} {'F1':>6} {'OOF acc':>8}"
    )
    print(header)
    for r in rows:
        print(
            f"{r['pipeline']:16} {r['cold_s']:7.1f} {r['warm_s']:7.2f} {r['cold_peak_mb']:8.0f}"
            f" {r['estimate']:9.3f} {r['low']:6.3f}-{r['high']:.3f} {r['precision']:9.3f}"
            f" {r['recall']:7.3f} {r['f1']:6.3f} {r['oof_accuracy']:8.3f}"
        )
    if len(rows) == len(PIPELINES):
        slow, fast = rows[0], rows[-1]

        def ratio(key: str, top: dict[str, float | str], bottom: dict[str, float | str]) -> float:
            return float(top[key]) / max(float(bottom[key]), 1e-9)

        print(
            f"\nratios: cold time walkthrough/default {ratio('cold_s', slow, fast):.1f}x,"
            f" peak memory walkthrough/default {ratio('cold_peak_mb', slow, fast):.2f}x,"
            f" F1 default/walkthrough {ratio('f1', fast, slow):.2f}x"
        )
    print(f"injected rate {FLIP_RATE:.3f}; 'warm' is a whole pytest process on an unchanged spec")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
