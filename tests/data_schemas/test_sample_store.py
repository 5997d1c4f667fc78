"""Round trips, commit protocol and bad input of the sharded sample store."""

from __future__ import annotations

import json
import multiprocessing
import shutil
from pathlib import Path

import numpy as np
import pytest
import zarr

from data_schemas import (
    SampleStore,
    SchemaVersionError,
    SkippedSample,
    StoreError,
    StoreInfo,
    StoreLayout,
    create_store,
    validate,
    write_shard,
)
from data_schemas.commit_record import record_name
from tests.data_schemas.store_factory import (
    HEIGHT,
    WIDTH,
    assert_stored_equal,
    make_batch,
    write_shards_in_process,
    write_store,
)


def _assert_sample_equal(sample: dict, batch: dict, row: int) -> None:
    for name, values in batch.items():
        assert_stored_equal(name, sample[name], np.asarray(values)[row])
    assert bool(sample["valid"])


def test_round_trip_several_shards_within_the_documented_bounds(tmp_path: Path) -> None:
    batches = write_store(str(tmp_path / "s.zarr"), [4, 2, 3])
    store = SampleStore.open(tmp_path / "s.zarr")
    assert store.num_samples == 9
    assert store.committed_shards == [0, 1, 2]
    index = 0
    for shard in range(3):
        for row in range(len(batches[shard]["key"])):
            _assert_sample_equal(store.read_sample(index), batches[shard], row)
            index += 1
    whole = store.read_shard(2)
    for name in batches[2]:
        assert_stored_equal(name, whole[name], np.asarray(batches[2][name]))
    assert store.keys() == [k for s in range(3) for k in batches[s]["key"]]


def test_stored_units_are_the_kitti_integers_of_the_depth_maps(tmp_path: Path) -> None:
    batches = write_store(str(tmp_path / "s.zarr"), [4, 3])  # shard 1: trimmed, partial
    batches[1]["sparse_depth"][0, 0, :2] = [0.001, 1.0 / 512]  # below one step: raised to 1
    write_shard(SampleStore.open(tmp_path / "s.zarr", mode="r+"), 1, batches[1])
    store = SampleStore.open(tmp_path / "s.zarr")
    for shard in (0, 1):
        stored = store.read_shard(shard, stored=True)
        metres = store.read_shard(shard)
        for name in ("sparse_depth", "teacher_depth"):
            written = np.asarray(batches[shard][name], np.float64) * 256
            steps = stored[name].astype(np.float64)
            assert stored[name].dtype == np.uint16
            raised = (written > 0) & (written < 1)  # below one step: stored as 1, not 0
            np.testing.assert_array_equal(steps[raised], 1.0)
            assert np.abs(steps - written)[~raised].max() <= 0.5  # nearest integer (ties: either)
            np.testing.assert_array_equal(steps == 0, written == 0)
            np.testing.assert_array_equal(stored[name] / np.float32(256), metres[name])
        for name in ("rgb", "intrinsics", "teacher_output", "key"):
            np.testing.assert_array_equal(stored[name], metres[name])
            assert stored[name].dtype == metres[name].dtype


def test_a_shard_decoded_into_given_buffers_equals_a_fresh_read(tmp_path: Path) -> None:
    write_store(str(tmp_path / "s.zarr"), [4, 3, 4, 3])  # 1: 3 of 4 rows; 3: trimmed
    store = SampleStore.open(tmp_path / "s.zarr")
    names = ("rgb", "sparse_depth", "teacher_depth", "intrinsics")
    for stored in (True, False):
        buffers = {n: store.shard_buffer(n, stored=stored) for n in names}
        for shard in (0, 1, 3, 0):  # the same buffers, shard after shard
            for buffer in buffers.values():
                buffer.fill(7 if buffer.dtype != np.float32 else np.nan)  # stale contents
            fresh = store.read_shard(shard, names, stored=stored)
            into = store.read_shard(shard, names, stored=stored, out=buffers)
            for name in names:
                assert into[name].dtype == fresh[name].dtype
                np.testing.assert_array_equal(into[name], fresh[name])
                assert np.shares_memory(into[name], buffers[name])
                assert len(into[name]) == store.records[shard].count


