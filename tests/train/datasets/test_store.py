"""The training stream over a store: metadata, errors, determinism, resume, spawn workers."""

from __future__ import annotations

import json
import struct
import threading
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from data_schemas import SampleStore, StoreError, StoreInfo, StoreLayout, create_store
from train.datasets import (
    AugmentConfig,
    ShardReader,
    StoreIndex,
    StoreStream,
    StreamConfig,
    StreamPlan,
    augment,
    sample_rng,
    train_loader,
    val_batches,
)
from train.datasets.sample import Sample
from train.datasets.shard_reader import TRAIN_ARRAYS
from train.datasets.synthetic import write_synthetic_store
from train.model.inputs import RGB_MEAN, RGB_STD

HW = (64, 96)
CROP = (32, 64)


@pytest.fixture(scope="module")
def store_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("stream") / "store.zarr"
    write_synthetic_store(path, 22, HW, shard_size=6, seed=1)
    return str(path)


def stream(url: str, start: int = 0, regions: int = 1, rank: int = 0, world: int = 1,
           batch: int = 2) -> StoreStream:
    index = StoreIndex.open(url)
    plan = StreamPlan(index.shards, index.counts, batch, seed=5, shuffle_shards=2, rank=rank,
                      world_size=world, num_regions=regions)
    return StoreStream(index, plan, StreamConfig(CROP, AugmentConfig(), seed=5), start)


def fingerprint(batches: list) -> list[tuple]:
    return [(b.index, b.epoch, b.keys, float(b.rgb.sum()), float(b.target.sum()),
             float(b.K.sum())) for b in batches]


def test_index_reads_committed_shards(store_url: str) -> None:
    index = StoreIndex.open(store_url)
    assert index.shards == (0, 1, 2, 3) and index.counts == (6, 6, 6, 4)
    train, val = index.split(1)
    assert train.shards == (0, 1, 2) and val is not None and val.shards == (3,)
    assert index.split(0) == (index, None)
    with pytest.raises(ValueError, match="leaves no training shard"):
        index.split(4)


def test_missing_store_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no such store"):
        StoreIndex.open(tmp_path / "nope.zarr")


def test_zero_committed_shards_is_a_clear_error(tmp_path: Path) -> None:
    create_store(tmp_path / "empty.zarr", StoreLayout(64, 96, 2, 4), StoreInfo())
    with pytest.raises(StoreError, match="no committed shard with samples"):
        StoreIndex.open(tmp_path / "empty.zarr")


def test_wrong_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "old.zarr"
    write_synthetic_store(path, 2, HW, shard_size=2)
    meta = json.loads((path / "zarr.json").read_text())
    meta["attributes"]["schema"]["version"] = "9.0"
    meta.pop("consolidated_metadata", None)
    (path / "zarr.json").write_text(json.dumps(meta))
    with pytest.raises(StoreError, match="schema version 9.0"):
        StoreIndex.open(path)


def assert_shards_read_back(url: str, got: dict[int, dict[str, np.ndarray]]) -> None:
    """``got[shard]`` equals that shard's training arrays read directly from the store."""
    store = SampleStore.open(url)
    for shard, arrays in got.items():
        want = store.read_shard(shard, TRAIN_ARRAYS, stored=True)
        for name in TRAIN_ARRAYS:
            np.testing.assert_array_equal(arrays[name], want[name])


def test_evicted_shard_buffers_are_reused_only_after_recycle(store_url: str) -> None:
    index = StoreIndex.open(store_url)
    reader = ShardReader(index, capacity=1)
    first = reader.sample(0, 1)
    kept = first.rgb.copy(), first.target.copy()
    second = reader.shard(1)  # evicts shard 0: its buffers retire, the sample stays valid
    third = reader.shard(2)  # no recycle yet: new memory, shard 0's sample untouched
    np.testing.assert_array_equal(first.rgb, kept[0])
    np.testing.assert_array_equal(first.target, kept[1])
    assert not np.shares_memory(third["rgb"], first.rgb)
    reader.recycle()  # shards 0 and 1 are gone: their buffers may be reused
    again = reader.shard(0)
    assert np.shares_memory(again["rgb"], first.rgb) or np.shares_memory(again["rgb"],
                                                                         second["rgb"])
    assert_shards_read_back(store_url, {0: again, 2: reader.shard(2)})


