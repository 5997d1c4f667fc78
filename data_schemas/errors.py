"""The user-facing errors of dmd3c: bad input or a condition the user can fix.

Every error a user can cause derives from :class:`DmdError` and is raised where the bad input
is detected; ``str(err)`` is one line that names what is wrong and, where it helps, what to do.
The ``dmd3c`` command prints exactly these as ``dmd3c: error: ...`` (exit status 2); any other
exception is a bug and keeps its traceback (exit status 1).

The concrete classes also derive from the builtin a caller would expect (``ValueError``,
``FileNotFoundError``, ``RuntimeError``), so library code that catches those keeps working.

    DmdError
    ├── ConfigError          an option, config key or preset is invalid
    ├── InputError           an input file or array is malformed
    │   └── InputNotFoundError   an input path does not exist
    ├── StoreError           a sample store is missing, malformed or inconsistent
    │   ├── SchemaVersionError   written with a schema major version this code does not read
    │   └── StoreBusyError       another job holds the store's lease
    ├── CheckpointError      a checkpoint file is malformed or does not fit the model
    └── TrainingError        training had to stop (non-finite loss, out of memory)
"""

from __future__ import annotations

import os


class DmdError(Exception):
    """Base of every user-facing dmd3c error; ``str(err)`` is a one-line message."""


class ConfigError(DmdError, ValueError):
    """An option, config key, preset name or value is invalid."""


class InputError(DmdError, ValueError):
    """An input file, folder or array is malformed or unusable."""


class InputNotFoundError(InputError, FileNotFoundError):
    """An input path the user named does not exist."""


class StoreError(DmdError, ValueError):
    """A store is missing, malformed or inconsistent. ``str(err)`` is a one-line message."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


class SchemaVersionError(StoreError):
    """The store was written with a schema major version this code does not read."""


class StoreBusyError(StoreError):
    """Another job holds the store's lease."""


class CheckpointError(DmdError, ValueError):
    """A checkpoint file is malformed or does not match the model; one-line message."""

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        super().__init__(f"{os.fspath(path)}: {problem}")
        self.path = os.fspath(path)
        self.problem = problem


class TrainingError(DmdError, RuntimeError):
    """Training had to stop; ``str(err)`` is one line that says why and what to try."""
