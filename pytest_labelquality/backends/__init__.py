"""Where folds train: in this process (``local``, the default), or as tasks on a Ray cluster or a
Dask scheduler the team already runs. Chosen per machine (an option, its ini twin or
``$LABEL_QUALITY_BACKEND``), never per dataset: the answers are the same wherever folds train.

A fold is one task: the function the caller passes (the cross-validation module's
``run_fold``), a plain function of the model configuration, a reference to the data (put into
the engine's object store, or scattered, once per dataset and run), the fold's rows, the seed and
the cache's location. It trains, writes the fold's cache entry and model, and returns the
held-out probabilities; the driver gathers them, detects and gates as a local run does. Folds
already in the cache are never submitted. This module imports only the standard library; an
engine is imported when a run first uses it.
"""

from __future__ import annotations

import enum
import importlib.util
import os
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pytest_labelquality.backends.tasks import FoldFunction, FoldResult, FoldTask
from pytest_labelquality.errors import BackendError, install_hint

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from pytest_labelquality.cache import CacheRoot
    from pytest_labelquality.dataset import Dataset
    from pytest_labelquality.models import ModelConfig

BACKEND_ENV = "LABEL_QUALITY_BACKEND"


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
        f"the {name.value} backend needs {' and '.join(absent)}, which is not installed:"
        f" {install_hint(extra)}"
    )


def resolve(name: str, address: str | None) -> Backend:
    """A backend from its settings: the address falls back to the engine's usual variable."""
    chosen = BackendName(name)
    if chosen is not BackendName.LOCAL and not address:
        address = os.environ.get(ENGINES[chosen][2]) or None
    return Backend(chosen, address if chosen is not BackendName.LOCAL else None)


def close_engines() -> None:
    """Close the connections that engines used in this process opened; an engine never used
    is not imported."""
    dask_engine = sys.modules.get("pytest_labelquality.backends.dask_engine")
    if dask_engine is not None:
        dask_engine.close_clients()


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
    fold: FoldFunction,
) -> Iterator[FoldResult]:
    """Train ``tasks`` on the backend's cluster, each a call of ``fold`` writing its own cache
    entry; their results as they complete. The data travels to the cluster once per dataset."""
    problem = missing_extra(backend.name)
    if problem:
        raise BackendError(problem)
    if backend.name is BackendName.RAY:
        from pytest_labelquality.backends import ray_engine as engine
    else:
        from pytest_labelquality.backends import dask_engine as engine  # type: ignore[no-redef]
    payload = (uuid.uuid4().hex, data, content)
    yield from engine.run(backend.address, fold, tasks, payload, config, seed, cache_root, run_key)
