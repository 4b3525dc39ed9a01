"""Frozen pretrained encoders against today's defaults, measured side by side in one run.

1. CIFAR-10 subset (5,000 JPEG photos, 10 classes) with 10% of the files moved to a wrong class
   folder: the default with the encoders extra (``encoder_linear`` on EfficientNet-Lite0) and
   the default without it (``small_cnn`` with the keras extra), each a cold whole pytest
   process: wall time, peak memory, out-of-fold accuracy against the true labels, precision,
   recall and F1 of the flagged files against the moved ones. Then the encoder default warm,
   and with 1% of the files moved to another class folder (incremental; a move changes no
   bytes, so nothing is encoded).
2. 800 clean CIFAR photos of 4 classes (airplane, automobile, frog, ship): the estimated noise
   of the encoder default and of the default without the extra (``hog_boosting`` below 5
   classes).
3. AG News (7,600 news items, 4 classes) with 10% uniform flips: ``tfidf_encoder`` (the text
   default with the extra) and ``tfidf_linear`` (without it), cold and warm.

Caches and copies live in a temporary folder, never in the shared data.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from common import DEV_ONLY_PLUGINS, measured

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
IMAGES = """\
datasets:
  - name: {name}
    source: {{format: images, dir: {folder}}}
    model: {{name: {model}}}
    detection: {{ranked_by: {ranked_by}}}
    gate: {{max_noise_rate: 1.0}}
"""
TEXTS = """\
datasets:
  - name: {name}
    source:
      format: text
      path: {path}
      header: false
      columns: [label, title, description]
      text: [title, description]
      label: label
      {flip}
    model: {{name: {model}}}
    detection: {{ranked_by: {ranked_by}}}
    gate: {{max_noise_rate: 1.0}}
"""
DEFAULT = "given_vs_rival"  # the default ranking
#: The default ranking of a cold run, then cleanlab's two on the same folds (nothing retrained).
RANKINGS = (
    (DEFAULT, "", "cold"),
    ("normalized_margin", "-nm", "same folds, normalized_margin"),
    ("self_confidence", "-sc", "same folds, self_confidence"),
)


def cache_of(work: Path, name: str) -> Path:
    """Each model's own cache (``news-tfidf_linear-sc`` shares ``news-tfidf_linear``'s), so that
    no model's cold run finds another's folds."""
    return work / "cache" / name.removesuffix("-sc").removesuffix("-nm")


def run(work: Path, name: str, label: str) -> dict[str, Any]:
    """One whole pytest process on ``name.labelquality.yaml``: its figures and its result."""
    status, wall, peak, out = measured(
        [
            sys.executable, "-m", "pytest", "--label-quality", "-q", "-p", "no:randomly",
            *DEV_ONLY_PLUGINS, f"{name}.labelquality.yaml",
            "--label-quality-cache-dir", str(cache_of(work, name)),
        ],
        cwd=work,
    )  # fmt: skip
    if status not in (0, 1):
        print(out[-3000:])
        raise SystemExit(f"{label}: pytest exited {status}")
    result = json.loads((work / "label-quality-report" / "label-quality.json").read_text())
    data: dict[str, Any] = result["datasets"][0]
    embedded = data["cache"].get("embeddings") or {}
    print(
        f"  {label}: {wall:.1f} s, {peak:.0f} MiB peak, cache {data['cache']['status']},"
        f" encoded {embedded.get('encoded', 0)}, estimate {data['noise']['rate']:.1%}"
    )
    return data


def suggested(cache: Path, data: dict[str, Any]) -> Any:
    """Each item's suggested class (the out-of-fold argmax), from the run's detection entry."""
    from pytest_labelquality.cache import ArrayCache

    entry = ArrayCache(cache).load(data["cache"]["key"])
    assert entry is not None, "the run's detection entry is missing"
    return entry["suggested"]


def ids_of(work: Path, name: str) -> list[str]:
    """The ids of ``name``'s items in the order the gate holds them."""
    from pytest_labelquality.sources import load_dataset
    from pytest_labelquality.spec import load_spec

    spec = load_spec(work / f"{name}.labelquality.yaml")[0]
    return [str(i) for i in load_dataset(spec, cache_dir=cache_of(work, name)).ids]


def scores(flagged: set[str], wrong: set[str]) -> str:
    hits = len(flagged & wrong)
    precision = hits / len(flagged) if flagged else 0.0
    recall = hits / len(wrong) if wrong else 0.0
    f1 = 2 * precision * recall / ((precision + recall) or 1)
    return f"flagged {len(flagged)}: precision {precision:.2f}, recall {recall:.2f}, F1 {f1:.2f}"


