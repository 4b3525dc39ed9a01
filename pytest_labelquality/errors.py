"""The plugin's exceptions and warnings: one small tree, each with a message a person can act on."""

from __future__ import annotations

from pathlib import Path


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
