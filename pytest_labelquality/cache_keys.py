"""Every cache key, built from named parts in one place.

A key is the fingerprint of its kind, the kind's version and its parts by name. Anything an
entry's content depends on must be one of its parts; a change to what an entry of a kind holds,
or to how it is computed, bumps that kind's version here, so that old entries are missed.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from pytest_labelquality.cache import fingerprint

if TYPE_CHECKING:
    from pathlib import Path

    import numpy as np
    import numpy.typing as npt

    from pytest_labelquality.dataset import Dataset
    from pytest_labelquality.models import ModelConfig
    from pytest_labelquality.spec import DetectionSpec, ModelSpec

#: One version per kind of entry.
VERSIONS: dict[str, int] = {
    "data": 1,  # a dataset's identity: features, labels, ids, class names
    "run": 2,  # a dataset under one model and fold split (the folds hang off it); 2: a model
    # that trains TensorFlow holds the threads it trains with, and trains with op determinism
    "lineage": 1,  # a pointer to a dataset's last run, for incremental re-checks
    "fold": 1,  # one fold's out-of-fold probabilities and its model
    "detection": 5,  # 3: given_vs_rival ranking became the default; 4: an encoder model's
    # entry also holds the shown suspects' nearest neighbours in embedding space (of the items
    # the run that wrote it showed; a run that shows more detects again, see runner); 5: the
    # probabilities of label-smoothed models are temperature-scaled before counting
    "auto": 1,  # model: auto's choice
    "embeddings": 1,  # an encoder's vectors of exactly these contents
    "embeddings-lineage": 1,  # a pointer to a dataset's last embeddings under an encoder
    "data-issues-lineage": 1,  # a pointer to a dataset's last search under an encoder
    "images": 3,  # decoded pixels of a folder's files: bump when decoding changes its output
    # (2: transparency composited on white; 3: large images reduced by whole factors first)
    "images-lineage": 1,  # a pointer to a folder's last decoded pixels
    "data-issues": 2,  # duplicates, near duplicates and outlier distances of a dataset (2:
    # thumbnails confirm near duplicates of images; outliers by Mahalanobis distance)
}


def key(kind: str, **parts: Any) -> str:
    """The key of an entry of ``kind`` from its named parts (order does not matter)."""
    return fingerprint(
        kind, VERSIONS[kind], *[v for name in sorted(parts) for v in (name, parts[name])]
    )


def data_key(data: Dataset) -> str:
    """A dataset's identity: what its out-of-fold predictions are computed from."""
    return key(
        "data",
        features=data.features,
        labels=data.labels,
        ids=data.ids,
        classes=list(data.class_names),
    )


def _model_parts(config: ModelConfig, folds: int, seed: int) -> dict[str, Any]:
    return {
        "model": config.as_dict(),
        "factory": config.factory_digest,
        "versions": config.versions(),
        "folds": folds,
        "seed": seed,
    }


def run_key(data: str, config: ModelConfig, *, folds: int, seed: int) -> str:
    """This data under this model, fold count and seed."""
    return key("run", data=data, **_model_parts(config, folds, seed))


def lineage_key(spec_file: str, dataset: str, config: ModelConfig, *, folds: int, seed: int) -> str:
    """The same dataset and settings whatever the data: where a small change finds its base."""
    return key("lineage", spec_file=spec_file, dataset=dataset, **_model_parts(config, folds, seed))


def fold_key(run: str, fold: int) -> str:
    """One fold's out-of-fold predictions (and its saved model) of a run."""
    return key("fold", run=run, fold=fold)


def detection_key(run: str, detection: DetectionSpec, *, cleanlab: str, plugin: str) -> str:
    """The detection of a run's out-of-fold probabilities under these settings and versions."""
    settings = dataclasses.asdict(detection)
    return key("detection", run=run, detection=settings, cleanlab=cleanlab, plugin=plugin)


def auto_key(
    data: str,
    candidates: list[str],
    model: ModelSpec,
    versions: dict[str, str],
    *,
    folds: int,
    seed: int,
) -> str:
    """``model: auto``'s choice among ``candidates`` for this data."""
    spec = dataclasses.asdict(model)
    return key(
        "auto",
        data=data,
        candidates=candidates,
        spec=spec,
        versions=versions,
        folds=folds,
        seed=seed,
    )


def embeddings_key(identity: dict[str, str], content: npt.NDArray[np.str_]) -> str:
    """The embeddings of exactly these items' contents under one encoder."""
    return key("embeddings", encoder=identity, content=content)


def embeddings_lineage_key(identity: dict[str, str], dataset: str) -> str:
    """The pointer to a dataset's last embeddings under one encoder."""
    return key("embeddings-lineage", encoder=identity, dataset=dataset)


def data_issues_key(data: str, vectors: dict[str, str] | str, threshold: float) -> str:
    """The duplicates and outliers of a dataset (``data``: its :func:`data_key`) found on
    ``vectors`` (an encoder's identity, or what raw features) at a near-duplicate threshold."""
    return key("data-issues", data=data, vectors=vectors, threshold=threshold)


def data_issues_lineage_key(identity: dict[str, str], threshold: float, dataset: str) -> str:
    """The pointer to a dataset's last search of duplicates and outliers under an encoder."""
    return key("data-issues-lineage", encoder=identity, threshold=threshold, dataset=dataset)


def images_key(root: Path, listing: list[list[Any]], settings: list[Any]) -> str:
    """A folder's decoded pixels, for this listing (path, size, mtime) and decoding settings."""
    return key("images", root=str(root), listing=listing, settings=settings)


def images_lineage_key(root: Path, settings: list[Any], source: str) -> str:
    """The pointer to a folder's last decoded pixels, as this source lists it."""
    return key("images-lineage", root=str(root), settings=settings, source=source)
