"""Classifiers trained on each fold: the built-in image models (``hog_boosting``, Keras CNNs),
scikit-learn estimators, or a user's factory. TensorFlow and scikit-learn are imported only when
a model is built."""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import importlib.util
import inspect
import math
import os
import sys
import warnings
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_labelquality import __version__
from pytest_labelquality.errors import ModelError, install_hint
from pytest_labelquality.guards import class_probabilities, user_error
from pytest_labelquality.keras_data import batches, keras_input_shape
from pytest_labelquality.model_registry import (
    KERAS_SETTINGS,
    Kind,
    ModelEntry,
    listed,
    model_entry,
    names_accepting,
    names_taking,
)
from pytest_labelquality.resources import cores, passive_openmp

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from pytest_labelquality.dataset import Dataset
    from pytest_labelquality.spec import ModelSpec

Progress = Callable[[str], None]

#: ``cnn`` trains for about this many item-passes per fold: 10 epochs of 3,200 drawings, and a
#: single epoch from 32,000 training items up (where one pass is already plenty).
CNN_PASSES = 32_000
FACTORY_DEFAULTS: dict[str, Any] = {"epochs": 5, "batch_size": 128, "learning_rate": 0.001}


@dataclass(frozen=True)
class ModelConfig:
    """A model spec with its defaults resolved: what the cache key and the report record."""

    name: str
    factory: str | None
    epochs: int | None
    batch_size: int | None
    learning_rate: float | None
    params: dict[str, Any] = field(default_factory=dict)
    factory_digest: str | None = None
    factory_dir: str | None = None
    mirror: bool = False
    encoder: str | None = None
    tokenizer: str | None = None
    encoder_identity: dict[str, str] = field(default_factory=dict)
    #: An ensemble's members (``model.members``), in the spec's order.
    members: tuple[str, ...] = ()
    #: The threads TensorFlow trains with (None until the runner knows where folds train): its
    #: results differ in the last bits from one count to another, so the count is in the key.
    threads: int | None = None

    @property
    def entry(self) -> ModelEntry | None:
        """This model's registry entry (None for a factory)."""
        if self.factory:
            return None
        found = model_entry(self.name)
        if found is None:  # registered by the driver's code, not by a worker's
            raise ModelError(
                f"model {self.name} is not registered in this process: register it in a module"
                " that every process running folds imports"
            )
        return found

    @property
    def is_keras(self) -> bool:
        """Whether this is one of the built-in Keras models."""
        return bool(self.entry and self.entry.keras and not self.entry.members)

    @property
    def trains_tensorflow(self) -> bool:
        """Whether folds may train TensorFlow: a Keras model or an ensemble with one, or a
        factory's model."""
        return bool(self.factory) or bool(self.entry and self.entry.keras)

    @property
    def parallel_folds(self) -> bool:
        """Whether folds may train at once (``cv.jobs``): not for a factory, nor for the models
        whose one fold uses every core (Keras; ``hog_boosting``, which also computes its
        features once for all folds)."""
        return bool(self.entry and self.entry.parallel_folds)

    @property
    def soft_probabilities(self) -> bool:
        """Whether its probabilities are soft by construction (its entry's
        ``soft_probabilities``): ``detection.calibrate: auto`` scales them."""
        return bool(self.entry and self.entry.soft_probabilities)

    @property
    def uses_encoder(self) -> bool:
        """Whether folds train on a frozen encoder's embeddings (``encoder_linear``)."""
        return bool(self.entry and self.entry.embeds)

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form, for the cache key and the results."""
        out = {
            "name": self.name,
            "factory": self.factory,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            "params": self.params,
            "mirror": self.mirror,
            "encoder": self.encoder,
            "tokenizer": self.tokenizer,
            "encoder_identity": self.encoder_identity,
            "members": list(self.members),
            "threads": self.threads,
        }
        return {k: v for k, v in out.items() if v not in (None, {}, False, [])}

    def versions(self) -> dict[str, str]:
        """Versions of the code whose changes change this model's predictions: the libraries,
        and this plugin's version with a digest of its model code (an edit misses the cache)."""
        names = ["numpy", "scikit-learn"]
        if self.factory or (self.entry and self.entry.keras):
            names += ["tensorflow", "keras"]
        plugin = f"{__version__}+{_model_code_digest()}"
        return {"pytest-labelquality": plugin, **{n: _version(n) for n in names}}


