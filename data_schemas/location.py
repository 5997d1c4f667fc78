"""Where a store lives: a local path or an fsspec URL (``s3://``, ``gs://``, ``memory://``).

Zarr reads and writes the arrays; the small side files (commit records) go through fsspec,
written atomically: a local file is written to a temporary name then renamed, an object
store receives one PUT.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import fsspec
from fsspec.implementations.local import LocalFileSystem

if TYPE_CHECKING:
    import zarr.storage


def _split_url(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    if "://" not in url or url.startswith("file://"):
        local = Path(url.removeprefix("file://")).expanduser().absolute()
        return LocalFileSystem(), str(local)
    fs, root = fsspec.core.url_to_fs(url)
    return fs, root.rstrip("/")


@contextlib.contextmanager
def durable_temp(folder: str, data: bytes, prefix: str) -> Iterator[str]:
    """A temporary file in ``folder`` (created if needed) holding ``data``, flushed to disk;
    yields its path, to rename or link into place. Removed on exit unless moved away."""
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=prefix, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        yield tmp
    finally:
        Path(tmp).unlink(missing_ok=True)


@dataclass(frozen=True)
class StoreLocation:
    """A store root: ``url`` as the user gave it, ``fs``/``root`` for side files."""

    url: str
    fs: fsspec.AbstractFileSystem
    root: str

    @classmethod
    def parse(cls, url: str | os.PathLike[str]) -> StoreLocation:
        text = os.fspath(url)
        if not text:
            raise ValueError("store location is empty")
        fs, root = _split_url(text)
        return cls(text, fs, root)

    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, LocalFileSystem)

    def zarr_store(self, read_only: bool) -> zarr.storage.StoreLike:
        """The zarr store object for this location."""
        import zarr.storage

        if self.is_local:
            return zarr.storage.LocalStore(self.root, read_only=read_only)
        return zarr.storage.FsspecStore.from_url(self.url, read_only=read_only)

    def path(self, relative: str) -> str:
        return f"{self.root}/{relative}"

    def exists(self, relative: str = "") -> bool:
        return bool(self.fs.exists(self.path(relative) if relative else self.root))

    def read_bytes(self, relative: str) -> bytes:
        return bytes(self.fs.cat_file(self.path(relative)))

    def list_names(self, relative: str) -> list[str]:
        """File names (not paths) directly under ``relative``; [] when it does not exist."""
        target = self.path(relative)
        if not self.fs.exists(target):
            return []
        return sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(target, detail=False))

    def write_bytes_atomic(self, relative: str, data: bytes) -> None:
        """Write a whole file so that readers see the old file, or the new one, never a part."""
        target = self.path(relative)
        if not self.is_local:
            self.fs.pipe_file(target, data)
            return
        with durable_temp(os.path.dirname(target), data, ".tmp-") as tmp:
            os.replace(tmp, target)

    def delete(self, relative: str) -> None:
        target = self.path(relative)
        if self.fs.exists(target):
            self.fs.rm(target)
