"""``model: auto``: the built-in model with the best out-of-fold accuracy on this dataset.

Each candidate trains the first of the K folds only; that fold is cached as the first fold of
the candidate's full run, so the chosen model's run does not train it again. The choice and the
figures behind it are cached too: a warm run does not decide again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pytest_labelquality.spec import KERAS_MODELS, ModelName, ModelSpec

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt


def candidate_spec(spec: ModelSpec, name: ModelName) -> ModelSpec:
    """``spec`` as a spec of the candidate ``name``, keeping only the settings it takes: Keras
    settings for Keras models, ``params`` for the others, both for the ensemble."""
    if name is ModelName.ENSEMBLE:
        return dataclasses.replace(spec, name=name)
    if name in KERAS_MODELS:
        return dataclasses.replace(spec, name=name, params={})
    return dataclasses.replace(spec, name=name, epochs=None, batch_size=None, learning_rate=None)


#: Candidates by kind of data, cheapest first: a tie goes to the cheaper model.
IMAGE_CANDIDATES = (ModelName.HOG_BOOSTING, ModelName.SMALL_CNN, ModelName.ENSEMBLE)
TABULAR_CANDIDATES = (
    ModelName.LOGISTIC_REGRESSION,
    ModelName.HIST_GRADIENT_BOOSTING,
    ModelName.RANDOM_FOREST,
)
#: A costlier candidate must beat a cheaper one by more than this accuracy to be chosen.
MARGIN = 0.005

FirstFold = Callable[[ModelName], "tuple[npt.NDArray[np.float32], npt.NDArray[np.int64], float]"]


def choose(
    candidates: tuple[ModelName, ...],
    labels: npt.NDArray[np.int64],
    first_fold: FirstFold,
) -> dict[str, Any]:
    """Each candidate's accuracy on the first fold's held-out items (against the given labels)
    and training seconds, and the chosen one. ``ensemble`` averages its members' first folds."""
    import numpy as np

    from pytest_labelquality.ensemble import MEMBERS

    probs: dict[ModelName, Any] = {}
    figures: dict[str, dict[str, float]] = {}
    test: Any = None
    for name in candidates:
        if name is ModelName.ENSEMBLE:
            parts = [probs.get(m) or first_fold(m) for m in MEMBERS]
            probs[name] = (
                sum(p[0] for p in parts) / len(parts),
                parts[0][1],
                sum(p[2] for p in parts),
            )
        else:
            probs[name] = first_fold(name)
        fold_probs, test, seconds = probs[name]
        accuracy = float(np.mean(fold_probs.argmax(axis=1) == labels[test]))
        figures[name.value] = {"accuracy": round(accuracy, 4), "seconds": round(seconds, 2)}
    chosen = candidates[0].value
    for name in candidates[1:]:
        if figures[name.value]["accuracy"] > figures[chosen]["accuracy"] + MARGIN:
            chosen = name.value
    return {
        "chosen": chosen,
        "candidates": figures,
        "budget": "the first fold",
        "held_out": len(test),
    }
