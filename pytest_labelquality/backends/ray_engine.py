"""Folds as Ray tasks: the data is put into the object store once (workers on a node share its
one copy, read without copying), each fold is a task retried by Ray when its worker dies."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from pytest_labelquality.backends.tasks import FoldFunction, FoldResult, FoldTask, check_reachable
from pytest_labelquality.errors import BackendError, first_line

if TYPE_CHECKING:
    from pytest_labelquality.cache import CacheRoot
    from pytest_labelquality.models import ModelConfig

#: How often Ray runs a fold again whose worker died (a killed process, a lost node).
MAX_RETRIES = 3
_lock = threading.Lock()


def connect(address: str | None) -> Any:
    """The ``ray`` module, connected: to the cluster this process already joined, else to
    ``address``, else wherever ``ray.init`` goes by itself ($RAY_ADDRESS, or a new local one)."""
    if address and address not in ("auto", "local"):
        check_reachable("Ray", address)  # before Ray's import and its own long retries
    import ray

    with _lock:
        if ray.is_initialized():
            return ray
        try:
            ray.init(
                address=address,
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.ERROR,
                configure_logging=False,
            )
        except Exception as exc:  # Ray's own errors and the builtins it raises, told in a line
            raise BackendError(
                f"cannot join the Ray cluster at {address}: {first_line(exc)}"
            ) from None
    return ray


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
    """Submit each fold, yield results as they complete; a fold's own error is raised as is."""
    ray = connect(address)
    remote = ray.remote(  # few, long tasks: spread over the nodes rather than packed on one
        max_retries=MAX_RETRIES, retry_exceptions=False, num_cpus=1, scheduling_strategy="SPREAD"
    )(fold)
    data_ref = ray.put(payload)
    pending = [remote.remote(data_ref, config, task, seed, cache_root, run_key) for task in tasks]
    try:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            try:
                result: FoldResult = ray.get(done[0])
            except ray.exceptions.RayTaskError as exc:  # the fold's own error, as raised there
                raise exc.cause from None
            except ray.exceptions.RayError as exc:
                raise BackendError(f"a fold failed on the Ray cluster: {first_line(exc)}") from None
            yield result
    finally:
        for ref in pending:  # a failed fold stops the others
            ray.cancel(ref, force=True)
