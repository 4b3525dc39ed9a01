"""Side-by-side benchmark of the image models on real Quick, Draw! drawings: detection quality
(F1, recall) and out-of-fold accuracy against cold time, with uniform and class-conditional flips.

Each scenario runs its models in order, each a whole ``pytest --label-quality`` process, in one
cache: ``ensemble`` first, cold, which trains both of its members; then ``hog_boosting`` and
``small_cnn`` reuse its members' folds (their own run has nothing left to train). Training
seconds come from each model's per-fold timings (kept in the cache), so every model gets a
cost figure from one training. The script prints one table: wall time of the process, training
seconds, peak memory, out-of-fold accuracy, the estimate, the band between cleanlab's two
estimators, the canary, and precision/recall/F1 against the injected flips, and the ratios
against today's default (``hog_boosting``).

    python benchmarks/model_quality.py                         # cat+dog scenarios
    python benchmarks/model_quality.py --scenarios all14 --models small_cnn

Scenarios: ``catdog`` (4,000 drawings, the 3,000 cats and 1,000 dogs of the shared data, 10%
uniform flips), ``catdog-pairs`` (the same, 10% of the dogs flipped to cat: class-conditional
noise), ``all14`` (all 26,000 drawings of the 14 classes, no injected flips: out-of-fold
accuracy), ``all14-pairs`` (the 26,000 with 10% of each named class flipped to its look-alike:
cat/dog, lion/bear, duck/frog, sheep/rabbit, monkey/bear).

Reads ``../shared/data/quickdraw/numpy_bitmap`` (or ``--data DIR``) and exits with a message when
the drawings are absent. Record ``uptime`` beside the figures: on a shared machine they stretch.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

from common import drawings_folder, gate_process

MODELS = ["ensemble", "hog_boosting", "small_cnn"]
ALL14 = [
    "apple", "bear", "bicycle", "cat", "diamond", "dog", "duck",
    "eye", "fish", "frog", "lion", "monkey", "rabbit", "sheep",
]  # fmt: skip
LOOK_ALIKES = (
    "{cat: dog, dog: cat, lion: bear, bear: lion, duck: frog, frog: duck, sheep: rabbit,"
    " rabbit: sheep, monkey: bear}"
)
SCENARIOS = {
    "catdog": ("[cat, dog]", "{rate: 0.1, seed: 0}"),
    "catdog-pairs": ("[cat, dog]", "{rate: 0.1, seed: 0, pairs: {dog: cat}}"),
    "all14": (f"[{', '.join(ALL14)}]", None),
    "all14-pairs": (f"[{', '.join(ALL14)}]", f"{{rate: 0.1, seed: 0, pairs: {LOOK_ALIKES}}}"),
}
SPEC = """\
datasets:
  - name: {name}
    source:
      format: quickdraw
      dir: {data}
      classes: {classes}
{flip}    model: {{name: {model}}}
    cv: {{folds: 5, seed: 0}}
    gate: {{max_noise_rate: 1.0}}
"""


def run(workdir: Path, scenario: str, model: str, data: Path) -> dict[str, object]:
    """A pytest process on one scenario and model, then a warm one; their figures. The models
    of a scenario share its folder, so its cache."""
    folder = workdir / scenario
    folder.mkdir(exist_ok=True)
    classes, flip = SCENARIOS[scenario]
    (folder / "bench.labelquality.yaml").write_text(  # one spec at a time
        SPEC.format(
            name=f"{scenario}-{model}",
            data=data,
            classes=classes,
            flip=f"      flip: {flip}\n" if flip else "",
            model=model,
        )
    )
    figures: dict[str, object] = {"scenario": scenario, "model": model}
    for phase in ("cold", "warm"):
        code, wall, peak_mb, output = gate_process(folder)
        if code not in (0, 1):
            sys.exit(f"{scenario} {model} {phase} failed (exit {code}):\n{output[-4000:]}")
        figures[f"{phase}_s"] = wall
        figures[f"{phase}_mb"] = peak_mb
        result = json.loads((folder / "results.json").read_text())["datasets"][0]
        if phase == "cold":  # a warm run trains nothing and records no fold times
            figures["train_s"] = sum(result["timings"]["fold_seconds"])
    noise = result["noise"]
    figures.update(
        oof=result["oof_accuracy"],
        estimate=noise["rate"],
        band=noise["band"],
        canary=noise["canary"],
        injected=result.get("injected"),
    )
    return figures


def main() -> int:
    args = drawings_folder(
        __doc__ or "",
        ("--models", {"nargs": "+", "default": MODELS, "help": "models to compare"}),
        (
            "--scenarios",
            {"nargs": "+", "default": ["catdog", "catdog-pairs"], "choices": list(SCENARIOS)},
        ),
    )
    if args.data is None:
        return 0
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for scenario in args.scenarios:
            for model in args.models:
                print(f"running {scenario} with {model} ...", flush=True)
                rows.append(run(Path(tmp), scenario, model, args.data.resolve()))
    load = os.getloadavg()
    print(f"\n{os.cpu_count()} cores; load average at the end {load[0]:.1f} {load[1]:.1f}\n")
    print(
        f"{'scenario':13} {'model':13} {'run s':>7} {'train s':>7} {'warm s':>6} {'peak MB':>7}"
        f" {'OOF acc':>7}"
        f" {'estimate':>8} {'band':>11} {'canary':>8} {'P':>5} {'R':>5} {'F1':>5}"
    )
    for r in rows:
        inj = r["injected"] or {}
        canary = r["canary"]
        found = f"{canary['recovered']}/{canary['injected']}" if canary.get("injected") else "-"
        band = r["band"]
        print(
            f"{r['scenario']:13} {r['model']:13} {r['cold_s']:7.1f} {r['train_s']:7.1f}"
            f" {r['warm_s']:6.1f}"
            f" {r['cold_mb']:7.0f} {r['oof']:7.3f} {r['estimate']:8.3f}"
            f" {band[0]:5.3f}-{band[1]:5.3f} {found:>8}"
            f" {inj.get('precision', float('nan')):5.2f} {inj.get('recall', float('nan')):5.2f}"
            f" {inj.get('f1', float('nan')):5.2f}"
        )
    for scenario in args.scenarios:
        base = next(
            (r for r in rows if r["scenario"] == scenario and r["model"] == "hog_boosting"), None
        )
        if base is None:
            continue
        for r in rows:
            if r["scenario"] == scenario and r is not base:
                print(
                    f"{scenario}: {r['model']} / hog_boosting: training time"
                    f" {float(r['train_s']) / float(base['train_s']):.2f}x, OOF accuracy"
                    f" {float(r['oof']) - float(base['oof']):+.3f}"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