def test_buffers_that_cannot_hold_a_shard_are_refused(tmp_path: Path) -> None:
    write_store(str(tmp_path / "s.zarr"), [4, 4])
    store = SampleStore.open(tmp_path / "s.zarr")
    good = store.shard_buffer("teacher_depth", stored=True)
    assert good.shape == (4, 6, 10) and good.dtype == np.uint16
    for bad in (good[:3], good.astype(np.float32), np.asfortranarray(good)):
        with pytest.raises(ValueError, match="cannot hold a shard"):
            store.read_shard(0, ("teacher_depth",), stored=True, out={"teacher_depth": bad})


def test_depth_written_in_stored_units_has_the_bytes_of_a_write_through_the_filter(
        tmp_path: Path) -> None:
    """The writer quantises m/256 maps itself; zarr's fixedscaleoffset filter (halves up)
    writing the float32 metres gives the very same shard objects."""
    batch = make_batch(3, 4, "s0")
    batch["teacher_depth"][0, 1, :3] = [2.5 / 256, 0.001, 65535 / 256]  # a half, a tiny, max
    write_store(str(tmp_path / "a.zarr"), [0])
    ours = SampleStore.open(tmp_path / "a.zarr", mode="r+")
    write_shard(ours, 0, batch)
    write_store(str(tmp_path / "b.zarr"), [0])
    filtered = SampleStore.open(tmp_path / "b.zarr", mode="r+")
    filtered.reopen_for_writes()  # the finished empty store was trimmed to 0 rows
    for name in ("sparse_depth", "teacher_depth"):
        values = np.asarray(batch[name]).copy()
        values[(values > 0) & (values < 1 / 512)] = 1 / 256  # the documented raise
        filtered.fast_array(name)[0:4] = values
        a, b = (Path(s.location.root) / s.shard_key(name, 0) for s in (ours, filtered))
        assert a.read_bytes() == b.read_bytes()
    assert ours.read_shard(0, stored=True)["teacher_depth"][0, 1, :3].tolist() == [3, 1, 65535]


def test_uncommitted_shard_is_invisible_and_flagged(tmp_path: Path) -> None:
    url = str(tmp_path / "s.zarr")
    write_store(url, [4, 4, 4])
    store = SampleStore.open(url, mode="r+")
    store.location.delete(record_name(1))  # a writer died after the data, before the commit
    store.refresh()
    assert store.num_samples == 8
    assert store.pending_shards == [1]
    assert "s1/000.png" not in store.keys()
    with pytest.raises(StoreError, match="shard 1 has data but no commit record"):
        validate(url)
    assert validate(url, allow_pending=True).pending_with_data == [1]


def _shard_files(root: Path, shard: int) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and "/c/" in str(p) and str(p.relative_to(root)).split("/c/")[1]
            .split("/")[0] == str(shard)}


def test_rewriting_a_shard_is_idempotent(tmp_path: Path) -> None:
    url = tmp_path / "s.zarr"
    batches = write_store(str(url), [4, 3])
    before = _shard_files(url, 1)
    record_before = (url / record_name(1)).read_bytes()
    store = SampleStore.open(url, mode="r+")
    write_shard(store, 1, batches[1])
    assert _shard_files(url, 1) == before
    assert (url / record_name(1)).read_bytes() == record_before
    # a rewrite with fewer samples leaves no stale rows behind
    write_shard(store, 1, make_batch(7, 1, "new"))
    assert SampleStore.open(url).keys()[-1:] == ["new/000.png"]
    validate(url)


def test_rewrite_replaces_a_truncated_shard_object(tmp_path: Path) -> None:
    url = tmp_path / "s.zarr"
    batches = write_store(str(url), [2, 2])
    store = SampleStore.open(url, mode="r+")
    store.location.delete(record_name(1))
    victim = url / store.shard_key("teacher_depth", 1)
    victim.write_bytes(victim.read_bytes()[:10])  # a writer killed mid-write
    write_shard(store, 1, batches[1])
    assert_stored_equal("teacher_depth", SampleStore.open(url).read_shard(1)["teacher_depth"],
                        batches[1]["teacher_depth"])


