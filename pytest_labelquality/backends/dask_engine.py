"""Folds as Dask tasks: the data is scattered once (each worker that runs a fold holds one
copy), each fold is a task that the scheduler runs again elsewhere when its worker dies."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from pytest_labelquality.backends.tasks import (
    CONNECT_TIMEOUT,
    FoldFunction,
    FoldResult,
    FoldTask,
    check_greets,
    check_reachable,
    greeting_timeout,
)
from pytest_labelquality.errors import BackendError, first_line

if TYPE_CHECKING:
    from pytest_labelquality.cache import CacheRoot
    from pytest_labelquality.models import ModelConfig

_clients: dict[str | None, Any] = {}
_lock = threading.Lock()


def connect(address: str | None) -> Any:
    """A client of the scheduler at ``address`` (one per process and address); with none, of
    a new local cluster."""
    from distributed import Client

    with _lock:
        client = _clients.pop(address, None)
        if client is not None:
            if client.status == "running":
                _clients[address] = client
                return client
            _close(client)  # its scheduler went away: its callbacks must not outlive it
        if address:
            check_reachable("Dask", address)
            check_greets("Dask", address, greeting_timeout())
        try:
            client = Client(address, set_as_default=False, timeout=30)  # type: ignore[no-untyped-call]
        except (OSError, TimeoutError, ValueError) as exc:
            raise BackendError(
                f"cannot join the Dask scheduler at {address}: {first_line(exc)}"
            ) from None
        _clients[address] = client
        return client


def close_clients() -> None:
    """Close every client this process opened (at the end of a run)."""
    with _lock:
        while _clients:
            _close(_clients.popitem()[1])


def _close(client: Any) -> None:
    with contextlib.suppress(Exception):  # a scheduler already gone has nothing to say
        client.close(timeout=CONNECT_TIMEOUT)


def run(
    address: str | None,
    fold: FoldFunction,
    tasks: list[FoldTask],
    payload: Any,
    config: ModelConfig,
    seed: int,
    cache_root: CacheRoot,
    run_key: str,
) -> Iterator[FoldResult]:
    """Submit each fold, yield results as they complete; a fold's own error is raised as is.

    A worker that dies in a fold has its task run again elsewhere by the scheduler. Scattered
    data that died with the only worker holding it cannot be recomputed: then the data is
    scattered again, once, and the folds not yet done are submitted again."""
    from distributed import as_completed
    from distributed.client import FutureCancelledError
    from distributed.scheduler import KilledWorker

    client = connect(address)
    remaining = {task[0]: task for task in tasks}
    for attempt in range(2):
        [data] = client.scatter([payload], broadcast=False, hash=False)
        futures = [
            client.submit(fold, data, config, task, seed, cache_root, run_key, pure=False)
            for task in remaining.values()
        ]
        try:
            for future in as_completed(futures, loop=client.loop):  # type: ignore[no-untyped-call]
                try:
                    result: FoldResult = future.result()
                except (KilledWorker, FutureCancelledError) as exc:
                    if attempt == 0 and isinstance(exc, FutureCancelledError):
                        break  # the data was lost with its worker: scatter it again
                    raise BackendError(
                        f"a fold failed on the Dask cluster: {first_line(exc)}"
                    ) from None
                del remaining[result[0]]
                yield result
            else:
                return
        finally:
            client.cancel([*futures, data])
