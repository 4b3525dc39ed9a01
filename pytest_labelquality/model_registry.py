"""Every model a spec can name, one entry each: what data it trains on, which spec settings it
takes, what it needs installed, how it trains, and whether ``model: auto`` tries it.

The spec's ``model.name`` choices and its JSON Schema, the validator, the resolver, the fold
trainer, ``auto`` and the table of docs/models.md all read this registry, so a new model is one
:func:`register` call, not edits across the package. The table is plain data: behaviour is named
by import path (``"module:function"``, as entry points and ``model.factory`` are), imported only
when a model of that entry trains, so reading the registry imports nothing heavy and no module
above it. Entries registered at run time may give callables instead.
"""

from __future__ import annotations

import dataclasses
import importlib
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

#: The kinds of data a model can train on.
Kind = Literal["image", "text", "table"]
#: Spec settings beyond ``name``: ``params`` (keyword arguments of the estimator), ``keras``
#: (``epochs``, ``batch_size``, ``learning_rate``), ``mirror``, ``encoder`` (``encoder`` and
#: ``tokenizer``), ``members`` (an ensemble's).
Setting = Literal["params", "keras", "mirror", "encoder", "members"]
#: The extras a model needs: ``keras`` (TensorFlow) and ``encoders`` (onnxruntime and weights).
Extra = Literal["keras", "encoders"]
#: A function named by import path, or the function itself.
Ref = str | Callable[..., Any]

KERAS_SETTINGS = ("epochs", "batch_size", "learning_rate")
ENCODER_SETTINGS = ("encoder", "tokenizer")


@dataclass(frozen=True)
class ModelEntry:
    """One model.

    A model that trains on folds names ``fit(config, data, train, *, seed, progress)``, which
    returns ``(model, keras)``: a fitted scikit-learn-style classifier (``predict_proba``,
    ``classes_``) or a Keras model; ``fit_estimator`` trains the classifier that ``estimator(
    config, seed, data)`` builds. A model made of others names ``members(spec)``, returning each
    member's spec by a role name, and ``combine(parts, labels, names)``, which turns the members'
    out-of-fold results into one. ``chooses`` marks ``auto``, which picks another entry.
    """

    name: str
    summary: str
    accepts: frozenset[Kind]
    settings: frozenset[Setting] = frozenset({"params"})
    needs: tuple[Extra, ...] = ()
    estimator: Ref | None = None
    fit: Ref = "pytest_labelquality.models:fit_estimator"
    members: Ref | None = None
    combine: Ref | None = None
    chooses: bool = False
    #: Trains a Keras model (TensorFlow's version is part of its cache key).
    keras: bool = False
    #: Trains on a frozen encoder's embeddings of the items, not on their raw features.
    embeds: bool = False
    #: Its probabilities are soft by construction (label smoothing caps every item's
    #: confidence): ``detection.calibrate: auto`` temperature-scales them before counting.
    soft_probabilities: bool = False
    #: Folds may train at once (``cv.jobs``): false where one fold already uses every core.
    parallel_folds: bool = True
    #: Keras settings a spec leaves out (``epochs: None`` is computed from the training items).
    keras_defaults: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    #: The kinds of data for which ``auto`` tries this model, cheapest (lowest) first.
    auto_for: frozenset[Kind] = frozenset()
    auto_cost: int = 0

    def takes(self, setting: Setting) -> bool:
        """Whether a spec may set ``setting`` for this model."""
        return setting in self.settings

    def spec_from(self, spec: Any) -> Any:
        """``spec`` (a :class:`~pytest_labelquality.spec.ModelSpec`) as a spec of this model,
        keeping only the settings it takes: how ``auto`` and ``ensemble`` hand theirs on."""
        kept: dict[str, Any] = {"name": self.name}
        if not self.takes("keras"):
            kept |= dict.fromkeys(KERAS_SETTINGS)
        if not self.takes("params"):
            kept["params"] = {}
        if not self.takes("mirror"):
            kept["mirror"] = None
        if not self.takes("encoder"):
            kept |= dict.fromkeys(ENCODER_SETTINGS)
        if not self.takes("members"):
            kept["members"] = None
        return dataclasses.replace(spec, **kept)

    def call(self, what: Literal["estimator", "fit", "members", "combine"]) -> Callable[..., Any]:
        """The function this entry names for ``what``, imported now."""
        ref = getattr(self, what)
        if ref is None:
            raise TypeError(f"model {self.name} has no {what}")
        if callable(ref):
            return typing.cast("Callable[..., Any]", ref)
        module, attr = ref.split(":")
        found: Callable[..., Any] = getattr(importlib.import_module(module), attr)
        return found


