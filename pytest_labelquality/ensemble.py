"""``ensemble``: the mean of the out-of-fold probabilities of ``hog_boosting`` and ``small_cnn``;
``table_ensemble``: of ``logistic_regression`` and ``hist_gradient_boosting`` unregularised and
regularised; ``tfidf_encoder``: the best of ``tfidf_linear``, ``encoder_linear`` and their mean.

Better and more diverse models find more label errors (cleanlab's advice): boosted trees on
hand-made features and a CNN on the pixels make different mistakes, so their average is more
accurate than either. Each member is an ordinary cross-validated run with its own cache entries
(a member trained alone, or by ``model: auto``, is not trained again), and incremental re-checks
work per member.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from pytest_labelquality.result import Blend, Incremental

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from pytest_labelquality.crossval import OutOfFold
    from pytest_labelquality.spec import ModelSpec


#: ``ensemble``'s members when ``model.members`` names none.
DEFAULT_MEMBERS = ("hog_boosting", "small_cnn")


def member_specs(spec: ModelSpec) -> dict[str, ModelSpec]:
    """``ensemble``'s members (``model.members``, or :data:`DEFAULT_MEMBERS`), each given the
    settings it takes: ``params`` to ``hog_boosting``; ``epochs``, ``batch_size`` and
    ``learning_rate`` to ``small_cnn``; ``mirror`` to both; ``encoder`` to an encoder model."""
    from pytest_labelquality.errors import ModelError
    from pytest_labelquality.model_registry import model_entry

    out: dict[str, ModelSpec] = {}
    for name in spec.members or DEFAULT_MEMBERS:
        entry = model_entry(name)
        if entry is None:
            raise ModelError(f"model.members: {name} is not a registered model")
        out[name] = entry.spec_from(spec)
    return out


#: ``hist_gradient_boosting`` as tabaudit sets it for label noise (shallow trees, large leaves,
#: L2, early stopping): "an over-confident model calls its own mistakes label errors".
REGULARISED_BOOSTING: dict[str, Any] = {
    "max_iter": 200,
    "learning_rate": 0.05,
    "max_leaf_nodes": 15,
    "min_samples_leaf": 40,
    "l2_regularization": 1.0,
    "early_stopping": True,
    "validation_fraction": 0.15,
}


def table_member_specs(spec: ModelSpec) -> dict[str, ModelSpec]:
    """``table_ensemble``'s members. Measured on scikit-learn's digits, wine and breast_cancer
    with planted flips (10 seeds each, ``benchmarks/tables.py``), their mean finds more flips
    than any one of them on all three, where each alone loses on one (docs/benchmarks.md,
    "Tables")."""
    base = dataclasses.replace(spec, params={})
    boosting = dataclasses.replace(base, name="hist_gradient_boosting")
    return {
        "logistic_regression": dataclasses.replace(base, name="logistic_regression"),
        "hist_gradient_boosting": boosting,
        "hist_gradient_boosting_regularised": dataclasses.replace(
            boosting, params=dict(REGULARISED_BOOSTING)
        ),
    }


def mean_of(
    parts: list[OutOfFold], labels: npt.NDArray[np.int64], names: tuple[str, ...]
) -> OutOfFold:
    """The members' mean probabilities; a fold's seconds are the sum of the members'."""
    import numpy as np

    from pytest_labelquality.crossval import OutOfFold

    probs = np.asarray(np.mean([p.pred_probs for p in parts], axis=0), dtype=np.float32)
    seconds = [sum(s) for s in zip(*(p.fold_seconds for p in parts), strict=False)]
    members = {n: p.incremental for n, p in zip(names, parts, strict=True) if p.incremental}
    first = parts[0].incremental
    return OutOfFold(
        pred_probs=probs,
        fold_seconds=tuple(seconds),
        folds_cached=min(p.folds_cached for p in parts),
        incremental=Incremental(first.reused, first.relabelled, first.scored, members=members)
        if first is not None and len(members) == len(parts)
        else None,
    )


#: The mean, or the encoder alone, must beat TF-IDF's accuracy by more than this to be chosen.
BLEND_MARGIN = 0.002


def blend_specs(spec: ModelSpec) -> dict[str, ModelSpec]:
    """``tfidf_encoder``'s members: ``params`` go to ``tfidf_linear``, ``encoder`` and
    ``tokenizer`` to ``encoder_linear``."""
    return {
        "tfidf_linear": dataclasses.replace(
            spec, name="tfidf_linear", encoder=None, tokenizer=None
        ),
        "encoder_linear": dataclasses.replace(spec, name="encoder_linear", params={}),
    }


def best_of(
    parts: list[OutOfFold], labels: npt.NDArray[np.int64], names: tuple[str, ...]
) -> OutOfFold:
    """The most accurate against the given labels, out of fold, of the first member (TF-IDF),
    the others (the encoder) and the mean of all: on short news items the mean measured best
    (0.890 against 0.856 and 0.871 on AG News), on long posts TF-IDF alone (0.91 against the
    encoder's 0.83). A later option must beat the first by :data:`BLEND_MARGIN`."""
    import numpy as np

    mean = mean_of(parts, labels, names)
    options: dict[str, Any] = {n: p.pred_probs for n, p in zip(names, parts, strict=True)}
    options["mean"] = mean.pred_probs
    accuracy = {
        name: round(float(np.mean(probs.argmax(axis=1) == labels)), 4)
        for name, probs in options.items()
    }
    chosen = names[0]
    for name in (*names[1:], "mean"):
        if accuracy[name] > accuracy[chosen] + BLEND_MARGIN:
            chosen = name
    embedded = next((p.embeddings for p in parts if p.embeddings), None)
    return dataclasses.replace(
        mean,
        pred_probs=options[chosen],
        embeddings=embedded,
        vectors=next((p.vectors for p in parts if p.vectors is not None), None),
        blend=Blend(chosen, accuracy),
    )