def _model_code_digest() -> str:
    """A short digest of the modules that decide what a model predicts."""
    import hashlib

    digest = hashlib.blake2b(digest_size=4)
    for module in (
        "models.py",
        "hog_boosting.py",
        "text_model.py",
        "small_cnn.py",
        "ensemble.py",
        "auto.py",
        "heads.py",
        "estimators.py",
        "model_registry.py",
    ):
        digest.update(Path(__file__).with_name(module).read_bytes())
    return digest.hexdigest()


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


#: Images of this many classes or more default to ``small_cnn``, fewer to ``hog_boosting``:
#: boosting grows a tree per class per round, the CNN's cost does not grow with the classes. On
#: the 14 Quick, Draw! classes ``small_cnn`` was 11 times faster per fold for as good an accuracy.
CNN_DEFAULT_CLASSES = 5


def encoders_installed(kind: str) -> bool:
    """Whether the built-in encoder for ``kind`` (``image``, ``text``) can run, found without
    importing anything heavy."""
    from pytest_labelquality.encoders import DEFAULT_ENCODERS, builtin_installed

    return builtin_installed(DEFAULT_ENCODERS[kind])  # type: ignore[index]


def extras_installed(entry: ModelEntry, kind: Kind) -> bool:
    """Whether what ``entry`` needs for data of ``kind`` is installed (found without importing
    it): TensorFlow for ``keras``, the built-in encoder of images or texts for ``encoders``."""
    encoder_kind = "text" if kind == "text" else "image"
    found = {
        "keras": lambda: tensorflow_installed(),
        "encoders": lambda: encoders_installed(encoder_kind),
    }
    return all(found[extra]() for extra in entry.needs)


def default_model(*, image: bool, text: bool, colour: bool, classes: int) -> str:
    """The model of a spec that names none, from measurements: with the encoders extra,
    colour photos get ``encoder_linear`` (EfficientNet-Lite0) and texts ``tfidf_encoder``;
    otherwise (and for grey drawings) images get ``hog_boosting`` below
    :data:`CNN_DEFAULT_CLASSES` classes and ``small_cnn`` from there, texts ``tfidf_linear``;
    tables get ``table_ensemble``."""
    if text:
        return "tfidf_encoder" if encoders_installed("text") else "tfidf_linear"
    if not image:
        return "table_ensemble"
    if colour and encoders_installed("image"):
        return "encoder_linear"
    # small_cnn needs the keras extra; without it the default stays hog_boosting
    many = classes >= CNN_DEFAULT_CLASSES and tensorflow_installed()
    return "small_cnn" if many else "hog_boosting"


KIND_WORDS: dict[Kind, str] = {"image": "images", "text": "texts", "table": "a table"}


