"""Write one whole shard in one call, then commit it.

Protocol (one writer per shard, enforced by the caller's work assignment):

1. delete the shard's commit record, if any: from now on the shard is pending;
2. delete the shard's objects (through zarr's store API, keys from zarr), then write every
   array's full shard slot (``shard_size`` rows, padded with fill values; ``valid`` True on
   the written rows): zarr's sharding codec would otherwise read the old object to merge
   into it, and fail on one left truncated by an interrupted write;
3. write the commit record atomically;
4. when that was the last pending shard, trim the arrays to the last sample
   (:meth:`SampleStore.finish`): a finished store has no padding rows.

A crash anywhere before 3 leaves a pending shard that readers ignore and a re-run rewrites.
Writing the same shard twice with the same data gives the same bytes (idempotent).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from data_schemas.commit_record import ShardRecord, SkippedSample, record_name
from data_schemas.sample_schema import FLOAT16_MAX, MAX_DEPTH_M, ArraySpec
from data_schemas.sample_store import SampleStore
from data_schemas.store_codecs import to_stored


def write_shard(store: SampleStore, shard: int, batch: Mapping[str, object],
                skipped: Sequence[SkippedSample] = (), extra: Mapping[str, object] | None = None,
                ) -> ShardRecord:
    """Write ``batch`` (array name -> ``[n, ...]`` array or list of str, n <= shard_size)
    as shard ``shard``; ``valid`` is filled in. ValueError when it does not fit the schema."""
    store.layout.check_shard(shard)
    if store.read_only:
        raise ValueError(f"{store.url}: opened read-only; open with mode='r+' to write shards")
    store.require_current_schema("writing shards")
    arrays = prepare_shard(store.specs, store.layout.shard_size, batch)
    keys = tuple(str(k) for k in arrays["key"])
    record = ShardRecord(shard, keys, tuple(skipped), dict(extra or {}))
    store.location.delete(record_name(shard))
    store.reopen_for_writes()
    for name in store.specs:
        store.delete_shard(name, shard)
    first = store.layout.shard_rows(shard).start
    for name, values in arrays.items():
        _write_rows(store, name, shard, slice(first, first + len(values)), values)
    store.location.write_bytes_atomic(record_name(shard), record.to_json())
    store.finish()
    return record


def _write_rows(store: SampleStore, name: str, shard: int, rows: slice,
                values: np.ndarray) -> None:
    """Write the samples' rows of ``name`` (the rows after them are never encoded: they read
    as fill values). zarrs (0.2.3) leaves a shard of fill values only (e.g. sparse maps
    without a single return) unwritten whatever ``write_empty_chunks`` says; zarr-python
    then writes it, so every committed shard with samples has an object in every array."""
    if rows.start == rows.stop:
        return
    store.fast_array(name)[rows] = values
    if not store.shard_exists(name, shard):
        store.array(name)[rows] = values


def _batch_len(batch: Mapping[str, object]) -> int:
    return len(np.asarray(batch["key"]))


def prepare_shard(specs: Mapping[str, ArraySpec], shard_size: int,
                  batch: Mapping[str, object]) -> dict[str, np.ndarray]:
    """Check ``batch`` against the schema; every array as stored (``[n, ...]``, n <=
    ``shard_size``), ``valid`` added. The rows after the ``n`` samples are not written: they
    hold fill values (``valid`` False). An empty mapping is an empty shard (every input
    skipped): nothing to write."""
    if not batch:
        return {name: _empty(spec) for name, spec in specs.items()}
    missing = sorted(set(specs) - set(batch) - {"valid"})
    unknown = sorted(set(batch) - set(specs))
    if missing or unknown:
        raise ValueError(f"shard batch arrays differ from the schema: missing {missing}, "
                         f"unknown {unknown}")
    count = _batch_len(batch)
    if count > shard_size:
        raise ValueError(f"{count} samples do not fit a shard of {shard_size}")
    _check_keys(np.asarray(batch["key"]).reshape(-1))
    full = {**batch, "valid": np.ones(count, bool)} if "valid" in specs else batch
    return {name: _as_stored(spec, np.asarray(full[name]), count)
            for name, spec in specs.items()}


def _empty(spec: ArraySpec) -> np.ndarray:
    dtype = object if spec.dtype == "str" else spec.numpy_dtype
    return np.zeros((0, *spec.sample_shape), dtype=dtype)


def _check_keys(keys: Sequence[str] | np.ndarray) -> None:
    as_list = [str(k) for k in keys]
    if any(not k for k in as_list):
        raise ValueError("sample keys must be non-empty strings")
    if len(set(as_list)) != len(as_list):
        raise ValueError("sample keys in a shard must be unique")


def _as_stored(spec: ArraySpec, values: np.ndarray, count: int) -> np.ndarray:
    if values.shape != (count, *spec.sample_shape):
        raise ValueError(f"array {spec.name!r}: shape {values.shape} != expected "
                         f"{(count, *spec.sample_shape)}")
    if spec.dtype == "str":
        return np.array([str(v) for v in values], dtype=object)
    target = spec.numpy_dtype
    if not np.can_cast(values.dtype, target, casting="same_kind"):
        raise ValueError(f"array {spec.name!r}: dtype {values.dtype} cannot be stored as {target}")
    _check_values(spec, values)
    return to_stored(spec, np.ascontiguousarray(values, dtype=target))


def _check_values(spec: ArraySpec, values: np.ndarray) -> None:
    """No NaN or inf (min / max propagate them: two passes instead of three), and values the
    array's stored precision can hold (``m/256``: [0, 255.996] m)."""
    if values.dtype.kind != "f" or not values.size:
        return
    low, high = float(values.min()), float(values.max())
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"array {spec.name!r}: NaN or inf values (stores never hold NaN; "
                         f"use {spec.fill_value} for no data)")
    if spec.storage == "m/256" and (low < 0 or high > MAX_DEPTH_M):
        raise ValueError(f"array {spec.name!r}: depth {low if low < 0 else high} m is outside "
                         f"the stored range [0, {MAX_DEPTH_M:.3f}] m (uint16 at 1/256 m)")
    if spec.storage == "float16" and max(-low, high) > FLOAT16_MAX:
        raise ValueError(f"array {spec.name!r}: value {max(-low, high)} exceeds float16's "
                         f"range +-{FLOAT16_MAX}")