def cifar(work: Path, source: Path, models: list[str]) -> None:
    import numpy as np

    rng = random.Random(0)
    tree = work / "cifar"
    shutil.copytree(source, tree, ignore=shutil.ignore_patterns("README.md", "SHA256SUMS"))
    classes = sorted(p.name for p in tree.iterdir() if p.is_dir())
    files = sorted(tree.glob("*/*.jpg"))
    truth = {f.relative_to(tree).as_posix(): f.parent.name for f in files}
    moved: dict[str, str] = {}
    for f in rng.sample(files, len(files) // 10):
        target = rng.choice([c for c in classes if c != f.parent.name])
        new = tree / target / f"flip-{f.parent.name}-{f.name}"
        f.rename(new)
        moved[new.relative_to(tree).as_posix()] = truth.pop(f.relative_to(tree).as_posix())
    truth.update(moved)
    print(f"CIFAR-10 subset: {len(files)} JPEGs, {len(moved)} moved to a wrong class folder")
    for model in models:
        for ranked_by, suffix, label in RANKINGS:
            name = f"cifar-{model}{suffix}"
            spec = IMAGES.format(name=name, folder="cifar", model=model, ranked_by=ranked_by)
            (work / f"{name}.labelquality.yaml").write_text(spec)
            data = run(work, name, f"{model} {label}" if not suffix else label)
            ids = ids_of(work, name)
            true = np.array([classes.index(truth[i]) for i in ids])
            accuracy = float(np.mean(suggested(cache_of(work, name), data) == true))
            flagged = {f["id"] for f in data["flagged"]}
            found = scores(flagged, set(moved))
            print(f"    out-of-fold accuracy against the true labels {accuracy:.3f}; {found}")
    default = f"cifar-{models[0]}"
    run(work, default, f"{models[0]} warm")
    current = sorted(tree.glob("*/*.jpg"))
    for f in rng.sample(current, len(current) // 100):
        target = rng.choice([c for c in classes if c != f.parent.name])
        f.rename(tree / target / f"pr-{f.name}")
    data = run(work, default, f"{models[0]}, 1% of the files moved")
    print(f"    incremental: {data['cache']['incremental']}")


def clean(work: Path, source: Path, models: list[str]) -> None:
    tree = work / "clean"
    for c in ("airplane", "automobile", "frog", "ship"):
        (tree / c).mkdir(parents=True)
        for f in sorted((source / c).glob("*.jpg"))[:200]:
            shutil.copy(f, tree / c / f.name)
    print("800 clean CIFAR photos of 4 classes:")
    for model in models:
        name = f"clean-{model}"
        (work / f"{name}.labelquality.yaml").write_text(
            IMAGES.format(name=name, folder="clean", model=model, ranked_by=DEFAULT)
        )
        data = run(work, name, f"{model} cold")
        print(f"    estimated noise {data['noise']['rate']:.1%} ({data['noise']['count']})")


def news(work: Path, path: Path, models: list[str]) -> None:
    print("AG News, 7,600 texts, 10% uniform flips:")
    for model in models:
        for ranked_by, suffix, label in RANKINGS:
            name = f"news-{model}{suffix}"
            flip = "flip: {rate: 0.1, seed: 0}"
            spec = TEXTS.format(name=name, path=path, model=model, flip=flip, ranked_by=ranked_by)
            (work / f"{name}.labelquality.yaml").write_text(spec)
            data = run(work, name, f"{model} {label}" if not suffix else label)
            injected = data["injected"]
            blend = data["model"].get("blend")
            print(
                f"    precision {injected['precision']:.3f}, recall {injected['recall']:.3f},"
                f" out-of-fold accuracy against the given labels {data['oof_accuracy']:.3f}"
                + (f"; chose {blend['chosen']} of {blend['accuracy']}" if blend else "")
            )
        run(work, f"news-{model}", f"{model} warm")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cifar", type=Path, default=SHARED / "cifar10_train_subset")
    parser.add_argument("--news", type=Path, default=SHARED / "ag_news" / "test.csv")
    parser.add_argument("--image-models", default="encoder_linear,small_cnn")
    parser.add_argument("--clean-models", default="encoder_linear,hog_boosting")
    parser.add_argument("--text-models", default="tfidf_encoder,tfidf_linear")
    parser.add_argument("--skip", choices=["cifar", "clean", "news"], action="append", default=[])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lq-encoders-") as tmp:
        work = Path(tmp)
        have_cifar = (args.cifar / "cat").is_dir()
        if not have_cifar:
            print(f"no CIFAR-10 subset at {args.cifar}; photos skipped")
        if have_cifar and "cifar" not in args.skip:
            cifar(work, args.cifar, args.image_models.split(","))
        if have_cifar and "clean" not in args.skip:
            clean(work, args.cifar, args.clean_models.split(","))
        if "news" in args.skip:
            return
        if args.news.is_file():
            news(work, args.news, args.text_models.split(","))
        else:
            print(f"no AG News test set at {args.news}; texts skipped")


if __name__ == "__main__":
    main()
