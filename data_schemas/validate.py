"""Whole-store validation: schema, arrays, and commit records against the data."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from data_schemas.errors import StoreError
from data_schemas.sample_schema import ArraySpec

if TYPE_CHECKING:
    from data_schemas.sample_store import SampleStore


@dataclass
class ValidationReport:
    """What :func:`validate` found; ``pending_with_data`` are shards written but not committed."""

    url: str
    num_samples: int = 0
    committed: list[int] = field(default_factory=list)
    pending: list[int] = field(default_factory=list)
    pending_with_data: list[int] = field(default_factory=list)


def validate(store: SampleStore | str | os.PathLike[str],
             allow_pending: bool = False) -> ValidationReport:
    """Check a store; raise :class:`StoreError` (one line, path + problem) on the first fault.

    With ``allow_pending`` (a store still being generated), shards holding data without a
    commit record are reported instead of raising.
    """
    from data_schemas.sample_store import SampleStore  # zarr: see the package docstring

    opened = store if isinstance(store, SampleStore) else SampleStore.open(store)
    for spec in opened.specs.values():
        check_array(opened, spec)
    report = ValidationReport(opened.url, opened.num_samples, opened.committed_shards,
                              opened.pending_shards)
    for shard in opened.committed_shards:
        check_committed_shard(opened, shard)
    report.pending_with_data = [s for s in report.pending if shard_has_data(opened, s)]
    if report.pending_with_data and not allow_pending:
        first = report.pending_with_data[0]
        raise StoreError(opened.url, f"shard {first} has data but no commit record "
                                     f"({len(report.pending_with_data)} such shards; an "
                                     f"interrupted write: re-run the generator to redo them)")
    return report


def check_array(store: SampleStore, spec: ArraySpec) -> None:
    """The stored array matches its spec: dtype, shape, chunking, dimension names."""
    array = store.array(spec.name)
    where = f"array {spec.name!r}"
    expected_shape = spec.full_shape(store.layout.capacity)
    if array.shape != expected_shape:
        raise StoreError(store.url, f"{where} has shape {array.shape}, expected {expected_shape}")
    if not _dtype_matches(spec, array.dtype):
        raise StoreError(store.url, f"{where} has dtype {array.dtype}, expected {spec.dtype}")
    if array.chunks != (1, *spec.sample_shape) or array.shards != (
            store.layout.shard_size, *spec.sample_shape):
        raise StoreError(store.url, f"{where} has chunks {array.chunks} / shards "
                                    f"{array.shards}, expected one sample per chunk and "
                                    f"{store.layout.shard_size} per shard")
    if tuple(array.metadata.dimension_names or ()) != spec.dims:
        raise StoreError(store.url, f"{where} has dimension_names "
                                    f"{array.metadata.dimension_names}, expected {spec.dims}")


def _dtype_matches(spec: ArraySpec, dtype: np.dtype) -> bool:
    if spec.dtype == "str":
        return dtype.kind in "OUT"
    return dtype == spec.numpy_dtype


def check_committed_shard(store: SampleStore, shard: int) -> None:
    """The keys stored in the shard's rows equal its commit record."""
    record = store.records[shard]
    if record.count and not shard_has_data(store, shard):
        raise StoreError(store.url, f"shard {shard} has a commit record of {record.count} "
                                    f"samples but no data")
    rows = store.layout.shard_rows(shard)
    stored = [str(k) for k in np.asarray(store.array("key")[rows])]
    expected = list(record.keys) + [""] * (store.layout.shard_size - record.count)
    if stored != expected:
        bad = next(i for i, (a, b) in enumerate(zip(stored, expected, strict=True)) if a != b)
        raise StoreError(store.url, f"shard {shard} row {bad}: stored key {stored[bad]!r} != "
                                    f"commit record {expected[bad]!r}")


def shard_has_data(store: SampleStore, shard: int) -> bool:
    """Whether any array holds a shard object for ``shard``."""
    return any(store.location.exists(store.shard_object(name, shard)) for name in store.specs)