def test_a_map_without_a_single_return_is_stored_and_read_back(tmp_path: Path) -> None:
    """An all-zero sparse map (every sample all sky) is a real shard object, not a hole
    that reads as damage: zarrs skips fill-value-only shards, the writer must not."""
    url = str(tmp_path / "s.zarr")
    store = create_store(url, StoreLayout(HEIGHT, WIDTH, 2, 4), StoreInfo())
    batch = make_batch(7, 3, "sky")
    batch["sparse_depth"] = np.zeros_like(np.asarray(batch["sparse_depth"]))
    write_shard(store, 0, batch)
    assert (tmp_path / "s.zarr" / store.shard_key("sparse_depth", 0)).is_file()
    got = SampleStore.open(url).read_shard(0)
    assert (got["sparse_depth"] == 0).all() and got["sparse_depth"].shape[0] == 3
    assert_stored_equal("teacher_depth", got["teacher_depth"], batch["teacher_depth"])
    validate(url)


def _chunks_in_shard(path: Path, chunks: int) -> int:
    """Inner chunks present in a zarr v3 shard object: its index (at the end, before the
    index's crc32c) holds (offset, nbytes) uint64 pairs, both 2^64 - 1 for an absent chunk."""
    index = np.frombuffer(path.read_bytes()[-(16 * chunks + 4):-4], dtype="<u8")
    return int(np.count_nonzero(index.reshape(chunks, 2)[:, 0] != np.iinfo(np.uint64).max))


def test_rows_after_the_samples_are_never_encoded(tmp_path: Path) -> None:
    url = str(tmp_path / "s.zarr")
    store = create_store(url, StoreLayout(HEIGHT, WIDTH, 2, 4), StoreInfo())
    write_shard(store, 0, make_batch(3, 2, "half"))  # 2 of 4 rows
    write_shard(store, 1, make_batch(4, 4, "full"))
    for name in ("rgb", "teacher_depth", "key"):
        assert _chunks_in_shard(tmp_path / "s.zarr" / store.shard_key(name, 0), 4) == 2
        assert _chunks_in_shard(tmp_path / "s.zarr" / store.shard_key(name, 1), 4) == 4
    rows = SampleStore.open(url).read_shard(0)
    assert rows["rgb"].shape[0] == 2 and rows["valid"].all()


def test_empty_shard_commits_with_skip_reasons(tmp_path: Path) -> None:
    url = str(tmp_path / "s.zarr")
    store = create_store(url, StoreLayout(HEIGHT, WIDTH, 2, 4), StoreInfo())
    write_shard(store, 0, {}, skipped=[SkippedSample("bad.jpg", "corrupt image: truncated")])
    reopened = SampleStore.open(url)
    assert reopened.committed_shards == [0]
    assert reopened.num_samples == 0
    assert reopened.records[0].skipped[0].reason.startswith("corrupt")
    validate(url)


def test_unknown_schema_major_is_refused_naming_both_versions(tmp_path: Path) -> None:
    url = tmp_path / "s.zarr"
    write_store(str(url), [1])
    meta = json.loads((url / "zarr.json").read_text())
    meta["attributes"]["schema"]["version"] = "3.0"
    (url / "zarr.json").write_text(json.dumps(meta))
    with pytest.raises(SchemaVersionError,
                       match=r"schema version 3\.0, this dmd3c reads versions 1\.x, 2\.x"):
        SampleStore.open(url)


def test_minor_version_is_accepted(tmp_path: Path) -> None:
    url = tmp_path / "s.zarr"
    write_store(str(url), [1])
    meta = json.loads((url / "zarr.json").read_text())
    meta["attributes"]["schema"]["version"] = "2.7"
    (url / "zarr.json").write_text(json.dumps(meta))
    assert SampleStore.open(url).num_samples == 1


