"""The plugin's exceptions and warnings: one small tree, each with a message a person can act on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: Set by the GitHub Action's run step: install hints then name the action's input.
IN_ACTION = "LABEL_QUALITY_IN_ACTION"


def install_hint(extra: str) -> str:
    """How to install the plugin's ``extra``: pip's command, or inside the GitHub Action the
    action's ``extras`` input (which installs it on the next run)."""
    import os

    if os.environ.get(IN_ACTION):
        return (
            f"install the {extra} extra: add it to the pytest-labelquality action's extras"
            f" input (with: extras: {extra})"
        )
    return f"install the {extra} extra, pip install 'pytest-labelquality[{extra}]'"


class LabelQualityError(Exception):
    """Base class of every error this plugin raises on purpose."""


class SpecError(LabelQualityError):
    """A spec file is malformed: names the file, the line and the key."""

    def __init__(self, path: Path | str, line: int, key: str, problem: str) -> None:
        self.path = Path(path)
        self.line = line
        self.key = key
        self.problem = problem
        where = f"{self.path}:{line}"
        super().__init__(f"{where}: {key}: {problem}" if key else f"{where}: {problem}")


class DataError(LabelQualityError):
    """A dataset cannot be used as it is: names the file and what is wrong."""


class ModelError(LabelQualityError):
    """A model could not be built or trained from its spec."""


class GateFailure(LabelQualityError):
    """The estimated label noise exceeds a threshold of the spec."""


class CacheError(LabelQualityError):
    """The cache folder cannot be used: names the folder and how to point the cache elsewhere."""


class BackendError(LabelQualityError):
    """The Ray or Dask backend cannot be used: names the engine, its address or its extra."""


class OutputError(LabelQualityError):
    """A result file (JSON, HTML, Markdown) could not be written: names the file."""


class UserCodeError(ModelError):
    """A user's model factory, or the model it returned, raised: keeps the user's own frames."""

    def __init__(self, message: str, frames: str = "") -> None:
        super().__init__(message)
        self.frames = frames

    def __reduce__(self) -> tuple[Any, ...]:  # joblib workers send it back whole
        return (type(self), (str(self), self.frames))


def first_line(exc: BaseException) -> str:
    """An exception's message, first line; its type's name when it has none."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def os_error_message(exc: OSError, doing: str, hint: str, path: object = "") -> str:
    """One line for a filesystem error: what was done, to which file (``path`` when the error
    does not say, as when a write finds the disk full), why, and what to do."""
    target = exc.filename2 if exc.filename2 is not None else exc.filename  # os.replace's dest
    name = target if target is not None else path
    why = exc.strerror or str(exc)
    return f"{doing} {name}: {why}; {hint}".replace(" :", ":")
