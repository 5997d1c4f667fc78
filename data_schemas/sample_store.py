"""Create and read the sharded Zarr v3 sample store.

Layout on disk (``<store>/``)::

    zarr.json                 root group, attributes: schema, canvas, shard_size, ...
    rgb/ sparse_depth/ ...    one array per :func:`array_specs` entry, [N, ...] with
                              chunks of one sample and shards of ``shard_size`` samples
    commits/shard-000012.json commit record of shard 12 (see :mod:`commit_record`)

Only rows of committed shards are samples. Rows after a shard's ``count`` and rows of
uncommitted shards hold fill values (or the leftovers of an interrupted write) and are
never returned by :class:`SampleStore`.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import zarr

from data_schemas.commit_record import COMMITS_GROUP, ShardRecord, parse_record_name, record_name
from data_schemas.errors import SchemaVersionError, StoreError
from data_schemas.layout import StoreInfo, StoreLayout, layout_from_attributes, root_attributes
from data_schemas.location import StoreLocation
from data_schemas.sample_schema import (
    SCHEMA_NAME,
    SCHEMA_VERSION,
    ArraySpec,
    array_specs,
    parse_schema_version,
)

Sample = dict[str, np.ndarray]
"""One sample: array name -> value without the sample axis (``key``/``source``: 0-d str)."""


def create_store(url: str | os.PathLike[str], layout: StoreLayout, info: StoreInfo,
                 overwrite: bool = False) -> SampleStore:
    """Create an empty store (driver side, once): all arrays, the commits group, attributes."""
    location = StoreLocation.parse(url)
    if location.exists("zarr.json") and not overwrite:
        raise StoreError(location.url, "a store already exists here (pass overwrite=True)")
    root = zarr.open_group(location.zarr_store(read_only=False), mode="w", zarr_format=3,
                           attributes=root_attributes(layout, info))
    for spec in array_specs(layout.height, layout.width).values():
        _create_array(root, spec, layout)
    root.create_group(COMMITS_GROUP, attributes={
        "description": "one JSON commit record per written shard: shard-NNNNNN.json"})
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
        zarr.consolidate_metadata(location.zarr_store(read_only=False))
    return SampleStore.open(location.url, mode="r+")


def _create_array(root: zarr.Group, spec: ArraySpec, layout: StoreLayout) -> None:
    dtype = str if spec.dtype == "str" else spec.numpy_dtype
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(string|StringDType).*")
        root.create_array(
            spec.name, shape=spec.full_shape(layout.capacity), dtype=dtype,
            chunks=(1, *spec.sample_shape), shards=(layout.shard_size, *spec.sample_shape),
            fill_value=spec.fill_value, dimension_names=spec.dims,
            attributes={"units": spec.units, "description": spec.description})


@dataclass(frozen=True)
class _Row:
    shard: int
    offset: int


class SampleStore:
    """A store opened for reading (and, through :mod:`shard_writer`, for shard writes)."""

    def __init__(self, location: StoreLocation, root: zarr.Group) -> None:
        self.location = location
        self.root = root
        self.attrs: dict[str, object] = dict(root.attrs)
        self.layout: StoreLayout = layout_from_attributes(self.attrs)
        self.specs: dict[str, ArraySpec] = array_specs(self.layout.height, self.layout.width)

    @classmethod
    def open(cls, url: str | os.PathLike[str], mode: str = "r") -> SampleStore:
        """Open an existing store (``mode`` "r", or "r+" to write shards); refuses
        non-stores and unknown schema majors."""
        if mode not in ("r", "r+"):
            raise ValueError(f"mode must be 'r' or 'r+', got {mode!r}")
        location = StoreLocation.parse(url)
        if not location.exists():
            raise StoreError(location.url, "no such store")
        if not location.exists("zarr.json"):
            raise StoreError(location.url, "not a Zarr v3 store (no zarr.json)")
        try:
            root = zarr.open_group(location.zarr_store(read_only=mode == "r"), mode=mode)
        except Exception as err:  # zarr raises several types for broken metadata
            raise StoreError(location.url, f"cannot open as a Zarr group: {err}") from err
        check_schema(location.url, dict(root.attrs))
        return cls(location, root)

    @property
    def read_only(self) -> bool:
        return bool(self.root.read_only)

    @property
    def url(self) -> str:
        return self.location.url

    def array(self, name: str) -> zarr.Array:
        if name not in self.specs:
            raise KeyError(f"unknown array {name!r}; arrays: {', '.join(self.specs)}")
        try:
            return self.root[name]  # type: ignore[return-value]
        except KeyError as err:
            raise StoreError(self.url, f"array {name!r} is missing") from err

    def shard_object(self, name: str, shard: int) -> str:
        """Relative path of the zarr shard object holding ``shard`` of array ``name``."""
        spec = self.specs[name]
        return "/".join([name, "c", str(shard)] + ["0"] * len(spec.sample_shape))

    # -- commit records -----------------------------------------------------------------
    @cached_property
    def records(self) -> dict[int, ShardRecord]:
        """Commit records by shard index (read once; :meth:`refresh` re-reads)."""
        found: dict[int, ShardRecord] = {}
        for name in self.location.list_names(COMMITS_GROUP):
            shard = parse_record_name(name)
            if shard is not None:
                found[shard] = self._read_record(shard)
        return found

    def _read_record(self, shard: int) -> ShardRecord:
        path = record_name(shard)
        try:
            record = ShardRecord.from_json(self.location.read_bytes(path))
        except (ValueError, KeyError, TypeError) as err:
            raise StoreError(self.location.path(path), f"corrupt commit record: {err}") from err
        if record.shard != shard or record.count > self.layout.shard_size:
            raise StoreError(self.location.path(path), "commit record does not match its shard")
        return record

    def refresh(self) -> None:
        """Forget cached commit records (after another process committed shards)."""
        self.__dict__.pop("records", None)
        self.__dict__.pop("_rows", None)

    def is_committed(self, shard: int) -> bool:
        return shard in self.records

    @property
    def committed_shards(self) -> list[int]:
        return sorted(self.records)

    @property
    def pending_shards(self) -> list[int]:
        return [s for s in range(self.layout.num_shards) if s not in self.records]

    @cached_property
    def _rows(self) -> list[_Row]:
        return [_Row(shard, offset) for shard in self.committed_shards
                for offset in range(self.records[shard].count)]

    @property
    def num_samples(self) -> int:
        """Samples in committed shards."""
        return len(self._rows)

    def keys(self) -> list[str]:
        return [key for shard in self.committed_shards for key in self.records[shard].keys]

    def locate(self, index: int) -> tuple[int, int]:
        """Sample ``index`` (0..num_samples-1 over committed shards) -> (shard, offset)."""
        if not -self.num_samples <= index < self.num_samples:
            raise IndexError(f"sample {index} out of range [0, {self.num_samples})")
        row = self._rows[index]
        return row.shard, row.offset

    # -- reads ------------------------------------------------------------------------
    def read_sample(self, index: int) -> Sample:
        """One sample by its index over committed shards."""
        shard, offset = self.locate(index)
        row = shard * self.layout.shard_size + offset
        return {name: np.asarray(self.array(name)[row]) for name in self.specs}

    def read_shard(self, shard: int, names: tuple[str, ...] | None = None) -> Sample:
        """The committed samples of one shard, ``[count, ...]`` per array, one contiguous read."""
        if shard not in self.records:
            raise StoreError(self.url, f"shard {shard} is not committed")
        count = self.records[shard].count
        start = shard * self.layout.shard_size
        wanted = names or tuple(self.specs)
        return {name: np.asarray(self.array(name)[start:start + count]) for name in wanted}


def check_schema(url: str, attrs: dict[str, object]) -> None:
    """Raise :class:`StoreError` unless ``attrs`` describe a store this code can read."""
    schema = attrs.get("schema")
    if not isinstance(schema, dict) or schema.get("name") != SCHEMA_NAME:
        raise StoreError(url, f"not a dmd3c sample store (root attribute schema.name is not "
                              f"{SCHEMA_NAME!r})")
    try:
        major, _ = parse_schema_version(schema.get("version"))
    except ValueError as err:
        raise StoreError(url, str(err)) from err
    ours, _ = parse_schema_version(SCHEMA_VERSION)
    if major != ours:
        raise SchemaVersionError(url, f"store has schema version {schema.get('version')}, "
                                      f"this dmd3c reads version {ours}.x ({SCHEMA_VERSION})")
    for name in ("canvas", "shard_size", "num_shards"):
        if name not in attrs:
            raise StoreError(url, f"root attribute {name!r} is missing")
