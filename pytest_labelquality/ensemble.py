"""``ensemble``: the mean of the out-of-fold probabilities of ``hog_boosting`` and ``small_cnn``.

Better and more diverse models find more label errors (cleanlab's advice): boosted trees on
hand-made features and a CNN on the pixels make different mistakes, so their average is more
accurate than either. Each member is an ordinary cross-validated run with its own cache entries
(a member trained alone, or by ``model: auto``, is not trained again), and incremental re-checks
work per member.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from pytest_labelquality.spec import ModelName, ModelSpec

if TYPE_CHECKING:
    from pytest_labelquality.crossval import OutOfFold

MEMBERS = (ModelName.HOG_BOOSTING, ModelName.SMALL_CNN)


def member_specs(spec: ModelSpec) -> list[ModelSpec]:
    """Each member's spec: ``params`` go to ``hog_boosting``; ``epochs``, ``batch_size`` and
    ``learning_rate`` to ``small_cnn``; ``mirror`` to both."""
    trees = dataclasses.replace(
        spec, name=ModelName.HOG_BOOSTING, epochs=None, batch_size=None, learning_rate=None
    )
    cnn = dataclasses.replace(spec, name=ModelName.SMALL_CNN, params={})
    return [trees, cnn]


def combine(parts: list[OutOfFold]) -> OutOfFold:
    """The members' mean probabilities; a fold's seconds are the sum of the members'."""
    import numpy as np

    from pytest_labelquality.crossval import OutOfFold

    probs = np.asarray(np.mean([p.pred_probs for p in parts], axis=0), dtype=np.float32)
    seconds = [sum(s) for s in zip(*(p.fold_seconds for p in parts), strict=False)]
    incremental = {m.value: p.incremental for m, p in zip(MEMBERS, parts, strict=True)}
    return OutOfFold(
        pred_probs=probs,
        fold_seconds=tuple(seconds),
        folds_cached=min(p.folds_cached for p in parts),
        incremental=incremental if all(p.incremental for p in parts) else {},
    )
