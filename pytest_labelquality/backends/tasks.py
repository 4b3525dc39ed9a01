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

#: Seconds to wait for a cluster's address to accept a connection before naming it in an error.
CONNECT_TIMEOUT = 5.0
#: Seconds a scheduler that accepted the connection may take to greet it (Dask's scheduler
#: sends its handshake at once); ``$LABEL_QUALITY_BACKEND_TIMEOUT`` changes it.
GREETING_TIMEOUT = 10.0
TIMEOUT_ENV = "LABEL_QUALITY_BACKEND_TIMEOUT"

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


def greeting_timeout() -> float:
    """The seconds to wait for a scheduler's greeting: ``$LABEL_QUALITY_BACKEND_TIMEOUT`` or
    :data:`GREETING_TIMEOUT`."""
    import os

    raw = os.environ.get(TIMEOUT_ENV, "")
    try:
        value = float(raw) if raw else GREETING_TIMEOUT
    except ValueError:
        raise BackendError(f"${TIMEOUT_ENV} must be a number of seconds, got {raw!r}") from None
    if not value > 0:
        raise BackendError(f"${TIMEOUT_ENV} must be above 0, got {raw!r}")
    return value


def check_greets(engine: str, address: str, timeout: float) -> None:
    """Raise :class:`BackendError` when something at ``address`` (``tcp://host:port``) accepts
    a connection but sends nothing within ``timeout`` seconds: a client would wait forever."""
    scheme, _, where = address.rpartition("://")
    host, _, port = where.rstrip("/").rpartition(":")
    if scheme not in ("", "tcp") or not host or not port.isdigit():
        return  # TLS and other transports greet differently
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT) as s:
            s.settimeout(timeout)
            greeted = bool(s.recv(1))
    except TimeoutError:
        greeted = False
    except OSError:
        return  # check_reachable names an address that refuses
    if not greeted:
        raise BackendError(
            f"the {engine} scheduler at {address} accepted the connection but did not answer"
            f" within {timeout:g} s; check that it is a {engine} scheduler and not stuck (or"
            f" raise ${TIMEOUT_ENV})"
        )
