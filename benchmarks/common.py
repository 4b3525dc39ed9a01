"""What the benchmark scripts share: where the drawings are, and measuring a child process."""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

DEFAULT_DATA = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / "quickdraw" / "numpy_bitmap"
)
# Plugins of this project's dev environment that a user's gate run does not load: Hypothesis's
# pytest plugin alone imports for 0.9 s, which would be half of a warm run's wall time.
DEV_ONLY_PLUGINS = ["-p", "no:hypothesispytest"]


def drawings_folder(description: str, *extra: tuple[str, dict[str, object]]) -> argparse.Namespace:
    """Parse ``--data`` (and ``extra`` options); ``args.data`` is None when the drawings are absent,
    after saying so."""
    parser = argparse.ArgumentParser(description=description.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the numpy_bitmap folder")
    for flag, options in extra:
        parser.add_argument(flag, **options)  # type: ignore[arg-type]
    args = parser.parse_args()
    if not (args.data / "cat.npy").is_file() or not (args.data / "dog.npy").is_file():
        print(f"Quick, Draw! cat.npy and dog.npy not found in {args.data}; nothing to measure.")
        args.data = None
    return args


def measured(
    command: list[str], *, cwd: Path, env: dict[str, str] | None = None
) -> tuple[int, float, float, str]:
    """Exit status, wall seconds, peak resident MiB (this child alone) and output of a command."""
    with tempfile.TemporaryFile("w+") as out:
        start = time.perf_counter()
        child = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
        out.seek(0)
        return os.waitstatus_to_exitcode(status), wall, usage.ru_maxrss / 1024, out.read()


def gate_process(folder: Path) -> tuple[int, float, float, str]:
    """One whole ``pytest --label-quality`` process on the specs in ``folder``, with its cache
    in ``folder/cache`` and its results in ``folder/results.json``: see :func:`measured`."""
    import sys

    command = [
        sys.executable,
        "-m",
        "pytest",
        "--label-quality",
        f"--label-quality-cache-dir={folder / 'cache'}",
        f"--label-quality-json={folder / 'results.json'}",
        "-q",
        *DEV_ONLY_PLUGINS,
        str(folder),
    ]
    return measured(command, cwd=folder)
