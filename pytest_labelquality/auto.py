"""``model: auto``: the registered model with the best out-of-fold accuracy on this dataset.

The candidates are the registry's entries whose ``auto_for`` holds this kind of data and whose
extras are installed, cheapest first: for images ``hog_boosting``, ``encoder_linear`` (with the
encoders extra), ``small_cnn`` and ``ensemble`` (with the keras extra); for texts
``tfidf_linear``, ``encoder_linear`` and ``tfidf_encoder``; for tables the scikit-learn models
and ``table_ensemble``. Each candidate trains the first of the K folds only; that fold is cached
as the first fold of the candidate's full run, so the chosen model's run does not train it
again (a model made of others tries its members' first folds, shared between candidates). The
choice and the figures behind it are cached too: a warm run does not decide again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pytest_labelquality.model_registry import ModelEntry, entries
from pytest_labelquality.result import AutoChoice, Candidate

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from pytest_labelquality.model_registry import Kind
    from pytest_labelquality.spec import ModelSpec


def candidate_spec(spec: ModelSpec, entry: ModelEntry) -> ModelSpec:
    """``spec`` as a spec of the candidate ``entry``, keeping only the settings it takes."""
    found: ModelSpec = entry.spec_from(spec)
    return found


def candidates(kind: Kind, installed: Callable[[ModelEntry], bool]) -> tuple[ModelEntry, ...]:
    """The entries ``auto`` tries on data of ``kind``, cheapest first."""
    found = [e for e in entries() if kind in e.auto_for and installed(e)]
    return tuple(sorted(found, key=lambda e: e.auto_cost))


#: A costlier candidate must beat a cheaper one by more than this accuracy to be chosen.
MARGIN = 0.005

FirstFold = Callable[["ModelSpec"], "tuple[npt.NDArray[np.float32], npt.NDArray[np.int64], float]"]


def choose(
    tried: tuple[ModelEntry, ...],
    spec: ModelSpec,
    labels: npt.NDArray[np.int64],
    first_fold: FirstFold,
) -> AutoChoice:
    """Each candidate's accuracy on the first fold's held-out items (against the given labels)
    and training seconds, and the chosen one. A model made of others is its entry's
    ``combine`` of its members' first folds."""
    import numpy as np

    from pytest_labelquality.crossval import OutOfFold

    folds: dict[str, Any] = {}  # by member spec, so that candidates share their members' folds

    def fold_of(member: ModelSpec) -> Any:
        if repr(member) not in folds:
            folds[repr(member)] = first_fold(member)
        return folds[repr(member)]

    figures: dict[str, Candidate] = {}
    test: Any = None
    for entry in tried:
        own = candidate_spec(spec, entry)
        if entry.members:
            members = entry.call("members")(own)
            parts = [fold_of(m) for m in members.values()]
            test = parts[0][1]
            as_runs = [OutOfFold(p[0], (p[2],), 0) for p in parts]
            combined = entry.call("combine")(as_runs, labels[test], tuple(members))
            fold_probs, seconds = combined.pred_probs, sum(p[2] for p in parts)
        else:
            fold_probs, test, seconds = fold_of(own)
        accuracy = float(np.mean(fold_probs.argmax(axis=1) == labels[test]))
        figures[entry.name] = Candidate(round(accuracy, 4), round(seconds, 2))
    chosen = tried[0].name
    for entry in tried[1:]:
        if figures[entry.name].accuracy > figures[chosen].accuracy + MARGIN:
            chosen = entry.name
    return AutoChoice(chosen, figures, budget="the first fold", held_out=len(test))