def resolve_model(
    spec: ModelSpec,
    *,
    image: bool,
    spec_dir: Path,
    train_items: int,
    mirror_default: bool = False,
    text: bool = False,
    classes: int = 2,
    colour: bool = False,
) -> ModelConfig:
    """Fill in the defaults (:func:`default_model`; ``mirror`` as the source's default where
    the model supports it; Keras settings from its registry entry; an encoder model's encoder
    as the built-in for its items), refusing a model that cannot train on this data and
    settings the model would ignore, in one line each.

    ``cnn``'s epochs default to ``ceil(CNN_PASSES / train_items)``, from 1 to 10. A factory's
    module is looked up on ``sys.path`` and in the spec's folder."""
    if spec.factory:
        return _factory_config(spec, spec_dir, train_items)
    kind: Kind = "text" if text else "image" if image else "table"
    name = spec.name or default_model(image=image, text=text, colour=colour, classes=classes)
    entry = model_entry(name)
    if entry is None:
        raise ModelError(f"unknown model {name!r}")
    if kind not in entry.accepts:
        raise ModelError(
            f"model {name} trains on {' or '.join(KIND_WORDS[k] for k in sorted(entry.accepts))},"
            f" but this dataset holds {KIND_WORDS[kind]}; models for {KIND_WORDS[kind]}:"
            f" {', '.join(names_accepting(kind))}, or a factory"
        )
    _refuse_ignored_settings(spec, entry)
    mirror = entry.takes("mirror") and (mirror_default if spec.mirror is None else spec.mirror)
    encoder = None
    if entry.takes("encoder") and "encoders" in entry.needs:  # not auto, nor ensemble
        from pytest_labelquality.encoders import DEFAULT_ENCODERS

        encoder = spec.encoder or DEFAULT_ENCODERS["text" if text else "image"]
    if not entry.keras or entry.members:  # an ensemble's Keras settings are its member's
        return ModelConfig(
            name,
            None,
            spec.epochs,
            spec.batch_size,
            spec.learning_rate,
            dict(spec.params),
            mirror=mirror,
            encoder=encoder,
            tokenizer=spec.tokenizer if encoder else None,
            members=tuple(spec.members or ()),
        )
    if not tensorflow_installed():
        raise ModelError(keras_missing(name))
    defaults = dict(entry.keras_defaults)
    if name == "small_cnn":
        from pytest_labelquality.small_cnn import default_batch, default_epochs

        defaults |= {
            "epochs": default_epochs(train_items),
            "batch_size": default_batch(train_items),
        }
    return ModelConfig(
        name=name,
        factory=None,
        epochs=spec.epochs or defaults["epochs"] or _cnn_epochs(train_items),
        batch_size=spec.batch_size or int(defaults["batch_size"]),
        learning_rate=spec.learning_rate or float(defaults["learning_rate"]),
        params=dict(spec.params),
        mirror=mirror,
    )


def _cnn_epochs(train_items: int) -> int:
    return min(10, max(1, math.ceil(CNN_PASSES / max(train_items, 1))))


def _refuse_ignored_settings(spec: ModelSpec, entry: ModelEntry) -> None:
    """A one-line error for a setting that ``entry`` does not take."""
    ignored = [k for k in KERAS_SETTINGS if getattr(spec, k)]
    if ignored and not entry.takes("keras"):
        raise ModelError(
            f"model.{ignored[0]} applies to Keras models, but this dataset's model is"
            f" {entry.name}: remove it, or name a Keras model (model.name: small_cnn)"
        )
    if spec.params and not entry.takes("params"):
        if entry.members:
            raise ModelError(
                f"model.params: {entry.name}'s members keep their own settings; to tune one,"
                " name it (model.name: hist_gradient_boosting)"
            )
        raise ModelError(
            f"model.params: {entry.name} takes no params; its settings are"
            f" {', '.join(KERAS_SETTINGS)}"
        )
    if spec.mirror and not entry.takes("mirror"):
        supported = ", ".join(sorted(names_taking("mirror")))
        raise ModelError(f"model.mirror is supported by {supported}, not by {entry.name}")
    if spec.members and not entry.takes("members"):
        raise ModelError(
            f"model.members applies to {listed(names_taking('members'))}, not to {entry.name}"
        )
    if (spec.encoder or spec.tokenizer) and not entry.takes("encoder"):
        raise ModelError(
            f"model.encoder applies to {listed(names_taking('encoder'))}, not to {entry.name}"
        )


def _factory_config(spec: ModelSpec, spec_dir: Path, train_items: int) -> ModelConfig:
    assert spec.factory is not None
    if spec.mirror:
        supported = ", ".join(sorted(names_taking("mirror")))
        raise ModelError(f"model.mirror is supported by {supported}, not by a factory")
    return ModelConfig(
        name="factory",
        factory=spec.factory,
        epochs=spec.epochs or int(FACTORY_DEFAULTS["epochs"]),
        batch_size=spec.batch_size or int(FACTORY_DEFAULTS["batch_size"]),
        learning_rate=spec.learning_rate or float(FACTORY_DEFAULTS["learning_rate"]),
        params=dict(spec.params),
        factory_digest=_module_digest(spec.factory, spec_dir),
        factory_dir=str(spec_dir),
    )


