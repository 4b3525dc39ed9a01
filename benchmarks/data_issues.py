"""Duplicates, leaks and outliers: precision and recall of each kind on real photos with known
defects added, and the search's time and memory at a million items.

    python benchmarks/data_issues.py            # all three parts
    python benchmarks/data_issues.py --scale    # the million-item search only
    python benchmarks/data_issues.py --skip-scale    # photos and news only

Photos: the CIFAR subset in ../shared/data (5,000 real JPEGs) under EfficientNet-Lite0 (extra
``encoders``), with 50 exact copies under another label, 50 near copies (a third re-encoded at
JPEG quality 75, a third resized by 10%, a third mirrored), 50 copies of train photos put in a
test split (20% of the photos are test), and 50 outliers (15 blank, 15 noise, 20 Quick, Draw!
drawings where present, else more noise). News: AG News's 7,600 items under MiniLM-L6 (extras
``encoders`` and ``languages``), with 50 copies under another topic, 50 re-spaced or upper-cased
copies, 50 train items copied into test, and 50 texts in five other languages. Precision counts
the injected defects only: real duplicates of the data count against it. Scale: 1,000,000
synthetic 384-d vectors in 1,000 clusters with 500 planted near copies: the whole search, then
a change's 1% of items searched against a kept partition. Each run prints its figures side by
side; state the machine's load.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytest_labelquality import knn
from pytest_labelquality.data_issues import NEAR_SIMILARITY, find, leaks

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
PHOTOS = DATA / "cifar10_train_subset"
DRAWINGS = DATA / "quickdraw" / "numpy_bitmap"
EACH = 50


def _pr(found: set[object], truth: set[object]) -> str:
    hit = len(found & truth)
    precision = hit / len(found) if found else 0.0
    recall = hit / len(truth)
    return (
        f"precision {precision:.2f} recall {recall:.2f} ({hit} of {len(truth)}, {len(found)} found)"
    )


def build_photos() -> dict[str, Any]:
    """The photos with their defects: images, labels, content hashes, splits, and the truth."""
    from PIL import Image, ImageOps

    files = sorted(PHOTOS.glob("*/*.jpg"))
    classes = sorted({f.parent.name for f in files})
    images = [np.asarray(Image.open(f).convert("RGB")) for f in files]
    labels = [classes.index(f.parent.name) for f in files]
    content = [hashlib.sha256(f.read_bytes()).hexdigest() for f in files]
    rng = np.random.default_rng(0)
    n = len(images)
    split = np.where(rng.random(n) < 0.8, "train", "test").tolist()
    truth: dict[str, set[object]] = {k: set() for k in ("conflicting", "near", "leaks", "outliers")}
    picked = rng.choice(n, 3 * EACH, replace=False)
    for i in picked[:EACH].tolist():  # exact copies under another label
        truth["conflicting"].add(len(images))
        images.append(images[i])
        labels.append((labels[i] + 1) % len(classes))
        content.append(content[i])
        split.append(split[i])
    for k, i in enumerate(picked[EACH : 2 * EACH].tolist()):  # near copies
        photo = Image.fromarray(images[i])
        if k % 3 == 0:
            buffer = io.BytesIO()
            photo.save(buffer, "JPEG", quality=75)
            photo = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
        elif k % 3 == 1:
            photo = photo.resize((29, 29)).resize((32, 32))
        else:
            photo = ImageOps.mirror(photo)
        truth["near"].add((i, len(images)))
        images.append(np.asarray(photo))
        labels.append(labels[i])
        content.append(f"near-{k}")
        split.append(split[i])
    train = [i for i in picked[2 * EACH :].tolist() if split[i] == "train"]
    train += [i for i in range(n) if split[i] == "train" and i not in picked][: EACH - len(train)]
    for i in train[:EACH]:  # train photos copied into test
        truth["leaks"].add((i, len(images)))
        images.append(images[i])
        labels.append(labels[i])
        content.append(content[i])
        split.append("test")
    drawings = sorted(DRAWINGS.glob("*.npy"))[:1]
    strokes = np.load(drawings[0], mmap_mode="r")[:20] if drawings else np.empty((0, 784))
    for k in range(EACH):  # outliers
        if k < 15:
            odd = np.full((32, 32, 3), 255 if k % 2 else 0, dtype=np.uint8)
        elif k < 30 or k - 30 >= len(strokes):
            odd = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        else:
            grey = Image.fromarray(255 - np.asarray(strokes[k - 30]).reshape(28, 28)).resize(
                (32, 32)
            )
            odd = np.asarray(grey.convert("RGB"))
        truth["outliers"].add(len(images))
        images.append(odd)
        labels.append(int(rng.integers(len(classes))))
        content.append(f"odd-{k}")
        split.append("train")
    return {
        "images": np.stack(images),
        "labels": np.array(labels),
        "content": np.array(content),
        "split": np.array(split),
        "truth": truth,
    }


def photos() -> None:
    from pytest_labelquality.encoders import load_encoder

    if not PHOTOS.is_dir():
        print(f"photos: skipped, {PHOTOS} is absent")
        return
    built = build_photos()
    images, labels, content, split = (built[k] for k in ("images", "labels", "content", "split"))
    truth = built["truth"]
    encoder = load_encoder("efficientnet_lite0", kind="image")
    start = time.perf_counter()
    vectors = encoder.encode(images)
    encoded = time.perf_counter() - start
    start = time.perf_counter()
    found = find(
        vectors, content, labels, threshold=NEAR_SIMILARITY["image embeddings"], images=images
    )
    searched = time.perf_counter() - start
    _report("photos", len(images), encoded, searched, found, labels, split, truth)


def scale(n: int = 1_000_000, dim: int = 384) -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(1000, dim)).astype(np.float32)
    units = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 100_000):
        part = slice(start, min(n, start + 100_000))
        size = part.stop - part.start
        units[part] = centres[rng.integers(0, 1000, size)]
        units[part] += rng.normal(size=(size, dim)).astype(np.float32)
    copies = rng.choice(n, 500, replace=False)
    originals = rng.choice(np.setdiff1d(np.arange(n), copies), 500, replace=False)
    units[copies] = units[originals] + rng.normal(0, 0.1, (500, dim)).astype(np.float32)
    units /= np.linalg.norm(units, axis=1, keepdims=True)  # in place: one copy in memory
    start = time.perf_counter()
    partition = knn.build_partition(units)
    built = time.perf_counter() - start
    graph = knn.nearest(units, partition=partition)
    whole = time.perf_counter() - start
    found = np.mean(graph.neighbours[copies, 0] == originals)
    changed = rng.choice(n, n // 100, replace=False)
    changed[:100] = copies[:100]
    start = time.perf_counter()
    part = knn.nearest(units, queries=changed, partition=partition)
    pr = time.perf_counter() - start
    rows = np.searchsorted(part.queries, copies[:100])
    found_pr = np.mean(part.neighbours[rows, 0] == originals[:100])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"scale: {n:,} x {dim}: partition {built:.0f}s, whole search {whole:.0f}s")
    print(f"  planted near copies found {found:.3f}; change of {len(changed):,} items {pr:.1f}s")
    print(f"  (found {found_pr:.2f}); peak memory {peak:.2f} GiB")


NEWS = DATA / "ag_news" / "test.csv"
#: Texts in other languages, news-like: two sentences of one language make one outlier.
FOREIGN = {
    "de": [
        "Die Regierung hat am Montag ein neues Gesetz zur Energieversorgung vorgestellt.",
        "Nach dem Unwetter blieben viele Straßen im Süden des Landes stundenlang gesperrt.",
        "Der Verein gewann das Heimspiel nach einer spannenden zweiten Halbzeit.",
        "Die Preise für Lebensmittel sind im vergangenen Monat erneut gestiegen.",
        "Forscher der Universität entwickelten einen schnelleren Speicherchip.",
    ],
    "fr": [
        "Le gouvernement a annoncé mardi une réforme du système des retraites.",
        "Les agriculteurs manifestent depuis trois jours devant la préfecture.",
        "L'équipe nationale s'est qualifiée pour la finale après une victoire serrée.",
        "La banque centrale a décidé de maintenir ses taux d'intérêt inchangés.",
        "Une nouvelle application permet de suivre la qualité de l'air en temps réel.",
    ],
    "es": [
        "El ayuntamiento aprobó ayer el presupuesto para el próximo año.",
        "Miles de personas salieron a la calle para celebrar la fiesta del barrio.",
        "El delantero marcó dos goles y el equipo sigue líder de la liga.",
        "La empresa anunció que abrirá una nueva fábrica en el norte del país.",
        "Los científicos descubrieron una especie de rana en la selva tropical.",
    ],
    "it": [
        "Il sindaco ha inaugurato la nuova linea della metropolitana cittadina.",
        "Le piogge di questa settimana hanno causato frane in diverse province.",
        "La squadra di casa ha pareggiato all'ultimo minuto della partita.",
        "Il prezzo della benzina è sceso per la terza settimana consecutiva.",
        "Un gruppo di ingegneri ha costruito un robot che raccoglie la frutta.",
    ],
    "nl": [
        "De gemeente wil meer fietspaden aanleggen in het centrum van de stad.",
        "Door de staking reden er gisteren bijna geen treinen in het hele land.",
        "De schaatser won goud op de tien kilometer met een nieuw baanrecord.",
        "Het bedrijf maakte een hogere winst dan analisten hadden verwacht.",
        "Onderzoekers vonden resten van een oude nederzetting onder de akker.",
    ],
}


def news() -> None:
    import csv

    from pytest_labelquality.encoders import load_encoder

    if not NEWS.is_file():
        print(f"news: skipped, {NEWS} is absent")
        return
    with NEWS.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    texts = [f"{title.strip()}\n{body.strip()}" for _, title, body in rows]
    labels = [int(c) - 1 for c, _, _ in rows]
    rng = np.random.default_rng(0)
    n = len(texts)
    split = np.where(rng.random(n) < 0.8, "train", "test").tolist()
    truth: dict[str, set[Any]] = {k: set() for k in ("conflicting", "near", "leaks", "outliers")}
    picked = rng.choice(n, 3 * EACH, replace=False).tolist()
    for i in picked[:EACH]:
        truth["conflicting"].add(len(texts))
        texts.append(texts[i])
        labels.append((labels[i] + 1) % 4)
        split.append(split[i])
    for k, i in enumerate(picked[EACH : 2 * EACH]):  # case and whitespace variants
        variant = texts[i].upper() if k % 2 else "  ".join(texts[i].split()) + " \n"
        truth["near"].add((i, len(texts)))
        texts.append(variant)
        labels.append(labels[i])
        split.append(split[i])
    train = [i for i in range(n) if split[i] == "train" and i not in picked]
    for i in rng.choice(train, EACH, replace=False).tolist():
        truth["leaks"].add((i, len(texts)))
        texts.append(texts[i])
        labels.append(labels[i])
        split.append("test")
    for language in FOREIGN.values():
        for a in range(5):
            for b in (a + 1, a + 2):
                truth["outliers"].add(len(texts))
                texts.append(f"{language[a]}\n{language[b % 5]}")
                labels.append(int(rng.integers(4)))
                split.append("train")
    encoder = load_encoder("minilm_l6", kind="text")
    start = time.perf_counter()
    vectors = encoder.encode(np.array(texts, dtype=object))
    encoded = time.perf_counter() - start
    start = time.perf_counter()
    label = np.array(labels)
    found = find(
        vectors,
        np.array(texts),
        label,
        threshold=NEAR_SIMILARITY["text embeddings"],
        texts=np.array(texts, dtype=object),
    )
    searched = time.perf_counter() - start
    _report("news", len(texts), encoded, searched, found, label, np.array(split), truth)


def _report(
    name: str,
    items: int,
    encoded: float,
    searched: float,
    found: Any,
    labels: npt.NDArray[np.int64],
    split: npt.NDArray[np.str_],
    truth: dict[str, set[Any]],
) -> None:
    conflicting = {
        int(j) for g in found.exact_groups() if len(np.unique(labels[g])) > 1 for j in g[1:]
    }
    odd = truth["outliers"]  # odd items alike are near copies of each other: not counted here
    near = {(int(i), int(j)) for i, j in found.near_pairs.tolist() if not {i, j} & odd}
    leaked = {(i, j) for i, j, _ in leaks(found, split)}
    outliers = {int(i) for i in found.outliers}
    print(f"{name}: {items} items, encoded in {encoded:.0f}s, searched in {searched:.1f}s")
    print(f"  conflicting exact copies  {_pr(conflicting, truth['conflicting'])}")
    print(f"  near copies               {_pr(near, truth['near'])}")
    print(f"  leaks train -> test       {_pr(leaked, truth['leaks'])}")
    print(f"  outliers                  {_pr(outliers, truth['outliers'])}")
    injected = np.sort(found.outlier_distance[sorted(odd)])
    print(f"  outlier fence {float(found.outlier_cutoff):.3f}; injected from {injected[0]:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", action="store_true", help="the million-item search only")
    parser.add_argument("--skip-scale", action="store_true", help="photos and news only")
    parser.add_argument("--items", type=int, default=1_000_000)
    args = parser.parse_args()
    if not args.scale:
        photos()
        news()
    if not args.skip_scale:
        scale(args.items)


if __name__ == "__main__":
    main()
