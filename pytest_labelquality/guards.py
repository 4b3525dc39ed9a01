"""Checks on user model code: what its ``predict_proba`` returns, and its errors told with the
user's own frames rather than the plugin's internals."""

from __future__ import annotations

import contextlib
import sys
import sysconfig
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_labelquality.errors import LabelQualityError, ModelError, UserCodeError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

ROW_SUM_TOLERANCE = 1e-3
_PLUGIN = Path(__file__).resolve().parent
_LIBRARIES = {  # the standard library and installed packages, of this environment and its base
    Path(paths[name]).resolve()
    for paths in (sysconfig.get_paths(), sysconfig.get_paths(vars={"base": sys.base_prefix}))
    for name in ("stdlib", "platstdlib", "purelib", "platlib")
}


def user_frames(exc: BaseException) -> str:
    """The traceback of ``exc`` without the plugin's, the standard library's or installed
    packages' frames: what the user wrote (their factory module, their helpers)."""
    frames = [
        frame for frame in traceback.extract_tb(exc.__traceback__) if _is_user_file(frame.filename)
    ]
    if isinstance(exc, SyntaxError) and exc.filename and exc.lineno:
        frames.append(traceback.FrameSummary(exc.filename, exc.lineno, "<module>", line=exc.text))
    return "".join(traceback.format_list(frames)).rstrip()


def _is_user_file(name: str) -> bool:
    if name.startswith("<"):
        return False
    path = Path(name).resolve()
    return not any(path.is_relative_to(root) for root in (_PLUGIN, *_LIBRARIES))


def user_error(factory: str, exc: BaseException, doing: str) -> UserCodeError:
    """A :class:`UserCodeError` naming the factory, what it was doing, and the exception."""
    what = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return UserCodeError(
        f"model.factory {factory!r}: {doing} raised {what}; fix the factory or the model it"
        " returns (its frames are below)",
        user_frames(exc),
    )


@contextlib.contextmanager
def blame_factory(factory: str | None) -> Iterator[None]:
    """Errors raised while a factory's model trains or predicts name the factory; exceptions
    from user code keep the user's frames. Does nothing for built-in models."""
    if factory is None:
        yield
        return
    try:
        yield
    except UserCodeError:
        raise
    except ModelError as exc:
        cause = exc.__cause__
        if cause is not None and not isinstance(cause, LabelQualityError):
            raise user_error(factory, cause, "training") from None
        raise ModelError(f"model.factory {factory!r}: {exc}") from None
    except LabelQualityError:
        raise
    except Exception as exc:
        raise user_error(factory, exc, "training or predicting") from None


def class_probabilities(
    probs: Any, classes: Any, *, rows: int, num_classes: int
) -> npt.NDArray[np.float32]:
    """``predict_proba``'s output as a ``(rows, num_classes)`` matrix, its columns moved to the
    dataset's classes by ``classes`` (the model's ``classes_``; None: already in order).

    Raises :class:`ModelError` for a wrong shape, values that are not finite probabilities, rows
    that do not sum to 1, or ``classes_`` that are not the dataset's label indices."""
    import numpy as np

    try:
        probs = np.asarray(probs, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"predict_proba returned something that is not numbers: {exc}") from None
    if classes is None:
        columns = np.arange(num_classes)
    else:
        columns = np.asarray(classes).reshape(-1)
        valid = columns.dtype.kind in "iu" or (
            columns.dtype.kind == "f" and np.all(np.mod(columns, 1) == 0)
        )
        if not valid or len(np.unique(columns)) != len(columns) or len(columns) == 0:
            raise ModelError(
                f"the model's classes_ are {columns.tolist()[:10]}; expected distinct label"
                f" indices from 0 to {num_classes - 1} (the model is trained on integer labels)"
            )
        columns = columns.astype(np.int64)
        if columns.min() < 0 or columns.max() >= num_classes:
            raise ModelError(
                f"the model's classes_ include {int(columns.max())}; the dataset has"
                f" {num_classes} classes (label indices 0 to {num_classes - 1})"
            )
    expected = (rows, len(columns))
    if probs.shape != expected:
        raise ModelError(
            f"predict_proba returned an array of shape {list(probs.shape)}; expected"
            f" {list(expected)} (one row per item, one column per class in classes_)"
        )
    bad = ~np.isfinite(probs) | (probs < 0) | (probs > 1 + ROW_SUM_TOLERANCE)
    if bad.any():
        row, column = np.argwhere(bad)[0]
        raise ModelError(
            f"predict_proba returned {probs[row, column]!r} at row {row}, column {column};"
            " expected probabilities between 0 and 1"
        )
    sums = probs.sum(axis=1)
    off = np.flatnonzero(np.abs(sums - 1) > ROW_SUM_TOLERANCE)
    if len(off):
        raise ModelError(
            f"predict_proba's rows must sum to 1; row {off[0]} sums to {sums[off[0]]:.4f}"
            f" ({len(off)} of {rows} rows are off)"
        )
    out = np.zeros((rows, num_classes), dtype=np.float32)
    out[:, columns] = probs
    return out
