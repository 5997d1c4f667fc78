"""Store statistics computed with dask over the committed samples (``dmd3c inspect``)."""

from __future__ import annotations

from collections import Counter

import dask.array as da
import numpy as np
from dask.base import compute

from data_schemas.errors import StoreError
from data_schemas.sample_store import SampleStore
from data_schemas.validate import ValidationReport

DEPTH_BIN_EDGES_M = (0.0, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0, float("inf"))


def committed_rows(store: SampleStore) -> np.ndarray:
    """Row indices of all committed samples, in sample order."""
    size = store.layout.shard_size
    rows = [shard * size + np.arange(store.records[shard].count) for shard in
            store.committed_shards]
    return np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)


def committed_dask(store: SampleStore, name: str) -> da.Array:
    """``[num_samples, ...]`` dask array of ``name`` over committed samples, shard-sized blocks."""
    array = store.array(name)
    chunks = (store.layout.shard_size, *array.shape[1:])
    lazy: da.Array = da.from_zarr(array, chunks=chunks)  # type: ignore[no-untyped-call]
    rows: da.Array = lazy[committed_rows(store)]
    return rows


def depth_summary(depth: da.Array) -> dict[str, da.Array]:
    """Lazy valid fraction, range and histogram of a depth stack (0 = invalid)."""
    valid = depth > 0
    values = da.where(valid, depth, np.nan).astype(np.float64)
    edges = np.asarray(DEPTH_BIN_EDGES_M[:-1] + (1e9,))
    counts, _ = da.histogram(  # type: ignore[no-untyped-call]
        da.where(valid, depth, -1.0), bins=edges)
    return {"valid_fraction": valid.mean(dtype=np.float64), "min_m": da.nanmin(values),
            "max_m": da.nanmax(values), "mean_m": da.nanmean(values), "histogram": counts}


def store_summary(store: SampleStore, report: ValidationReport) -> dict[str, object]:
    """Everything ``dmd3c inspect`` prints, as JSON-ready values."""
    summary: dict[str, object] = {
        "store": store.url,
        "schema_version": store.schema_version,
        "canvas": [store.layout.height, store.layout.width],
        "shard_size": store.layout.shard_size,
        "num_shards": store.layout.num_shards,
        "num_samples": store.num_samples,
        "num_rows": store.num_rows,
        "values_checked": report.checked_values,
        "shards_committed": len(report.committed),
        "shards_pending": len(report.pending),
        "shards_pending_with_data": report.pending_with_data,
        "teacher": store.attrs.get("teacher", {}),
        "sensor": store.attrs.get("sensor", {}),
        "code_version": store.attrs.get("code_version", ""),
        **_skipped_summary(store),
    }
    summary.update(_array_stats(store))
    return summary


def _skipped_summary(store: SampleStore) -> dict[str, object]:
    reasons = Counter(item.reason.split(":")[0] for record in store.records.values()
                      for item in record.skipped)
    return {"num_skipped": sum(reasons.values()), "skipped_reasons": dict(reasons)}


def _array_stats(store: SampleStore) -> dict[str, object]:
    if store.num_samples == 0:
        return {"sparse_valid_fraction": 0.0, "sparse_depth": None, "teacher_depth": None}
    names = ("sparse_depth", "teacher_depth")
    lazy = {name: depth_summary(committed_dask(store, name)) for name in names}
    try:
        (computed,) = compute(lazy)  # type: ignore[no-untyped-call]
    except Exception as err:  # a corrupt chunk: name it (array, shard, sample, row)
        for shard in store.committed_shards:
            store.read_shard(shard, names)
        raise StoreError(store.url, f"cannot compute statistics: {err}") from err
    out: dict[str, object] = {name: _to_json(stats) for name, stats in computed.items()}
    out["sparse_valid_fraction"] = out["sparse_depth"]["valid_fraction"]  # type: ignore[index]
    out["depth_bin_edges_m"] = [e if np.isfinite(e) else None for e in DEPTH_BIN_EDGES_M]
    return out


def _to_json(stats: dict[str, object]) -> dict[str, object]:
    result: dict[str, object] = {}
    for key, value in stats.items():
        array = np.asarray(value)
        if array.ndim:
            result[key] = [int(v) for v in array]
        else:
            result[key] = None if not np.isfinite(array) else float(array)
    return result
