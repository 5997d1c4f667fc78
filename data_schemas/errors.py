"""User-facing store errors: one line that names the path and the problem."""

from __future__ import annotations


class StoreError(ValueError):
    """A store is missing, malformed or inconsistent. ``str(err)`` is a one-line message."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


class SchemaVersionError(StoreError):
    """The store was written with a schema major version this code does not read."""