def test_the_stream_reads_shards_into_a_bounded_set_of_buffers(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[str] = []
    reads: list[int] = []
    make, read = SampleStore.shard_buffer, SampleStore.read_shard

    def counted_make(self: SampleStore, name: str, stored: bool = False) -> np.ndarray:
        made.append(name)
        return make(self, name, stored)

    def counted_read(self: SampleStore, shard: int, *args: Any, **kwargs: Any) -> dict:
        reads.append(shard)
        return read(self, shard, *args, **kwargs)

    monkeypatch.setattr(SampleStore, "shard_buffer", counted_make)
    monkeypatch.setattr(SampleStore, "read_shard", counted_read)
    batches = list(islice(iter(stream(store_url)), 40))  # 80 samples of 22: 4 passes
    # 2 shards cached (shuffle_shards) + one per sample of a batch (2) that starts a shard
    assert len(made) <= (2 + 2) * len(TRAIN_ARRAYS) < len(reads) * len(TRAIN_ARRAYS)
    monkeypatch.undo()
    assert fingerprint(batches) == fingerprint(list(islice(iter(stream(store_url)), 40)))


def _reads_by_thread(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, str]]:
    """(shard, thread name) of every shard a ShardReader decodes from now on."""
    reads: list[tuple[int, str]] = []
    original = ShardReader._read

    def recorded(self: ShardReader, shard: int, buffers: dict) -> dict:
        reads.append((shard, threading.current_thread().name))
        return original(self, shard, buffers)

    monkeypatch.setattr(ShardReader, "_read", recorded)
    return reads


