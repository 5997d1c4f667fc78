"""Whole-store validation: schema, arrays, commit records against the data and, with
``strict``, every chunk's checksum and the physical ranges of the values."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from data_schemas.errors import StoreError
from data_schemas.geometry import MIN_DEPTH_M
from data_schemas.sample_schema import ArraySpec

if TYPE_CHECKING:
    from data_schemas.sample_store import SampleStore

DEFAULT_MAX_DEPTH_M = 1000.0
"""Depth ceiling when the store's attributes name none (sensor / teacher range)."""
FOCAL_RANGE_PX = (1.0, 1e5)
"""Plausible focal lengths (px) of a stored K."""


@dataclass
class ValidationReport:
    """What :func:`validate` found; ``pending_with_data`` are shards written but not committed."""

    url: str
    num_samples: int = 0
    committed: list[int] = field(default_factory=list)
    pending: list[int] = field(default_factory=list)
    pending_with_data: list[int] = field(default_factory=list)
    checked_values: bool = False
    """Whether every committed chunk was read (checksums) and its values range-checked."""


def validate(store: SampleStore | str | os.PathLike[str], allow_pending: bool = False,
             strict: bool = False) -> ValidationReport:
    """Check a store; raise :class:`StoreError` (one line, path + problem) on the first fault.

    With ``allow_pending`` (a store still being generated), shards holding data without a
    commit record are reported instead of raising. With ``strict`` every committed sample of
    every array is read (verifying each chunk's checksum) and its values checked against
    their physical ranges (:func:`check_values`).
    """
    from data_schemas.sample_store import SampleStore  # zarr: see the package docstring

    opened = store if isinstance(store, SampleStore) else SampleStore.open(store)
    for spec in opened.specs.values():
        check_array(opened, spec)
    report = ValidationReport(opened.url, opened.num_samples, opened.committed_shards,
                              opened.pending_shards)
    for shard in opened.committed_shards:
        check_committed_shard(opened, shard)
        if strict:
            check_values(opened, shard)
    report.checked_values = strict
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
    allowed = {spec.full_shape(store.layout.capacity), spec.full_shape(store.finished_rows)}
    if array.shape not in allowed:
        raise StoreError(store.url, f"{where} has shape {array.shape}, expected "
                                    f"{spec.full_shape(store.layout.capacity)} (or trimmed to "
                                    f"{store.finished_rows} rows)")
    if not _dtype_matches(spec, array.dtype):
        raise StoreError(store.url, f"{where} has dtype {array.dtype}, expected {spec.dtype}")
    if array.chunks != (1, *spec.sample_shape) or array.shards != (
            store.layout.shard_size, *spec.sample_shape):
        raise StoreError(store.url, f"{where} has chunks {array.chunks} / shards "
                                    f"{array.shards}, expected one sample per chunk and "
                                    f"{store.layout.shard_size} per shard")
    dims = tuple(getattr(array.metadata, "dimension_names", None) or ())
    if dims != spec.dims:
        raise StoreError(store.url, f"{where} has dimension_names {dims}, expected {spec.dims}")


def _dtype_matches(spec: ArraySpec, dtype: object) -> bool:
    if spec.dtype == "str":
        return getattr(dtype, "kind", "") in "OUT"
    return bool(dtype == spec.numpy_dtype)


def check_committed_shard(store: SampleStore, shard: int) -> None:
    """The keys stored in the shard's rows equal its commit record."""
    record = store.records[shard]
    if record.count and not shard_has_data(store, shard):
        raise StoreError(store.url, f"shard {shard} has a commit record of {record.count} "
                                    f"samples but no data")
    stored = [str(k) for k in store.read_rows(shard, 0, record.count, ("key",))["key"]]
    if stored != list(record.keys):
        bad = next(i for i, (a, b) in enumerate(zip(stored, record.keys, strict=True)) if a != b)
        raise StoreError(store.url, f"shard {shard} row {bad}: stored key {stored[bad]!r} != "
                                    f"commit record {record.keys[bad]!r}")


def shard_has_data(store: SampleStore, shard: int) -> bool:
    """Whether any array holds a shard object for ``shard``."""
    return any(store.shard_exists(name, shard) for name in store.specs)


