"""What travels between the driver and an engine: a fold's task, its result, the fold function's
signature, and the reachability check every engine makes first. Standard library only."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import TYPE_CHECKING

from pytest_labelquality.errors import BackendError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

#: Seconds to wait for a cluster's address to answer before naming it in an error.
CONNECT_TIMEOUT = 5.0

#: A fold's task: its number, training rows and held-out rows.
FoldTask = tuple[int, "npt.NDArray[np.int64]", "npt.NDArray[np.int64]"]
#: What a task returns: its fold, held-out rows, their probabilities and the training seconds.
FoldResult = tuple[int, "npt.NDArray[np.int64]", "npt.NDArray[np.float32]", float]
#: The task an engine runs per fold: (payload, model configuration, task, seed, cache root,
#: run key) -> result; the engines receive it rather than import the cross-validation module.
FoldFunction = Callable[..., FoldResult]


def check_reachable(engine: str, address: str) -> None:
    """Raise :class:`BackendError` unless something listens at ``address`` (``host:port``,
    with or without a scheme such as ``tcp://`` or ``ray://``); other forms (Ray's ``auto``)
    are left to the engine."""
    where = address.split("://", 1)[-1].rsplit("/", 1)[0]
    host, _, port = where.rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT):
            pass
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        raise BackendError(
            f"cannot reach the {engine} cluster at {address}: {why}; start it, or point"
            " --label-quality-backend-address (or the engine's address variable) at it"
        ) from None