def test_a_shard_read_ahead_is_decoded_on_the_background_thread(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = _reads_by_thread(monkeypatch)
    reader = ShardReader(StoreIndex.open(store_url), capacity=1)
    reader.prefetch(2)
    assert reader.holds(2) and reader.reading_ahead
    reader.prefetch(3)  # one read ahead at a time
    first = reader.shard(0)  # another shard meanwhile: read here, the read-ahead kept
    arrays = reader.shard(2)
    assert not reader.reading_ahead
    assert [shard for shard, _ in reads] == [2, 0]
    assert reads[0][1].startswith("shard-read-ahead") and reads[1][1] == "MainThread"
    assert_shards_read_back(store_url, {0: first, 2: arrays})


def test_the_stream_reads_ahead_and_gives_the_batches_of_plain_reads(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = _reads_by_thread(monkeypatch)
    ahead = list(islice(iter(stream(store_url)), 40))  # 80 samples of 22: 4 passes
    background = [s for s, name in reads if name.startswith("shard-read-ahead")]
    # one read ahead at a time: where a batch starts two shards, one is read here
    assert len(background) > len(reads) / 2
    monkeypatch.setattr(ShardReader, "prefetch", lambda self, shard: None)
    assert fingerprint(ahead) == fingerprint(list(islice(iter(stream(store_url)), 40)))


def test_corrupt_chunk_names_the_shard_and_the_sample(tmp_path: Path) -> None:
    path = tmp_path / "bad.zarr"
    write_synthetic_store(path, 8, HW, shard_size=4)
    shard_file = path / "teacher_depth" / "c" / "1" / "0" / "0"
    data = bytearray(shard_file.read_bytes())
    # shard index at the end: 4 chunks x (offset, nbytes) uint64 + crc32c
    offset, _ = struct.unpack_from("<QQ", data, len(data) - 4 - 16 * 4 + 16 * 2)
    data[offset:offset + 8] = b"\xde\xad\xbe\xef" * 2  # break sample 2's zstd frame header
    shard_file.write_bytes(bytes(data))
    index = StoreIndex.open(path)
    for read_ahead in (False, True):
        reader = ShardReader(index)
        if read_ahead:
            reader.prefetch(1)  # its error waits for the shard to be asked for
        reader.shard(0)  # healthy shard
        with pytest.raises(StoreError, match=r"array 'teacher_depth', shard 1, sample "
                                             r"'.*-0002\.png' \(row 6\): corrupt data"):
            reader.shard(1)


def test_missing_shard_file_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "holes.zarr"
    write_synthetic_store(path, 8, HW, shard_size=4)
    (path / "rgb" / "c" / "1" / "0" / "0" / "0").unlink()
    with pytest.raises(StoreError, match=r"array 'rgb', shard 1 .* shard object .* is missing"):
        ShardReader(StoreIndex.open(path)).shard(1)


def test_batches_are_deterministic_and_resumable(store_url: str) -> None:
    full = list(islice(iter(stream(store_url)), 14))  # crosses an epoch (11 batches/epoch)
    assert [b.index for b in full] == list(range(14))
    assert full[11].epoch == 1 and full[10].epoch == 0
    assert fingerprint(full) == fingerprint(list(islice(iter(stream(store_url)), 14)))
    resumed = list(islice(iter(stream(store_url, start=9)), 5))
    assert fingerprint(resumed) == fingerprint(full[9:])
    raw = full[0]
    assert raw.raw and raw.rgb.shape == (2, *CROP, 3) and raw.rgb.dtype == torch.uint8
    assert raw.sparse.dtype == raw.target.dtype == torch.uint16
    batch = raw.to("cpu")
    assert not batch.raw and batch.rgb.shape == (2, 3, *CROP)
    assert batch.rgb.dtype == batch.sparse.dtype == torch.float32
    assert batch.sparse.shape == batch.target.shape == (2, 1, *CROP)
    assert batch.K.shape == (2, 3, 3)


def test_each_epoch_uses_every_sample_once_across_ranks(store_url: str) -> None:
    keys: list[str] = []
    for rank in range(2):
        rank_stream = stream(store_url, rank=rank, world=2, batch=1)
        keys += [k for b in islice(iter(rank_stream), 11) for k in b.keys]
    index = StoreIndex.open(store_url)
    assert sorted(keys) == sorted(k for shard_keys in index.keys for k in shard_keys)


def test_spawned_workers_give_the_same_batches(store_url: str) -> None:
    expected = fingerprint(list(islice(iter(stream(store_url, start=3, regions=2)), 6)))
    loader = train_loader(stream(store_url, start=3, regions=2), num_workers=2)
    batches = iter(loader)
    got = fingerprint(list(islice(batches, 6)))
    batches._shutdown_workers()  # type: ignore[attr-defined]
    assert got == expected


def test_validation_batches_split_over_ranks(store_url: str) -> None:
    _, val = StoreIndex.open(store_url).split(2)
    assert val is not None
    keys = [k for rank in range(3) for b in val_batches(val, CROP, 3, rank, 3) for k in b.keys]
    assert keys == [k for shard_keys in val.keys for k in shard_keys]
    first = next(val_batches(val, CROP, 3)).to("cpu")
    assert first.rgb.shape == (3, 3, *CROP)
    assert np.isfinite(first.rgb.numpy()).all()
    limited = [k for b in val_batches(val, CROP, 4, max_samples=5) for k in b.keys]
    assert len(limited) == 5


def _per_sample_collate(samples: list[Sample], offsets: list[np.ndarray]) -> dict[str, np.ndarray]:
    """The loader's batch before raw batches, transcribed: float32 metres read from the store,
    rgb + 255 x offset, clipped, x (1 / std) - mean / std in float32 numpy."""
    rgb = np.stack([s.rgb for s in samples]).transpose(0, 3, 1, 2).astype(np.float32)
    rgb = np.clip(rgb + np.stack(offsets).astype(np.float32)[:, :, None, None] * 255.0, 0, 255)
    std = np.asarray(RGB_STD, np.float32)[None, :, None, None]
    mean = np.asarray(RGB_MEAN, np.float32)[None, :, None, None]
    rgb = rgb * (np.float32(1.0) / std) - mean / std
    return {"rgb": rgb, "sparse": np.stack([s.sparse for s in samples])[:, None],
            "target": np.stack([s.target for s in samples])[:, None],
            "K": np.stack([s.K for s in samples])}


def test_raw_batches_finish_to_exactly_the_per_sample_float_path(store_url: str) -> None:
    """Same seeds, same draws: stored uint16 crops finished as a batch equal the float32
    per-sample path bit for bit (every step is exact in float32)."""
    index, store = StoreIndex.open(store_url), SampleStore.open(store_url)
    where = {k: (s, o) for s, keys in zip(index.shards, index.keys, strict=True)
             for o, k in enumerate(keys)}
    jittered = 0
    for raw in islice(iter(stream(store_url)), 12):
        got = raw.to("cpu")
        samples, offsets = [], []
        for key in raw.keys:
            shard, offset = where[key]
            row = store.read_rows(shard, offset, offset + 1, TRAIN_ARRAYS)
            sample = Sample(row["rgb"][0], row["sparse_depth"][0], row["teacher_depth"][0],
                            row["intrinsics"][0], key)
            sample, colour = augment(sample, CROP, AugmentConfig(),
                                     sample_rng(5, raw.epoch, key))
            samples.append(sample)
            offsets.append(colour)
            jittered += bool(np.any(colour))
        want = _per_sample_collate(samples, offsets)
        for name, values in want.items():
            assert getattr(got, name).dtype == torch.float32
            np.testing.assert_array_equal(getattr(got, name).numpy(), values)
    assert jittered > 0
