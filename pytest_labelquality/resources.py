"""Threads and helper processes sized to the machine as it is: the cores this process may
actually use (CPU affinity, a cgroup's CPU quota), shared among pytest-xdist's workers, and
fewer when other work already keeps the cores busy (a shared CI runner); helper processes that
exit with the run."""

from __future__ import annotations

import functools
import math
import os
import threading
import time
from collections.abc import MutableMapping
from pathlib import Path

CGROUP = Path("/sys/fs/cgroup")
#: Set by the user, it fixes the threads per process and turns off the sizing by load.
THREADS_ENV = "LABEL_QUALITY_THREADS"


def cpu_quota(root: Path = CGROUP) -> float | None:
    """Cores allowed by the cgroup's CPU quota (v2 ``cpu.max``, v1 ``cpu.cfs_quota_us``), or
    None when there is no quota."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota_us / period_us if quota_us > 0 and period_us > 0 else None


def available_cores() -> int:
    """The cores this process may run on, capped by a cgroup quota."""
    affinity = getattr(os, "sched_getaffinity", None)  # absent on macOS and Windows
    mine = len(affinity(0)) if affinity else os.cpu_count() or 1
    quota = cpu_quota()
    return max(1, min(mine, math.ceil(quota)) if quota else mine)


def memory_bytes(root: Path = CGROUP) -> int | None:
    """The memory this process may use: the machine's, capped by a cgroup's limit (v2
    ``memory.max``, v1 ``memory.limit_in_bytes``); None where neither can be read."""
    try:
        physical: int | None = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # Windows has no sysconf
        physical = None
    limits = [physical] if physical else []
    for name in ("memory.max", "memory/memory.limit_in_bytes"):
        try:
            text = (root / name).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and 0 < int(text) < 2**60:  # v1 writes a huge number for no limit
            limits.append(int(text))
    return min(limits) if limits else None


def cores(load: float | None = None, *, spinning: bool = True) -> int:
    """The threads one process should run: :func:`available_cores` shared among xdist's
    workers, and fewer when the machine is busy and the threads spin while they wait.

    Threads that spin at every parallel step (boosted trees synchronise thousands of times per
    fold) burn the time slices of the very thread they wait for when other work keeps the cores
    busy (:func:`current_load` at least one above them): a run takes many times longer. Then
    each process takes its fair share of the cores, at least one. Threads that sleep while they
    wait (``spinning=False``) keep their share: on a busy machine each thread gets its own time
    slices, so two of them still finish sooner than one. ``$LABEL_QUALITY_THREADS`` overrides
    all of this."""
    fixed = os.environ.get(THREADS_ENV, "")
    if fixed.isdigit() and int(fixed) > 0:
        return int(fixed)
    available = available_cores()
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT", "")
    share = max(1, available // max(1, int(workers) if workers.isdigit() else 1))
    if load is None:
        load = current_load()
    if not spinning or load < available + 1:
        return share
    return max(1, min(share, math.floor(share * available / load)))


def current_load(proc: Path = Path("/proc/loadavg")) -> float:
    """How many tasks compete for the cores: the 1-minute load average, or the tasks runnable
    right now besides this one when more (the average lags a minute behind a job that starts)."""
    average = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    try:
        running = int(proc.read_text().split()[3].split("/")[0]) - 1
    except (OSError, ValueError, IndexError):
        running = 0
    return max(average, float(running))


@functools.cache
def passive_openmp() -> bool:
    """Let OpenMP threads sleep rather than spin while they wait (``OMP_WAIT_POLICY=PASSIVE``),
    unless the user chose otherwise; returns whether they do in this process (decided once).
    Joblib's workers inherit the setting."""
    return set_passive_openmp(os.environ, Path("/proc/self/maps"))


def set_passive_openmp(environ: MutableMapping[str, str], maps: Path) -> bool:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` in ``environ`` unless set; whether it is in effect. The
    OpenMP runtime reads it when it loads: where it is loaded already (listed in ``maps``: the
    user's code imported scikit-learn first), only a setting made before counts."""
    before = environ.get("OMP_WAIT_POLICY", "")
    try:
        loaded = any(name in maps.read_text() for name in ("libgomp", "libiomp", "libomp"))
    except OSError:  # no /proc: assume it is loaded, so that only the user's setting counts
        loaded = True
    policy = before if loaded else environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return policy.upper() == "PASSIVE"


_watching: set[int] = set()


def exit_with_parent(parent: int, every: float = 0.5) -> None:
    """In a helper process (a joblib worker): exit as soon as ``parent`` is gone, so a run
    killed with ``kill -9`` leaves no worker behind. Does nothing in ``parent`` itself."""
    if os.getpid() == parent or parent in _watching:
        return
    _watching.add(parent)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every)
        os._exit(1)

    threading.Thread(target=watch, name="label-quality-exit-with-parent", daemon=True).start()
