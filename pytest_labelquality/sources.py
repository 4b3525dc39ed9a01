"""Loading datasets from the sources a spec names, into one in-memory shape with stable item ids."""

from __future__ import annotations

import dataclasses
import hashlib
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING

from pytest_labelquality.dataset import DataKind, Dataset, content_ids, encode_labels, item_bytes
from pytest_labelquality.errors import DataError
from pytest_labelquality.source_specs import (
    CsvSource,
    Flips,
    NpzSource,
    QuickDrawSource,
    SklearnSource,
)
from pytest_labelquality.spec import DatasetSpec

if TYPE_CHECKING:
    from pytest_labelquality.cache import CacheRoot


def load_dataset(spec: DatasetSpec, *, cache_dir: CacheRoot | None = None) -> Dataset:
    """Load the dataset a spec names; raises :class:`DataError` for data that cannot be used.

    Formats of :mod:`pytest_labelquality.formats` may keep work (decoded images) in
    ``cache_dir``."""
    from pytest_labelquality.formats import registered
    from pytest_labelquality.formats.tables import load_features

    src = spec.source
    try:
        if isinstance(src, QuickDrawSource):
            data = _load_quickdraw(spec, src)
        elif isinstance(src, NpzSource):
            data = _load_npz(spec, src)
        elif isinstance(src, CsvSource):
            data = load_features(spec, src, cache_dir)
        elif isinstance(src, SklearnSource):
            data = _load_sklearn(src)
        else:
            data = registered()[src.FORMAT].load(spec, src, cache_dir)
    except OSError as exc:
        raise DataError(f"cannot read {exc.filename or spec.location}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        where = spec.resolve(src.path) if isinstance(src, CsvSource) else spec.location
        raise DataError(f"{where}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    _check(data)
    return _flip(data, src.flip) if src.flip is not None else data


def check_folds(data: Dataset, folds: int) -> None:
    """Every class needs at least as many items as there are folds."""
    import numpy as np

    counts = np.bincount(data.labels, minlength=len(data.class_names))
    small = [f"{data.class_names[c]!r} has {counts[c]}" for c in np.flatnonzero(counts < folds)]
    if small:
        raise DataError(
            f"{data.origin}: every class needs at least cv.folds = {folds} items, but class"
            f" {'; class '.join(small)} (lower cv.folds or add items)"
        )


def _check(data: Dataset) -> None:
    import numpy as np

    n = len(data.labels)
    if len(data.features) != n or len(data.ids) != n:
        raise DataError(
            f"{data.origin}: mismatched lengths: {len(data.features)} feature rows,"
            f" {n} labels, {len(data.ids)} ids"
        )
    if n == 0:
        raise DataError(f"{data.origin}: the dataset is empty")
    if data.features.dtype != object and np.issubdtype(data.features.dtype, np.floating):
        bad = np.flatnonzero(~np.isfinite(data.features.reshape(n, -1)).all(axis=1))
        if len(bad):
            raise DataError(
                f"{data.origin}: {len(bad)} item(s) have NaN or infinite features,"
                f" e.g. {', '.join(data.ids[bad[:5]])}"
            )
    dupes = [i for i, c in Counter(data.ids.tolist()).items() if c > 1]
    if dupes:
        raise DataError(f"{data.origin}: duplicate item ids, e.g. {', '.join(dupes[:5])}")


def _load_quickdraw(spec: DatasetSpec, src: QuickDrawSource) -> Dataset:
    import numpy as np

    folder = spec.resolve(src.dir)
    pixels = int(np.prod(src.shape))
    parts, labels = [], []
    ids: list[str] = []
    for index, name in enumerate(src.classes):
        path = folder / f"{name}.npy"
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, EOFError) as exc:  # EOFError: an empty file
            why = "the file is empty" if isinstance(exc, EOFError) else str(exc)
            raise DataError(
                f"{path}: not a readable NumPy .npy file ({why}); download or save it again"
            ) from None
        if not isinstance(array, np.ndarray):  # a .npz archive under the .npy name
            raise DataError(f"{path}: a .npz archive, not a .npy file of drawings")
        if array.ndim != 2 or array.dtype != np.uint8 or array.shape[1] != pixels:
            raise DataError(
                f"{path}: expected a 2-D uint8 array with {pixels} columns (shape"
                f" {list(src.shape)}), got {array.dtype} {list(array.shape)}"
            )
        rows = array[: src.limit] if src.limit else array
        parts.append(np.asarray(rows).reshape(len(rows), *src.shape))
        labels.append(np.full(len(rows), index, dtype=np.int64))
        ids.extend(f"{name}/{i}" for i in range(len(rows)))
    return Dataset(
        features=np.concatenate(parts),
        labels=np.concatenate(labels),
        ids=np.array(ids, dtype=np.str_),
        class_names=src.classes,
        kind=DataKind.IMAGE,
        origin=str(folder),
        flipped=np.empty(0, dtype=np.int64),
    )


def _load_npz(spec: DatasetSpec, src: NpzSource) -> Dataset:
    import numpy as np

    path = spec.resolve(src.path)
    try:  # the file opened here, so that it is closed when numpy fails to read it
        with path.open("rb") as handle:
            archive = np.load(handle, allow_pickle=False)
            if isinstance(archive, np.ndarray):
                raise DataError(
                    f"{path}: one .npy array, not a .npz archive of features and labels; save"
                    f" both with numpy.savez(path, {src.features}=features, {src.labels}=labels)"
                )
            missing = [k for k in (src.features, src.labels, src.ids) if k and k not in archive]
            if missing:
                raise DataError(
                    f"{path}: no array {missing[0]!r}; arrays: {', '.join(archive.files)}"
                )
            features = archive[src.features]
            raw_labels = archive[src.labels]
            ids = archive[src.ids].astype(str) if src.ids else None
    except (ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        why = "the file is empty" if isinstance(exc, EOFError) else str(exc)
        if isinstance(exc, zipfile.BadZipFile | zlib.error):
            why = f"truncated or damaged: {why}"
        raise DataError(
            f"{path}: not a readable .npz file ({why}); save it again with numpy.savez"
        ) from None
    if raw_labels.ndim != 1:
        raise DataError(f"{path}: labels must be 1-D, got shape {list(raw_labels.shape)}")
    if src.shape is not None:
        try:
            features = features.reshape(len(features), *src.shape)
        except ValueError:
            raise DataError(
                f"{path}: features of shape {list(features.shape)} cannot be reshaped to"
                f" items of shape {list(src.shape)}"
            ) from None
    if len(features) == 0 or features.ndim == 0:
        raise DataError(f"{path}: the feature array {src.features!r} holds no items")
    if features.dtype.kind == "c":  # numpy would drop the imaginary parts with a warning
        raise DataError(
            f"{path}: the features are complex numbers; save the real and imaginary parts (or"
            " the magnitude) as columns of real numbers"
        )
    image = src.shape is not None or features.ndim >= 3
    if not image:
        try:
            features = features.reshape(len(features), -1).astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise DataError(f"{path}: the features are not numbers ({exc})") from None
    labels, names = encode_labels(raw_labels, src.classes, str(path))
    return Dataset(
        features=features,
        labels=labels,
        ids=ids if ids is not None else content_ids(features),
        class_names=names,
        kind=DataKind.IMAGE if image else DataKind.TABULAR,
        origin=str(path),
        flipped=np.empty(0, dtype=np.int64),
    )


def _load_sklearn(src: SklearnSource) -> Dataset:
    import numpy as np
    from sklearn import datasets

    bunch = getattr(datasets, f"load_{src.name.value}")()
    target = np.asarray(bunch.target, dtype=np.int64)
    names = tuple(str(n) for n in bunch.target_names)
    return Dataset(
        features=np.asarray(bunch.data, dtype=np.float64),
        labels=target,
        ids=np.array([f"{src.name.value}/{i}" for i in range(len(target))], dtype=np.str_),
        class_names=names,
        kind=DataKind.TABULAR,
        origin=f"sklearn.datasets.load_{src.name.value}()",
        flipped=np.empty(0, dtype=np.int64),
        feature_names=tuple(str(n) for n in getattr(bunch, "feature_names", ())),
        image_shape=tuple(bunch.images.shape[1:]) if "images" in bunch else None,
    )


def _flip(data: Dataset, flips: Flips) -> Dataset:
    """Move a share of the items to another class, uniformly (``rate`` of all items), or with
    ``pairs`` from each named class to its look-alike (``rate`` of each named class's items: a
    noise-matrix entry, the usual meaning of class-conditional noise); record which."""
    import numpy as np

    rng = np.random.default_rng(flips.seed)
    n, k = len(data.labels), len(data.class_names)
    labels = data.labels.copy()
    if not flips.pairs:
        chosen = np.sort(rng.choice(n, size=round(flips.rate * n), replace=False))
        labels[chosen] = (labels[chosen] + rng.integers(1, k, size=len(chosen))) % k
        return dataclasses.replace(data, labels=labels, flipped=chosen.astype(np.int64))
    index = {name: i for i, name in enumerate(data.class_names)}
    unknown = sorted(set(flips.pairs) - set(index) | set(flips.pairs.values()) - set(index))
    if unknown:
        raise DataError(
            f"source.flip.pairs: unknown class {unknown[0]!r}; classes:"
            f" {', '.join(data.class_names)}"
        )
    chosen_per_class = []
    for given, wrong in flips.pairs.items():  # each named class loses its own share
        members = np.flatnonzero(data.labels == index[given])
        picked = rng.choice(members, size=round(flips.rate * len(members)), replace=False)
        labels[picked] = index[wrong]
        chosen_per_class.append(picked)
    chosen = np.sort(np.concatenate(chosen_per_class))
    return dataclasses.replace(data, labels=labels, flipped=chosen.astype(np.int64))


def item_keys(data: Dataset, rows: Iterable[int] | None = None) -> dict[str, tuple[str, str]]:
    """Items' ids (all, or those of ``rows``) mapped to their content hash and label name."""
    chosen = list(range(len(data)) if rows is None else rows)
    if data.content is not None:
        digests = [str(data.content[i]) for i in chosen]
    else:
        digests = [
            hashlib.blake2b(b, digest_size=8).hexdigest() for b in item_bytes(data.features, chosen)
        ]
    return {
        str(data.ids[i]): (digest, data.class_names[data.labels[i]])
        for i, digest in zip(chosen, digests, strict=True)
    }


def review_hash(content: str, label: str) -> str:
    """The hash a review records: content and label together."""
    return hashlib.blake2b(f"{content}:{label}".encode(), digest_size=8).hexdigest()
