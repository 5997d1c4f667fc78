"""dask / xarray views of a store and the ``dmd3c inspect`` summary."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import xarray as xr

from data_schemas import SampleStore, validate
from data_schemas.store_stats import DEPTH_BIN_EDGES_M, store_summary
from tests.data_schemas.store_factory import write_store

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def store_url(tmp_path: Path) -> tuple[str, dict]:
    url = str(tmp_path / "s.zarr")
    return url, write_store(url, [4, 0, 3, 2])


def _stack(batches: dict, name: str) -> np.ndarray:
    return np.concatenate([np.asarray(b[name]) for b in batches.values() if len(b["key"])])


def test_dask_and_xarray_open_the_store_as_written(store_url: tuple[str, dict]) -> None:
    url, batches = store_url
    sparse = da.from_zarr(url, component="sparse_depth", chunks=(4, -1, -1))
    dataset = xr.open_zarr(url)
    written = np.array([str(k) != "" for k in dataset["key"].values])
    expected = _stack(batches, "sparse_depth")
    np.testing.assert_array_equal(sparse.compute()[written], expected)
    np.testing.assert_array_equal(dataset["sparse_depth"].values[written], expected)
    assert dataset["teacher_depth"].attrs["units"] == "m"
    fraction = float((dataset["sparse_depth"][written] > 0).mean())
    assert fraction == pytest.approx(float((expected > 0).mean()))


def test_summary_statistics_equal_numpy(store_url: tuple[str, dict]) -> None:
    url, batches = store_url
    store = SampleStore.open(url)
    summary = store_summary(store, validate(store))
    sparse, teacher = _stack(batches, "sparse_depth"), _stack(batches, "teacher_depth")
    assert summary["num_samples"] == 9
    assert summary["sparse_valid_fraction"] == pytest.approx(float((sparse > 0).mean()))
    stats = summary["teacher_depth"]
    valid = teacher[teacher > 0]
    assert stats["min_m"] == pytest.approx(float(valid.min()))
    assert stats["max_m"] == pytest.approx(float(valid.max()))
    assert stats["mean_m"] == pytest.approx(float(valid.astype(np.float64).mean()))
    edges = np.asarray(DEPTH_BIN_EDGES_M[:-1] + (1e9,))
    assert stats["histogram"] == np.histogram(valid, bins=edges)[0].tolist()


def _dmd3c(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dmd3c", *args], capture_output=True,
                          text=True, cwd=REPO, timeout=120)


def test_inspect_json_and_png(store_url: tuple[str, dict], tmp_path: Path) -> None:
    url, _ = store_url
    result = _dmd3c("inspect", "--json", url, "--png", str(tmp_path / "m.png"))
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["schema_version"] == "1.0"
    assert summary["num_samples"] == 9
    assert summary["shards_committed"] == 4
    assert summary["shards_pending"] == 0
    assert summary["canvas"] == [6, 10]
    assert 0.0 < summary["sparse_valid_fraction"] < 0.2
    import cv2

    from data_schemas.quicklook import BAR_HEIGHT_PX

    montage = cv2.imread(str(tmp_path / "m.png"))
    assert montage.shape == (4 * 6 + BAR_HEIGHT_PX, 3 * 10, 3)  # rows + colour bar


def test_inspect_user_errors_are_one_line(tmp_path: Path) -> None:
    result = _dmd3c("inspect", str(tmp_path / "nope.zarr"))
    assert result.returncode == 2
    assert result.stderr.strip() == f"dmd3c: error: {tmp_path / 'nope.zarr'}: no such store"
    assert "Traceback" not in result.stderr
