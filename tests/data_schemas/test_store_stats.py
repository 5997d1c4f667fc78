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

from data_schemas import SampleStore, StoreInfo, StoreLayout, create_store, validate, write_shard
from data_schemas.store_stats import DEPTH_BIN_EDGES_M, store_summary
from tests.data_schemas.store_factory import (
    HEIGHT,
    WIDTH,
    assert_stored_equal,
    make_batch,
    write_store,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def store_url(tmp_path: Path) -> tuple[str, dict]:
    url = str(tmp_path / "s.zarr")
    return url, write_store(url, [4, 0, 3, 2])


def _stack(batches: dict, name: str) -> np.ndarray:
    return np.concatenate([np.asarray(b[name]) for b in batches.values() if len(b["key"])])


def _stored(batches: dict, name: str) -> np.ndarray:
    """What the store holds: ``m/256`` depth (the stored precision, transcribed)."""
    return np.round(_stack(batches, name) * 256.0).astype(np.float32) / np.float32(256.0)


def _readme_snippet() -> str:
    """The python block of the README's "Inspecting a store" section, as users copy it."""
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Inspecting a store"):]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def _inspect_json(url: str) -> dict:
    result = _dmd3c("inspect", "--json", url)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_finished_store_has_no_padding_rows(store_url: tuple[str, dict]) -> None:
    url, batches = store_url  # shards of 4: counts 4, 0 (all skipped), 3, 2
    dataset = xr.open_zarr(url)
    assert dataset.sizes["sample"] == 3 * 4 + 2  # trimmed after the last sample
    valid = dataset["valid"].values
    np.testing.assert_array_equal(np.flatnonzero(~valid), [4, 5, 6, 7, 11])
    assert [str(k) for k in dataset["key"].values[valid]] == [
        k for b in batches.values() for k in b["key"]]
    sparse = da.from_zarr(url, component="sparse_depth", chunks=(4, -1, -1))
    assert_stored_equal("sparse_depth", sparse.compute()[valid], _stack(batches, "sparse_depth"))
    assert dataset["teacher_depth"].attrs["units"] == "m"


def test_readme_dask_snippet_gives_inspect_numbers(store_url: tuple[str, dict]) -> None:
    url, _ = store_url
    summary = _inspect_json(url)
    names: dict[str, object] = {}
    exec(_readme_snippet().replace('"data/store.zarr"', repr(url)), names)  # noqa: S102
    assert names["num_samples"] == summary["num_samples"] == 9
    assert names["density"] == pytest.approx(summary["sparse_valid_fraction"], rel=1e-12)
    assert names["teacher_mean"] == pytest.approx(summary["teacher_depth"]["mean_m"], rel=1e-9)


def test_xarray_length_equals_inspect_count_without_skips(tmp_path: Path) -> None:
    url = str(tmp_path / "full.zarr")
    write_store(url, [4, 4, 1])
    assert xr.open_zarr(url).sizes["sample"] == _inspect_json(url)["num_samples"] == 9


def test_running_store_keeps_full_length_until_the_last_shard(tmp_path: Path) -> None:
    url = str(tmp_path / "s.zarr")
    store = create_store(url, StoreLayout(HEIGHT, WIDTH, 3, 4), StoreInfo())
    write_shard(store, 2, make_batch(2, 1, "c"))
    write_shard(store, 0, make_batch(0, 4, "a"))
    assert SampleStore.open(url).num_rows == 12  # shard 1 pending: not finished
    assert SampleStore.open(url).keys() == [f"a/{i:03d}.png" for i in range(4)] + ["c/000.png"]
    write_shard(store, 1, make_batch(1, 2, "b"))
    finished = SampleStore.open(url)
    assert finished.num_rows == 9
    validate(finished)
    # rewriting a shard of a finished store grows it back, then trims again
    write_shard(SampleStore.open(url, mode="r+"), 2, make_batch(5, 3, "d"))
    assert SampleStore.open(url).num_rows == 11
    assert SampleStore.open(url).keys()[-3:] == [f"d/{i:03d}.png" for i in range(3)]


def test_summary_statistics_equal_numpy(store_url: tuple[str, dict]) -> None:
    url, batches = store_url
    store = SampleStore.open(url)
    summary = store_summary(store, validate(store))
    sparse, teacher = _stored(batches, "sparse_depth"), _stored(batches, "teacher_depth")
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
    assert summary["schema_version"] == "2.0"
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
