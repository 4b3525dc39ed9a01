"""Temperature scaling of out-of-fold probabilities before confident learning counts them.

Confident learning counts an item as wrong when another class's probability reaches that
class's threshold, the mean probability of the class over the items labelled with it. A model
whose probabilities are soft by construction (``small_cnn`` trains with label smoothing: on
digits its most probable class gets 0.88 on average at 99% accuracy) keeps every item's true
class below its threshold, so it can rank wrong labels first and count almost none of them.
One temperature, the one under which the given labels are most likely, sharpens or softens all
probabilities alike: it never reorders a ranking by ``given_vs_rival`` or the most probable
class. Fitted to noisy labels it also inflates the count of models that are not soft, so
``detection.calibrate: auto`` applies it to the soft ones only (docs/benchmarks.md, "The count
against the ranking").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

#: Inverse temperatures searched: from ten times softer to ten times sharper.
LOWEST, HIGHEST = 0.1, 10.0
#: Probabilities are floored here before their logarithm (some models give exact zeros).
FLOOR = 1e-12
#: Newton steps on the inverse temperature (the log-likelihood is concave in it).
STEPS = 50


def _scaled(logs: npt.NDArray[np.float64], beta: float) -> npt.NDArray[np.float64]:
    import numpy as np

    z = logs * beta
    z -= z.max(axis=1, keepdims=True)
    q = np.exp(z)
    q /= q.sum(axis=1, keepdims=True)
    return q


def _logs(probs: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.float64]:
    import numpy as np

    return np.log(np.clip(np.asarray(probs, dtype=np.float64), FLOOR, 1.0))


def fit_temperature(labels: npt.NDArray[np.int64], probs: npt.NDArray[np.floating[Any]]) -> float:
    """The temperature (``1 / beta``) under which ``labels`` are most likely."""
    return _fitted(labels, _logs(probs))


def _fitted(labels: npt.NDArray[np.int64], logs: npt.NDArray[np.float64]) -> float:
    """:func:`fit_temperature` on the probabilities' logarithms ``z``.

    The mean log-likelihood ``beta * z_given - logsumexp(beta * z)`` is concave in ``beta``:
    its slope is the given class's log-probability less the mean of the scaled distribution's,
    falling as ``beta`` grows. Newton's method finds the zero of the slope, kept inside a
    bracket that halves where a step would leave it."""
    import numpy as np

    given = logs[np.arange(len(labels)), labels]
    low, high, beta = LOWEST, HIGHEST, 1.0
    for _ in range(STEPS):
        q = _scaled(logs, beta)
        mean = (q * logs).sum(axis=1)
        slope = float((given - mean).mean())
        if abs(slope) < 1e-10 or high - low < 1e-9 * beta:
            break
        if slope > 0:
            low = beta
        else:
            high = beta
        curvature = float((q * (logs - mean[:, None]) ** 2).sum(axis=1).mean())
        step = beta + slope / curvature if curvature > 0 else np.inf
        beta = step if low < step < high else (low + high) / 2
    return 1.0 / beta


def calibrated(
    labels: npt.NDArray[np.int64], probs: npt.NDArray[np.floating[Any]]
) -> tuple[npt.NDArray[np.float64], float]:
    """``probs`` at the temperature :func:`fit_temperature` chooses, and that temperature."""
    logs = _logs(probs)
    temperature = _fitted(labels, logs)
    return _scaled(logs, 1.0 / temperature), temperature