_M = "pytest_labelquality.models"
_E = "pytest_labelquality.estimators"
_ENSEMBLE = "pytest_labelquality.ensemble"
_IMAGES_AND_TABLES: frozenset[Kind] = frozenset({"image", "table"})
_KERAS_FIT = f"{_M}:fit_keras"

_REGISTRY: dict[str, ModelEntry] = {}


def register(entry: ModelEntry) -> ModelEntry:
    """Add ``entry``; a name can be registered once."""
    if entry.name in _REGISTRY or entry.name == "factory":
        raise ValueError(f"a model named {entry.name!r} is registered already")
    trains = entry.chooses or entry.members or entry.estimator or entry.fit != ModelEntry.fit
    if not trains:
        raise ValueError(f"model {entry.name}: give an estimator, a fit or members")
    if (entry.members is None) != (entry.combine is None):
        raise ValueError(f"model {entry.name}: members and combine go together")
    _REGISTRY[entry.name] = entry
    return entry


def unregister(name: str) -> None:
    """Remove the entry ``name`` (a model registered for a while, such as a test's)."""
    del _REGISTRY[name]


def model_names() -> tuple[str, ...]:
    """Every registered model's name, in registration order: the spec's choices."""
    return tuple(_REGISTRY)


def model_entry(name: str) -> ModelEntry | None:
    """The entry of ``name``, or None (a factory, or a name nobody registered)."""
    return _REGISTRY.get(name)


def entries() -> tuple[ModelEntry, ...]:
    """Every registered entry."""
    return tuple(_REGISTRY.values())


def names_taking(setting: Setting) -> tuple[str, ...]:
    """The models that take ``setting``, for messages."""
    return tuple(e.name for e in _REGISTRY.values() if e.takes(setting))


def listed(names: tuple[str, ...]) -> str:
    """``a, b and c``."""
    return " and ".join(filter(None, (", ".join(names[:-1]), names[-1]))) if names else ""


def names_accepting(kind: Kind) -> tuple[str, ...]:
    """The models that train on ``kind``, for messages (not ``auto``, nor ``ensemble``, which
    train on whatever their choice or members do)."""
    return tuple(
        e.name
        for e in _REGISTRY.values()
        if kind in e.accepts and not e.chooses and not e.takes("members")
    )


