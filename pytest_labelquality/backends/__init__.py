"""Where folds train: in this process (``local``, the default), or as tasks on a Ray cluster or a
Dask scheduler the team already runs. Chosen per machine (an option, its ini twin or
``$LABEL_QUALITY_BACKEND``), never per dataset: the answers are the same wherever folds train.

A fold is one task, :func:`pytest_labelquality.crossval.run_fold`: a plain function of the
model configuration, a reference to the data (put into the engine's object store, or scattered,
once per dataset and run), the fold's rows, the seed and the cache's location. It trains,
writes the fold's cache entry and model, and returns the held-out probabilities; the driver
gathers them, detects and gates as a local run does. Folds already in the cache are never
submitted. This module imports only the standard library; an engine is imported when a run
first uses it.
"""

from __future__ import annotations

import enum
import importlib.util
import os
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pytest_labelquality.errors import BackendError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from pytest_labelquality.cache import CacheRoot
    from pytest_labelquality.models import ModelConfig
    from pytest_labelquality.sources import Dataset

BACKEND_ENV = "LABEL_QUALITY_BACKEND"
#: Seconds to wait for a cluster's address to answer before naming it in an error.
CONNECT_TIMEOUT = 5.0


class BackendName(enum.StrEnum):
    """Where folds train."""

    LOCAL = "local"
    RAY = "ray"
    DASK = "dask"


#: Each engine's modules, its extra, and the environment variable that holds its address.
ENGINES: dict[BackendName, tuple[tuple[str, ...], str, str]] = {
    BackendName.RAY: (("ray",), "ray", "RAY_ADDRESS"),
    BackendName.DASK: (("dask", "distributed"), "dask", "DASK_SCHEDULER_ADDRESS"),
}


@dataclass(frozen=True)
class Backend:
    """A resolved backend: its name and the address of its cluster (None: the engine's own
    default, which starts a cluster on this machine)."""

    name: BackendName = BackendName.LOCAL
    address: str | None = None

    @property
    def local(self) -> bool:
        """Whether folds train in this process."""
        return self.name is BackendName.LOCAL


#: The default: folds train in this process.
LOCAL = Backend()
#: A fold's task: its number, training rows and held-out rows.
FoldTask = tuple[int, "npt.NDArray[np.int64]", "npt.NDArray[np.int64]"]
#: What a task returns: its fold, held-out rows, their probabilities and the training seconds.
FoldResult = tuple[int, "npt.NDArray[np.int64]", "npt.NDArray[np.float32]", float]


def missing_extra(name: BackendName) -> str:
    """The one-line error for an engine that is not installed, naming its extra; or ``""``."""
    if name is BackendName.LOCAL:
        return ""
    modules, extra, _ = ENGINES[name]
    try:
        absent = [m for m in modules if importlib.util.find_spec(m) is None]
    except (ImportError, ValueError):
        absent = list(modules)
    if not absent:
        return ""
    return (
        f"the {name.value} backend needs {' and '.join(absent)}, which is not installed: install"
        f" the {extra} extra, pip install 'pytest-labelquality[{extra}]'"
    )


def resolve(name: str, address: str | None) -> Backend:
    """A backend from its settings: the address falls back to the engine's usual variable."""
    chosen = BackendName(name)
    if chosen is not BackendName.LOCAL and not address:
        address = os.environ.get(ENGINES[chosen][2]) or None
    return Backend(chosen, address if chosen is not BackendName.LOCAL else None)


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


def run_folds(
    backend: Backend,
    tasks: list[FoldTask],
    data: Dataset,
    config: ModelConfig,
    *,
    content: npt.NDArray[np.str_],
    seed: int,
    cache_root: CacheRoot,
    run_key: str,
) -> Iterator[FoldResult]:
    """Train ``tasks`` on the backend's cluster, each writing its own cache entry; their
    results as they complete. The data travels to the cluster once per dataset."""
    problem = missing_extra(backend.name)
    if problem:
        raise BackendError(problem)
    if backend.name is BackendName.RAY:
        from pytest_labelquality.backends import ray_engine as engine
    else:
        from pytest_labelquality.backends import dask_engine as engine  # type: ignore[no-redef]
    payload = (uuid.uuid4().hex, data, content)
    yield from engine.run(backend.address, tasks, payload, config, seed, cache_root, run_key)
