"""Schema 1.x stores keep working (read as they are, or migrated); codecs and their packages."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr
from zarr.codecs import ZstdCodec

from data_schemas import (
    SampleStore,
    SchemaVersionError,
    SkippedSample,
    StoreInfo,
    StoreLayout,
    create_store,
    validate,
    write_shard,
)
from data_schemas.commit_record import ShardRecord, record_name
from tests.data_schemas.store_factory import HEIGHT, WIDTH, assert_stored_equal, make_batch

REPO = Path(__file__).resolve().parents[2]
V1_ARRAYS = {  # name -> (dtype, sample shape, dims): the 1.0 layout, transcribed
    "rgb": ("uint8", (HEIGHT, WIDTH, 3), ("sample", "y", "x", "channel")),
    "sparse_depth": ("float32", (HEIGHT, WIDTH), ("sample", "y", "x")),
    "teacher_depth": ("float32", (HEIGHT, WIDTH), ("sample", "y", "x")),
    "teacher_output": ("float32", (HEIGHT, WIDTH), ("sample", "y", "x")),
    "intrinsics": ("float32", (3, 3), ("sample", "k_row", "k_col")),
    "T_cam_from_lidar": ("float32", (4, 4), ("sample", "t_row", "t_col")),
    "key": (str, (), ("sample",)),
    "source": (str, (), ("sample",)),
}


def write_v1_store(url: Path, counts: list[int], size: int = 4) -> dict[int, dict]:
    """A schema-1.0 store as dmd3c 0.1 wrote it: float32 zstd arrays of full capacity,
    padded shards, no checksums, no ``valid``, commit records."""
    attrs = {"schema": {"name": "dmd3c.sample_store", "version": "1.0"},
             "canvas": [HEIGHT, WIDTH], "shard_size": size, "num_shards": len(counts),
             "generator": {"seed": 3}, "teacher": {"id": "v1"}, "sensor": {"preset": "none"},
             "code_version": "dmd3c 0.1.0"}
    root = zarr.open_group(str(url), mode="w", zarr_format=3, attributes=attrs)
    for name, (dtype, shape, dims) in V1_ARRAYS.items():
        root.create_array(name, shape=(len(counts) * size, *shape), dtype=dtype,
                          chunks=(1, *shape), shards=(size, *shape), dimension_names=dims,
                          fill_value="" if dtype is str else 0, compressors=[ZstdCodec()])
    root.create_group("commits")
    batches = {}
    for shard, count in enumerate(counts):
        batch = batches[shard] = make_batch(shard, count, f"v1-{shard}")
        for name in V1_ARRAYS:
            values = np.asarray(batch[name], dtype=object if name in ("key", "source") else None)
            root[name][shard * size:shard * size + count] = values  # type: ignore[index]
        record = ShardRecord(shard, tuple(batch["key"]), (SkippedSample("x.jpg", "corrupt"),),
                             {"density": [0.1] * count})
        (url / record_name(shard)).write_bytes(record.to_json())
    return batches


def test_v1_store_is_read_with_identical_values(tmp_path: Path) -> None:
    url = tmp_path / "v1.zarr"
    batches = write_v1_store(url, [4, 2])
    store = SampleStore.open(url)
    assert (store.schema_version, store.num_samples, "valid" in store.specs) == ("1.0", 6, False)
    for shard, batch in batches.items():
        got = store.read_shard(shard)
        for name in V1_ARRAYS:
            if name in ("key", "source"):
                assert [str(v) for v in got[name]] == batch[name]
            else:
                np.testing.assert_array_equal(got[name], batch[name])  # float32, bit-exact
    validate(url, strict=True)


def test_v1_store_refuses_shard_writes_with_the_migrate_command(tmp_path: Path) -> None:
    url = tmp_path / "v1.zarr"
    write_v1_store(url, [1])
    with pytest.raises(SchemaVersionError) as err:
        write_shard(SampleStore.open(url, mode="r+"), 0, make_batch(0, 1, "x"))
    assert str(err.value) == (f"{url}: writing shards needs schema 2.x, this store has 1.0: "
                              f"convert it with `dmd3c migrate {url} NEW_STORE` (reading it "
                              f"works as it is)")


def test_migrate_converts_v1_within_the_documented_bounds(tmp_path: Path) -> None:
    src, dst = tmp_path / "v1.zarr", tmp_path / "v2.zarr"
    batches = write_v1_store(src, [4, 3])
    result = subprocess.run([sys.executable, "-m", "dmd3c", "migrate", str(src), str(dst)],
                            capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "migrated 7 samples in 2 shards" in result.stdout
    store = SampleStore.open(dst)
    assert (store.schema_version, store.num_samples, store.num_rows) == ("2.0", 7, 7)
    for shard, batch in batches.items():
        got = store.read_shard(shard)
        for name in V1_ARRAYS:
            assert_stored_equal(name, got[name], np.asarray(batch[name]))
        assert store.records[shard].skipped == (SkippedSample("x.jpg", "corrupt"),)
        assert store.records[shard].extra == {"density": [0.1] * len(batch["key"])}
    assert {k: store.attrs[k] for k in ("generator", "teacher", "sensor")} == {
        "generator": {"seed": 3}, "teacher": {"id": "v1"}, "sensor": {"preset": "none"}}
    validate(dst, strict=True)


def test_zeros_stay_zero_and_tiny_depths_never_become_no_data(tmp_path: Path) -> None:
    store = create_store(str(tmp_path / "s.zarr"), StoreLayout(HEIGHT, WIDTH, 1, 2), StoreInfo())
    batch = make_batch(0, 2, "z")
    batch["sparse_depth"][0] = 0.0
    batch["sparse_depth"][0, 2, 3] = 0.001  # below one step (1/256 m): stored as one step
    batch["teacher_depth"][1, 1, 1] = 255.99  # the top of the range
    write_shard(store, 0, batch)
    got = SampleStore.open(tmp_path / "s.zarr").read_shard(0)
    expected_sparse = np.zeros((HEIGHT, WIDTH), np.float32)
    expected_sparse[2, 3] = 1 / 256
    np.testing.assert_array_equal(got["sparse_depth"][0], expected_sparse)
    assert got["teacher_depth"][1, 1, 1] == pytest.approx(255.98828125)
    assert np.isfinite(got["teacher_output"]).all()


@pytest.mark.parametrize(("name", "value", "message"), [
    ("teacher_depth", 300.0, r"depth 300.0 m is outside the stored range \[0, 255.996\] m"),
    ("sparse_depth", -1.0, r"depth -1.0 m is outside the stored range"),
    ("teacher_output", 1e6, r"value 1000000.0 exceeds float16's range"),
])
def test_values_outside_the_stored_precision_are_refused(tmp_path: Path, name: str,
                                                        value: float, message: str) -> None:
    store = create_store(str(tmp_path / "s.zarr"), StoreLayout(HEIGHT, WIDTH, 1, 2), StoreInfo())
    batch = make_batch(0, 2, "z")
    batch[name][1, 0, 0] = value
    with pytest.raises(ValueError, match=message):
        write_shard(store, 0, batch)


def test_opt_in_jpeg_rgb_round_trip_and_dask_opens_it(tmp_path: Path) -> None:
    url = tmp_path / "j.zarr"
    h, w = 32, 48
    store = create_store(str(url), StoreLayout(h, w, 1, 2, rgb_codec="jpeg"), StoreInfo())
    batch = make_batch(0, 2, "j", height=h, width=w)
    yy, xx = np.mgrid[0:h, 0:w]
    batch["rgb"] = np.stack([np.stack([4 * xx, 6 * yy, 100 + 0 * xx], -1)] * 2).astype(np.uint8)
    write_shard(store, 0, batch)
    got = SampleStore.open(url).read_shard(0)["rgb"]
    error = np.abs(got.astype(int) - batch["rgb"]).mean()
    assert 0 < error < 2.0  # lossy, quality 95
    meta = json.loads((url / "rgb" / "zarr.json").read_text())
    inner = meta["codecs"][0]["configuration"]["codecs"]
    assert [c["name"] for c in inner] == ["numcodecs.imagecodecs_jpeg", "crc32c"]
    code = (f"import dask.array as da; a = da.from_zarr({str(url)!r}, component='rgb'); "
            f"print(a.shape, int(a.sum().compute()))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)  # a fresh process: the codec comes from the entry point
    assert result.returncode == 0, result.stderr
    assert result.stdout.split(")")[0] == f"(2, {h}, {w}, 3"
    assert int(result.stdout.split()[-1]) == int(got.astype(np.int64).sum())


def test_missing_codec_package_is_one_line_naming_codec_and_package(tmp_path: Path) -> None:
    url = tmp_path / "j.zarr"
    store = create_store(str(url), StoreLayout(8, 8, 1, 2, rgb_codec="jpeg"), StoreInfo())
    write_shard(store, 0, make_batch(0, 2, "j", height=8, width=8))
    code = ("import sys; sys.modules['imagecodecs'] = None\n"
            "from dmd3c.cli import main\n"
            f"sys.argv = ['dmd3c', 'inspect', '--strict', {str(url)!r}]\n"
            "main()")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=REPO, timeout=120)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == (
        f"dmd3c: error: {url}: array 'rgb': codec numcodecs.imagecodecs_jpeg needs the "
        f"Python package 'imagecodecs', which is not installed: pip install imagecodecs")