def keras_missing(what: str) -> str:
    """The one-line error for a Keras model without TensorFlow, naming the extra to install."""
    return f"model {what!r} needs TensorFlow, which is not installed: {install_hint('keras')}"


def tensorflow_installed() -> bool:
    """Whether TensorFlow can be imported, found without importing it."""
    try:
        return importlib.util.find_spec("tensorflow") is not None
    except (ImportError, ValueError):
        return False


def _importable_from(folder: str | Path) -> None:
    """Let modules beside the spec be imported (appended: installed packages win)."""
    if str(folder) not in sys.path:
        sys.path.append(str(folder))


def _module_digest(factory: str, spec_dir: Path) -> str:
    """A digest of the factory module's source, so editing it misses the cache."""
    from pytest_labelquality.cache import fingerprint

    _importable_from(spec_dir)
    module = factory.split(":")[0]
    try:
        found = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        found = None
    if found is None or not found.origin or not os.path.isfile(found.origin):
        raise ModelError(f"model.factory {factory!r}: cannot find module {module!r} on sys.path")
    with open(found.origin, "rb") as handle:
        return fingerprint(handle.read())


# --- training one fold ---------------------------------------------------------------------


@dataclass(frozen=True)
class FoldModel:
    """A model trained on one fold: it scores the items it never saw (its fold, or new ones)."""

    model: Any
    keras: bool

    def predict(self, data: Dataset, index: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        """Class probabilities of the ``index`` rows."""
        if self.keras:
            return _keras_predict(self.model, data, index)
        from pytest_labelquality.hog_boosting import HogBoosting

        with _sklearn_threads():
            if isinstance(self.model, HogBoosting):
                return _hog_predict(self.model, data, index)
            return _sklearn_predict(self.model, data, index)

    def save(self, stem: Path) -> Path:
        """Write the model beside ``stem`` (``.keras`` or ``.joblib``), atomically; its path."""
        path = stem.with_suffix(".keras" if self.keras else ".joblib")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
        try:
            if self.keras:
                with warnings.catch_warnings():  # Keras' saving still trips numpy 2's copy=False
                    warnings.simplefilter("ignore", DeprecationWarning)
                    self.model.save(tmp)
            else:
                import joblib

                joblib.dump(self.model, tmp)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path

    @classmethod
    def load(cls, stem: Path) -> FoldModel | None:
        """The model saved beside ``stem``, or None when absent or unreadable."""
        for suffix, keras in ((".keras", True), (".joblib", False)):
            path = stem.with_suffix(suffix)
            if not path.is_file():
                continue
            try:
                if keras:
                    _configure_tensorflow()
                    import keras as keras_lib

                    from pytest_labelquality.small_cnn import mirror_layer

                    mirror_layer()  # registered, for small_cnn's mirror-averaging predictor

                    return cls(keras_lib.models.load_model(path, compile=False), True)
                import joblib

                return cls(joblib.load(path), False)
            except Exception:  # a model that cannot be read back is retrained, never trusted
                return None
        return None


def fit_predict(
    config: ModelConfig,
    data: Dataset,
    train: npt.NDArray[np.int64],
    test: npt.NDArray[np.int64],
    *,
    seed: int,
    progress: Progress | None = None,
) -> tuple[npt.NDArray[np.float32], FoldModel]:
    """Train on ``train`` rows with their given labels (a factory's model, or the registry
    entry's ``fit``); return probabilities for ``test`` and the trained model."""
    entry = config.entry
    if entry is None:
        model, keras_model = _fit_factory(config, data, train, seed=seed, progress=progress)
    else:
        if entry.members or entry.chooses:
            raise ModelError(f"model {config.name} trains through its members, not on a fold")
        fit = entry.call("fit")
        model, keras_model = fit(config, data, train, seed=seed, progress=progress)
    fitted = FoldModel(model, keras_model)
    return fitted.predict(data, test), fitted


def _fit_factory(
    config: ModelConfig,
    data: Dataset,
    train: npt.NDArray[np.int64],
    *,
    seed: int,
    progress: Progress | None,
) -> tuple[Any, bool]:
    model = _call_factory(config, data, seed)
    if not hasattr(model, "predict_proba"):
        return _keras_fit(config, model, data, train, seed=seed, progress=progress), True
    with _sklearn_threads(rows=len(train)):
        _sklearn_fit(model, data, train)
    return model, False


def fit_estimator(
    config: ModelConfig,
    data: Dataset,
    train: npt.NDArray[np.int64],
    *,
    seed: int,
    progress: Progress | None,
) -> tuple[Any, bool]:
    """The ``fit`` of entries with an ``estimator``: build it and fit it on the fold, its
    thread pools bounded."""
    assert config.entry is not None
    try:
        model = config.entry.call("estimator")(config, seed, data)
    except TypeError as exc:
        raise ModelError(f"model.params for {config.name}: {exc}") from None
    with _sklearn_threads(rows=len(train)):
        _sklearn_fit(model, data, train)
    return model, False


def fit_hog_boosting(
    config: ModelConfig,
    data: Dataset,
    train: npt.NDArray[np.int64],
    *,
    seed: int,
    progress: Progress | None,
) -> tuple[Any, bool]:
    """``hog_boosting``'s ``fit``: features of every image computed once for all folds."""
    with _sklearn_threads(rows=len(train)):
        return _hog_fit(config, data, train, seed=seed, progress=progress), False


def fit_keras(
    config: ModelConfig,
    data: Dataset,
    train: npt.NDArray[np.int64],
    *,
    seed: int,
    progress: Progress | None,
) -> tuple[Any, bool]:
    """The built-in Keras models' ``fit``."""
    return _keras_fit(config, None, data, train, seed=seed, progress=progress), True


SMALL_FIT_ROWS = 2_000


@contextlib.contextmanager
def _sklearn_threads(rows: int | None = None) -> Iterator[None]:
    """OpenMP and BLAS pools (boosted trees, linear algebra) at most :func:`cores` wide, and one
    thread to fit fewer than :data:`SMALL_FIT_ROWS` rows: there every parallel step is too short
    to share (boosted trees on 192 rows: 2.5 s on one thread, 4.7 s on two sleeping ones, half of
    it in the kernel). A lower limit already set (``OMP_NUM_THREADS``, a joblib worker's) stays."""
    import sklearn.ensemble  # noqa: F401  (loads the OpenMP runtime, so that it is limited too)
    from threadpoolctl import threadpool_info, threadpool_limits

    small = rows is not None and rows < SMALL_FIT_ROWS
    widest = 1 if small else cores(spinning=not passive_openmp())
    limits = {pool["user_api"]: min(widest, pool["num_threads"]) for pool in threadpool_info()}
    with threadpool_limits(limits=limits or widest):
        yield


def _call_factory(config: ModelConfig, data: Dataset, seed: int) -> Any:
    assert config.factory is not None
    module_name, attr = config.factory.split(":")
    if config.factory_dir:
        _importable_from(config.factory_dir)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if exc.name in ("tensorflow", "keras"):
            raise ModelError(keras_missing(str(config.factory))) from None
        raise user_error(config.factory, exc, f"importing {module_name!r}") from None
    except Exception as exc:  # a syntax error, or any error its code raises on import
        raise user_error(config.factory, exc, f"importing {module_name!r}") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ModelError(
            f"model.factory {config.factory!r}: module {module_name!r} ({module.__file__}) has no"
            f" callable {attr!r}"
        )
    offered = {
        "input_shape": keras_input_shape(data),
        "num_classes": len(data.class_names),
        "seed": seed,
        **config.params,
    }
    try:
        accepted = inspect.signature(factory).parameters
        takes_all = any(p.kind is p.VAR_KEYWORD for p in accepted.values())
        kwargs = {k: v for k, v in offered.items() if takes_all or k in accepted}
        model = factory(**kwargs)
    except Exception as exc:
        raise user_error(config.factory, exc, "building the model") from None
    if not (hasattr(model, "predict_proba") or hasattr(model, "compile")):
        raise ModelError(
            f"model.factory {config.factory!r} returned {type(model).__name__}; expected a Keras"
            " model or a scikit-learn classifier with predict_proba"
        )
    return model


def _rows(data: Dataset, index: npt.NDArray[np.int64]) -> npt.NDArray[Any]:
    import numpy as np

    if data.features.dtype == object:  # texts: the raw strings
        return data.features[index]
    x = data.features[index].reshape(len(index), -1)
    return x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x


def _sklearn_fit(model: Any, data: Dataset, train: npt.NDArray[np.int64]) -> None:
    try:
        model.fit(_rows(data, train), data.labels[train])
    except ValueError as exc:  # a factory's model keeps the cause: its frames are the user's
        raise ModelError(f"training {type(model).__name__} failed: {exc}") from exc


def _sklearn_predict(
    model: Any, data: Dataset, index: npt.NDArray[np.int64]
) -> npt.NDArray[np.float32]:
    probs = model.predict_proba(_rows(data, index))
    if not hasattr(model, "classes_"):
        raise ModelError(
            f"{type(model).__name__} has no classes_ after fit; expected a fitted"
            " scikit-learn classifier"
        )
    # columns moved to the dataset's classes: a class absent from training gets 0
    rows, classes = len(index), len(data.class_names)
    return class_probabilities(probs, model.classes_, rows=rows, num_classes=classes)


# --- hog_boosting ---------------------------------------------------------------------------

#: Each dataset's image features (and its mirror images'), computed once for all its folds.
_FEATURES: weakref.WeakKeyDictionary[Dataset, dict[bool, npt.NDArray[np.float16]]] = (
    weakref.WeakKeyDictionary()
)


def _images(data: Dataset, index: npt.NDArray[np.int64] | slice) -> npt.NDArray[Any]:
    if data.image_shape is not None:  # tabular rows that are images, like sklearn's digits
        return data.features[index].reshape(-1, *data.image_shape)
    if data.kind != "image":
        raise ModelError("hog_boosting needs images; this dataset is tabular")
    return data.features[index]


def _whole_features(data: Dataset, mirror: bool, progress: Progress | None) -> None:
    """Compute the features of every image (and mirror image) of ``data`` once, for its folds."""
    import time

    known = _FEATURES.setdefault(data, {})
    for flipped in (False, True) if mirror else (False,):
        if flipped not in known:
            start = time.perf_counter()
            known[flipped] = _featurised(_images(data, slice(None)), mirrored=flipped)
            if progress is not None:
                what = "mirror images" if flipped else "images"
                took = time.perf_counter() - start
                progress(f"  features of {len(data)} {what} in {took:.1f}s")


def _hog_inputs(
    data: Dataset, index: npt.NDArray[np.int64], mirror: bool
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64] | None]:
    """Features of the ``index`` rows and of their mirror images (when ``mirror``), as the
    float64 that the trees work in: sliced from the whole dataset's where computed, else
    computed for just these rows (new items scored by saved fold models)."""
    import numpy as np

    def rows(features: npt.NDArray[np.float16], at: npt.NDArray[np.int64]) -> npt.NDArray[Any]:
        out = np.empty((len(at), features.shape[1]), np.float64)
        for start in range(0, len(at), 16_384):  # no whole copy of the slice on the way
            out[start : start + 16_384] = features[at[start : start + 16_384]]
        return out

    known = _FEATURES.get(data, {})
    if False in known and (True in known or not mirror):
        return rows(known[False], index), rows(known[True], index) if mirror else None
    images = _images(data, index)
    every = np.arange(len(index))
    mirrored = rows(_featurised(images, mirrored=True), every) if mirror else None
    return rows(_featurised(images, mirrored=False), every), mirrored