# -- physical ranges ------------------------------------------------------------------------
def depth_limits(store: SampleStore) -> dict[str, float]:
    """Largest plausible value (m) of each depth array: the sensor's and the teacher's range
    from the root attributes, else :data:`DEFAULT_MAX_DEPTH_M`."""
    sensor = store.attrs.get("sensor")
    generator = store.attrs.get("generator")
    sensor_max = sensor.get("max_range_m") if isinstance(sensor, dict) else None
    metric = generator.get("metric") if isinstance(generator, dict) else None
    teacher_max = metric.get("max_depth_m") if isinstance(metric, dict) else None
    far = metric.get("far_m") if isinstance(metric, dict) else None
    if isinstance(far, list) and far:
        teacher_max = max(float(teacher_max or 0.0), float(max(far)))
    return {"sparse_depth": _limit(sensor_max), "teacher_depth": _limit(teacher_max)}


def _limit(value: object) -> float:
    """A configured range with room for sensor noise (+1 m) and the 1/256 m storage step."""
    return float(value) + 1.0 if isinstance(value, (int, float)) else DEFAULT_MAX_DEPTH_M


def check_values(store: SampleStore, shard: int) -> None:
    """Read every array of a committed shard (checksums verified) and check its values:
    depth finite and 0 or within [near plane, range]; K a plausible pinhole; rgb present."""
    record = store.records[shard]
    if not record.count:
        return
    arrays = store.read_shard(shard)
    limits = depth_limits(store)
    for name, top in limits.items():
        _check_depth(store, shard, name, arrays[name], top)
    output = arrays["teacher_output"]
    if not np.isfinite(output).all():
        _raise_row(store, shard, "teacher_output", ~np.isfinite(output), "is not finite")
    _check_intrinsics(store, shard, arrays["intrinsics"])


def _check_depth(store: SampleStore, shard: int, name: str, depth: np.ndarray,
                 top: float) -> None:
    bad = ~np.isfinite(depth)
    if bad.any():
        _raise_row(store, shard, name, bad, "depth is not finite")
    outside = (depth != 0) & ((depth < MIN_DEPTH_M * 0.5) | (depth > top))
    if outside.any():
        value = float(depth[outside].flat[0])
        _raise_row(store, shard, name, outside, f"depth {value:.4g} m is neither 0 nor within "
                                                f"[{MIN_DEPTH_M * 0.5:g}, {top:g}] m")


def _check_intrinsics(store: SampleStore, shard: int, K: np.ndarray) -> None:
    lo, hi = FOCAL_RANGE_PX
    h, w = store.layout.height, store.layout.width
    focal_ok = (K[:, 0, 0] >= lo) & (K[:, 0, 0] <= hi) & (K[:, 1, 1] >= lo) & (K[:, 1, 1] <= hi)
    centre_ok = (np.abs(K[:, 0, 2] - w / 2) <= w) & (np.abs(K[:, 1, 2] - h / 2) <= h)
    last_ok = np.all(np.isclose(K[:, 2], [0.0, 0.0, 1.0]), axis=1) & (K[:, 1, 0] == 0)
    ok = focal_ok & centre_ok & last_ok & np.isfinite(K).all(axis=(1, 2))
    if not ok.all():
        row = int(np.flatnonzero(~ok)[0])
        _raise_row(store, shard, "intrinsics", ~ok, f"implausible K {K[row].tolist()} "
                                                    f"(focal {lo:g}-{hi:g} px, principal point "
                                                    f"near the {h}x{w} canvas, last row 0 0 1)")


def _raise_row(store: SampleStore, shard: int, name: str, bad: np.ndarray,
               problem: str) -> None:
    rows = np.flatnonzero(bad.reshape(len(bad), -1).any(axis=1))
    offset = int(rows[0])
    key = store.records[shard].keys[offset]
    row = shard * store.layout.shard_size + offset
    raise StoreError(store.url, f"array {name!r}, shard {shard}, sample {key!r} (row {row}): "
                                f"{problem} ({len(rows)} bad samples in this shard)")