for _entry in (
    ModelEntry(
        "hog_boosting",
        "gradient-boosted trees on HOG, colour and pixel features computed once for all folds",
        _IMAGES_AND_TABLES,
        frozenset({"params", "mirror"}),
        fit=f"{_M}:fit_hog_boosting",
        parallel_folds=False,
        auto_for=frozenset({"image"}),
        auto_cost=10,
    ),
    ModelEntry(
        "small_cnn",
        "a small Keras CNN with batch norm, shifts and mirrors, warm-up and early stopping",
        _IMAGES_AND_TABLES,
        frozenset({"keras", "mirror"}),
        needs=("keras",),
        fit=_KERAS_FIT,
        keras=True,
        parallel_folds=False,
        keras_defaults=MappingProxyType(
            {"epochs": None, "batch_size": 128, "learning_rate": 0.003}
        ),
        soft_probabilities=True,
        auto_for=frozenset({"image"}),
        auto_cost=20,
    ),
    ModelEntry(
        "ensemble",
        "the mean of its members' out-of-fold probabilities (hog_boosting and small_cnn unless"
        " model.members names others)",
        frozenset({"image", "text", "table"}),
        frozenset({"params", "keras", "mirror", "encoder", "members"}),
        needs=("keras",),
        members=f"{_ENSEMBLE}:member_specs",
        combine=f"{_ENSEMBLE}:mean_of",
        keras=True,
        parallel_folds=False,
        auto_for=frozenset({"image"}),
        auto_cost=30,
    ),
    ModelEntry(
        "auto",
        "the model of this registry with the best first-fold accuracy on this dataset",
        frozenset({"image", "text", "table"}),
        frozenset({"params", "keras", "mirror", "encoder"}),
        chooses=True,
    ),
    ModelEntry(
        "cnn",
        "a Keras CNN for drawings (max-pooled input, label smoothing)",
        _IMAGES_AND_TABLES,
        frozenset({"keras"}),
        needs=("keras",),
        fit=_KERAS_FIT,
        keras=True,
        parallel_folds=False,
        keras_defaults=MappingProxyType(
            {"epochs": None, "batch_size": 128, "learning_rate": 0.002}
        ),
        soft_probabilities=True,
    ),
    ModelEntry(
        "walkthrough_cnn",
        "the original walkthrough's Keras CNN",
        _IMAGES_AND_TABLES,
        frozenset({"keras"}),
        needs=("keras",),
        fit=_KERAS_FIT,
        keras=True,
        parallel_folds=False,
        keras_defaults=MappingProxyType({"epochs": 1, "batch_size": 128, "learning_rate": 0.001}),
    ),
    ModelEntry(
        "logistic_regression",
        "standardised features (categories one-hot) and a logistic regression",
        _IMAGES_AND_TABLES,
        estimator=f"{_E}:logistic_regression",
        auto_for=frozenset({"table"}),
        auto_cost=10,
    ),
    ModelEntry(
        "hist_gradient_boosting",
        "scikit-learn's histogram gradient boosting (native categories)",
        _IMAGES_AND_TABLES,
        estimator=f"{_E}:hist_gradient_boosting",
        auto_for=frozenset({"table"}),
        auto_cost=20,
    ),
    ModelEntry(
        "random_forest",
        "a random forest of 200 trees (categories one-hot)",
        _IMAGES_AND_TABLES,
        estimator=f"{_E}:random_forest",
        auto_for=frozenset({"table"}),
        auto_cost=30,
    ),
    ModelEntry(
        "table_ensemble",
        "the mean of logistic_regression's, hist_gradient_boosting's and a regularised"
        " boosting's out-of-fold probabilities",
        frozenset({"table"}),
        frozenset(),
        members=f"{_ENSEMBLE}:table_member_specs",
        combine=f"{_ENSEMBLE}:mean_of",
        auto_for=frozenset({"table"}),
        auto_cost=40,
    ),
    ModelEntry(
        "tfidf_linear",
        "TF-IDF of word and character n-grams and a logistic regression",
        frozenset({"text"}),
        estimator=f"{_E}:tfidf_linear",
        auto_for=frozenset({"text"}),
        auto_cost=10,
    ),
    ModelEntry(
        "encoder_linear",
        "a frozen pretrained encoder's embeddings and a logistic regression whose strength is"
        " chosen inside each training fold",
        frozenset({"image", "text"}),
        frozenset({"params", "encoder"}),
        needs=("encoders",),
        estimator=f"{_E}:tuned_logistic",
        embeds=True,
        auto_for=frozenset({"image", "text"}),
        auto_cost=15,
    ),
    ModelEntry(
        "tfidf_encoder",
        "the most accurate out of fold of tfidf_linear, encoder_linear and their mean",
        frozenset({"text"}),
        frozenset({"params", "encoder"}),
        needs=("encoders",),
        members=f"{_ENSEMBLE}:blend_specs",
        combine=f"{_ENSEMBLE}:best_of",
        auto_for=frozenset({"text"}),
        auto_cost=30,
    ),
):
    register(_entry)