def _featurised(images: npt.NDArray[Any], *, mirrored: bool) -> npt.NDArray[np.float16]:
    from pytest_labelquality.hog_boosting import image_features

    try:
        return image_features(images, mirrored=mirrored)
    except ValueError as exc:
        raise ModelError(f"hog_boosting: {exc}") from None


def _hog_fit(
    config: ModelConfig,
    data: Dataset,
    train: npt.NDArray[np.int64],
    *,
    seed: int,
    progress: Progress | None,
) -> Any:
    from pytest_labelquality.hog_boosting import MIRROR_TRAIN_MAX, HogBoosting

    _whole_features(data, config.mirror, progress)
    augment = config.mirror and len(train) <= MIRROR_TRAIN_MAX
    features, mirrored = _hog_inputs(data, train, augment)
    # leaves of at least 20 items, fewer on small folds so that the trees can still split
    params = {"min_samples_leaf": max(2, min(20, len(train) // 50)), **config.params}
    try:
        model = HogBoosting(mirror=config.mirror, seed=seed, params=params)
        return model.fit(features, data.labels[train], mirrored)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"model.params for {config.name}: {exc}") from None


def _hog_predict(
    model: Any, data: Dataset, index: npt.NDArray[np.int64]
) -> npt.NDArray[np.float32]:
    import numpy as np

    features, mirrored = _hog_inputs(data, index, model.mirror)
    probs = model.predict_proba(features, mirrored)
    out = np.zeros((len(index), len(data.class_names)), dtype=np.float32)
    out[:, np.asarray(model.classes_, dtype=np.int64)] = probs  # a class absent from training
    return out


# --- Keras ---------------------------------------------------------------------------------


def _configure_tensorflow(threads: int | None = None) -> None:
    """Quiet logs, ``threads`` for TensorFlow's pools (default: the cores of this process, not
    cut by load, so that two runs train alike) and deterministic ops, once, before first use.

    TensorFlow's results on CPU depend on its thread count (measured: small_cnn's out-of-fold
    probabilities on 600 drawings differ between 1 and 2 threads, op determinism on or off) but
    not on timing once op determinism is on; the count is part of the cache key
    (:attr:`ModelConfig.threads`)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow as tf
    except ImportError as exc:
        if exc.name not in ("tensorflow", "keras"):
            raise
        raise ModelError(keras_missing("Keras")) from None

    if getattr(_configure_tensorflow, "done", False):
        return
    count = threads or cores(spinning=False)
    try:
        tf.config.threading.set_intra_op_parallelism_threads(count)
        tf.config.threading.set_inter_op_parallelism_threads(min(2, count))
    except RuntimeError:  # already initialised by the user's code: keep their settings
        pass
    tf.config.experimental.enable_op_determinism()
    _configure_tensorflow.done = True  # type: ignore[attr-defined]


def build_keras_model(
    name: str, input_shape: tuple[int, ...], num_classes: int, learning_rate: float
) -> Any:
    """A compiled built-in CNN, trained on one-hot labels.

    ``cnn`` (the default) was chosen by measuring F1 against injected flips per second of
    training on Quick, Draw! cats and dogs: max-pooling 28x28 down to 14x14 first keeps the thin
    strokes at a quarter of the cost, and label smoothing keeps the model from memorising the
    wrong labels it is meant to expose. ``walkthrough_cnn`` is the original walkthrough's
    architecture. On a GPU both train in mixed precision, with a float32 softmax.
    """
    import keras
    import tensorflow as tf
    from keras import layers

    shape = input_shape if len(input_shape) == 3 else (*input_shape, 1)
    previous = keras.config.dtype_policy()
    if tf.config.list_physical_devices("GPU"):
        keras.config.set_dtype_policy("mixed_float16")
    try:
        if name == "walkthrough_cnn":
            body: list[Any] = []
            for filters in (128, 64, 32):
                body += [
                    layers.Conv2D(filters, 3, padding="same", activation="relu"),
                    layers.Conv2D(filters, 3, padding="same", activation="relu"),
                    layers.MaxPooling2D(),
                ]
            body.append(layers.Flatten())
            smoothing = 0.0
        else:
            body = [layers.MaxPooling2D(2)] if min(shape[:2]) >= 24 else []
            body += [
                layers.Conv2D(32, 3, padding="same", activation="relu"),
                layers.MaxPooling2D(),
                layers.Conv2D(48, 3, padding="same", activation="relu"),
                layers.MaxPooling2D(),
                layers.Dropout(0.25),
                layers.Flatten(),
                layers.Dense(96, activation="relu"),
                layers.Dropout(0.5),
            ]
            smoothing = 0.1
        model = keras.Sequential(
            [
                keras.Input(shape),
                *body,
                layers.Dense(num_classes, activation="softmax", dtype="float32"),
            ]
        )
    finally:
        keras.config.set_dtype_policy(previous)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=smoothing),
        metrics=["accuracy"],
        steps_per_execution=32,
    )
    return model


def _keras_fit(
    config: ModelConfig,
    model: Any,
    data: Dataset,
    train: npt.NDArray[np.int64],
    *,
    seed: int,
    progress: Progress | None,
) -> Any:
    _configure_tensorflow(config.threads)
    import keras

    keras.utils.set_random_seed(seed)
    assert config.batch_size is not None
    assert config.epochs is not None
    if config.name == "small_cnn":
        progressed = [_EpochProgress(progress, config.epochs)] if progress else []
        return _small_cnn_fit(config, data, train, seed=seed, callbacks=progressed)
    one_hot = model is None  # built-ins train on one-hot labels, a factory's model on integers
    if model is None:
        assert config.learning_rate is not None
        shape, classes = keras_input_shape(data), len(data.class_names)
        model = build_keras_model(config.name, shape, classes, config.learning_rate)
    elif getattr(model, "optimizer", None) is None:
        model.compile(
            optimizer=keras.optimizers.Adam(config.learning_rate),
            loss="sparse_categorical_crossentropy",
        )
    callbacks = [_EpochProgress(progress, config.epochs)] if progress else []
    model.fit(
        batches(data, train, size=config.batch_size, shuffle_seed=seed, one_hot=one_hot),
        epochs=config.epochs,
        shuffle=False,  # the dataset reshuffles itself each epoch
        verbose=0,
        callbacks=callbacks,
    )
    return model


def _small_cnn_fit(
    config: ModelConfig,
    data: Dataset,
    train: npt.NDArray[np.int64],
    *,
    seed: int,
    callbacks: list[Any],
) -> Any:
    from pytest_labelquality import small_cnn

    assert config.batch_size is not None
    assert config.epochs is not None
    assert config.learning_rate is not None
    model = small_cnn.build(
        keras_input_shape(data),
        len(data.class_names),
        mirror=config.mirror,
        learning_rate=config.learning_rate,
        steps=config.epochs * -(-len(train) // config.batch_size),
    )
    small_cnn.fit(
        model,
        data,
        train,
        epochs=config.epochs,
        batch_size=config.batch_size,
        seed=seed,
        callbacks=callbacks,
    )
    return small_cnn.predictor(model, mirror=config.mirror)


def _keras_predict(
    model: Any, data: Dataset, index: npt.NDArray[np.int64]
) -> npt.NDArray[np.float32]:
    _configure_tensorflow()
    inputs = batches(data, index, size=512).map(lambda x, _: x)
    probs = model.predict(inputs, verbose=0)  # one softmax output per class
    return class_probabilities(probs, None, rows=len(index), num_classes=len(data.class_names))


def _EpochProgress(progress: Progress, epochs: int) -> Any:
    """A Keras callback that reports each epoch's loss and accuracy."""
    import keras

    class EpochProgress(keras.callbacks.Callback):  # type: ignore[misc]
        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            logs = logs or {}
            acc = f", accuracy {logs['accuracy']:.3f}" if "accuracy" in logs else ""
            progress(
                f"  epoch {epoch + 1}/{epochs}: loss {logs.get('loss', float('nan')):.3f}{acc}"
            )

    return EpochProgress()