@pytest.mark.parametrize("problem", ["missing", "not_zarr", "foreign_zarr"])
def test_not_a_store_errors_name_the_path(tmp_path: Path, problem: str) -> None:
    url = tmp_path / "x"
    if problem == "not_zarr":
        url.mkdir()
    if problem == "foreign_zarr":
        zarr.open_group(str(url), mode="w", zarr_format=3)
    with pytest.raises(StoreError) as err:
        SampleStore.open(url)
    assert str(url) in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_array_and_wrong_dtype_are_reported(tmp_path: Path) -> None:
    url = tmp_path / "s.zarr"
    write_store(str(url), [2])
    shutil.rmtree(url / "teacher_depth")
    _drop_consolidated(url)
    with pytest.raises(StoreError, match="array 'teacher_depth' is missing"):
        validate(url)
    group = zarr.open_group(str(url), mode="r+")
    group.create_array("teacher_depth", shape=(2, HEIGHT, WIDTH), dtype="float64",
                       dimension_names=("sample", "y", "x"))
    with pytest.raises(StoreError, match="'teacher_depth' has dtype float64"):
        validate(url)


def _drop_consolidated(url: Path) -> None:
    meta = json.loads((url / "zarr.json").read_text())
    meta.pop("consolidated_metadata", None)
    (url / "zarr.json").write_text(json.dumps(meta))


def test_commit_record_without_data_is_reported(tmp_path: Path) -> None:
    url = tmp_path / "s.zarr"
    write_store(str(url), [2, 2])
    for shard_object in url.glob("*/c/1"):
        if shard_object.is_dir():
            shutil.rmtree(shard_object)
        else:
            shard_object.unlink()
    with pytest.raises(StoreError, match="shard 1 has a commit record of 2 samples but no data"):
        validate(url)


@pytest.mark.parametrize("bad", ["nan", "shape", "dtype", "duplicate_key", "missing_array"])
def test_writer_refuses_bad_batches(tmp_path: Path, bad: str) -> None:
    store = create_store(str(tmp_path / "s.zarr"), StoreLayout(HEIGHT, WIDTH, 1, 4), StoreInfo())
    batch = make_batch(0, 2, "a")
    if bad == "nan":
        batch["teacher_depth"][0, 1, 1] = np.nan
    elif bad == "shape":
        batch["sparse_depth"] = batch["sparse_depth"][:, :-1]
    elif bad == "dtype":
        batch["rgb"] = batch["rgb"].astype(np.float32)
    elif bad == "duplicate_key":
        batch["key"] = ["same", "same"]
    else:
        del batch["intrinsics"]
    with pytest.raises(ValueError):
        write_shard(store, 0, batch)
    assert SampleStore.open(tmp_path / "s.zarr").committed_shards == []


def test_read_only_store_refuses_writes(tmp_path: Path) -> None:
    write_store(str(tmp_path / "s.zarr"), [1])
    with pytest.raises(ValueError, match="read-only"):
        write_shard(SampleStore.open(tmp_path / "s.zarr"), 0, make_batch(0, 1, "a"))


def test_create_refuses_existing_store(tmp_path: Path) -> None:
    write_store(str(tmp_path / "s.zarr"), [1])
    with pytest.raises(StoreError, match="already exists"):
        create_store(str(tmp_path / "s.zarr"), StoreLayout(HEIGHT, WIDTH, 1, 4), StoreInfo())


def test_fsspec_url_round_trip() -> None:
    url = "memory://dmd3c-test/store.zarr"
    batches = write_store(url, [3, 1])
    store = SampleStore.open(url)
    assert store.num_samples == 4
    _assert_sample_equal(store.read_sample(3), batches[1], 0)
    validate(url)


def test_two_processes_writing_different_shards_lose_nothing(tmp_path: Path) -> None:
    url = str(tmp_path / "s.zarr")
    create_store(url, StoreLayout(HEIGHT, WIDTH, 8, 4), StoreInfo())
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=write_shards_in_process, args=(url, shards, 4))
               for shards in ([0, 2, 4, 6], [1, 3, 5, 7])]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0
    store = SampleStore.open(url)
    assert store.num_samples == 32
    validate(store)
    for shard in range(8):
        expected = make_batch(shard, 4, f"s{shard}")
        got = store.read_shard(shard)
        for name in ("rgb", "sparse_depth", "teacher_depth"):
            assert_stored_equal(name, got[name], expected[name])
