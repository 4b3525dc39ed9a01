"""Trusted committed files: baselines and reviews read as they are at a commit (``git show``).

On a pull request the branch under test may rewrite its own baseline or add reviews of its own
suspects; the gate then reads those files from a trusted commit (the pull request's base) and
reports the branch's edits to them as taking effect after merge.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from pytest_labelquality.errors import DataError


def _git(folder: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(
            ["git", "-C", str(folder), *args], capture_output=True, timeout=60, check=False
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise DataError(f"cannot run git to read trusted files: {exc}") from None


def committed_text(path: Path, ref: str) -> str | None:
    """The text of ``path`` at commit ``ref``; None when the file does not exist there.

    Raises :class:`DataError` when ``ref`` is not a commit of the repository holding ``path``
    (for example a shallow checkout that lacks the base commit)."""
    folder = path.parent
    if _git(folder, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").returncode != 0:
        raise DataError(
            f"trusted ref {ref!r} is not a commit of the repository holding {path}; fetch it"
            " (with actions/checkout, fetch-depth: 2 on a pull request) or drop"
            " --label-quality-trusted-ref"
        )
    return _shown(folder, f"{ref}:./{path.name}")


def _shown(folder: Path, what: str) -> str | None:
    """``git show REF:PATH``'s text, or None when there is no such file."""
    shown = _git(folder, "show", what)
    if shown.returncode != 0:
        return None
    return shown.stdout.decode("utf-8", errors="replace")


def decisions_text(folder: Path, ref: str, inside: str) -> str | None:
    """The text of ``inside`` (a path from the top of the tree) at ``ref``, the branch where
    maintainers' decisions are recorded; None when it is not there. Raises
    :class:`DataError` when ``ref`` is not a commit of the repository holding ``folder``."""
    if _git(folder, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").returncode != 0:
        raise DataError(
            f"decisions ref {ref!r} is not a commit of the repository holding {folder}; fetch"
            " it or drop --label-quality-decisions-ref"
        )
    return _shown(folder, f"{ref}:{inside}")


def read_trusted(path: Path, ref: str | None) -> tuple[str | None, bool]:
    """The file's text as trusted (at ``ref``, or the working tree without one), and whether
    the working tree's version differs from it (an edit that takes effect after merge)."""
    try:
        local: str | None = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        local = None
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if ref is None:
        return local, False
    trusted = committed_text(path, ref)
    return trusted, trusted != local


def holding_commit(path: Path, ref: str | None) -> str | None:
    """The commit that last changed ``path`` as at ``ref`` (``HEAD`` without one): the commit
    that holds this version of it. None outside a repository, or without ``ref`` when the
    working tree's file is untracked or edited since."""
    folder, name = path.parent, f"./{path.name}"
    if ref is None:
        status = _git(folder, "status", "--porcelain", "--", name)
        if status.returncode != 0 or status.stdout.strip():
            return None
    found = _git(folder, "log", "-1", "--format=%H", ref or "HEAD", "--", name)
    commit = found.stdout.decode("ascii", errors="replace").strip()
    return commit if found.returncode == 0 and commit else None
