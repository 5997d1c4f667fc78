"""Integrity: every inner chunk's checksum is verified on read; corruption and implausible
values are errors naming the store, array, shard, sample key and row."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr

from data_schemas import SampleStore, StoreError, validate
from data_schemas.teacher_maps import create_teacher_maps, open_teacher_maps, read_teacher_map
from tests.data_schemas.store_factory import write_store

REPO = Path(__file__).resolve().parents[2]


def _chunk_span(shard_object: Path, shard_size: int, offset: int) -> tuple[int, int]:
    """(byte offset, length) of inner chunk ``offset`` in a shard object: the sharding
    codec's index at the end holds (offset, nbytes) uint64 pairs, then a 4-byte crc32c."""
    data = shard_object.read_bytes()
    index = np.frombuffer(data[-(16 * shard_size + 4):-4], dtype="<u8").reshape(-1, 2)
    return int(index[offset, 0]), int(index[offset, 1])


def _flip_bytes_in_chunk(store: SampleStore, name: str, shard: int, offset: int) -> None:
    path = Path(store.location.root) / store.shard_key(name, shard)
    start, length = _chunk_span(path, store.layout.shard_size, offset)
    data = bytearray(path.read_bytes())
    middle = start + length // 2
    for i in range(middle, min(middle + 8, start + length - 4)):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def _dmd3c(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dmd3c", *args], capture_output=True,
                          text=True, cwd=REPO, timeout=120)


@pytest.mark.parametrize(("name", "shard", "stored"), [
    ("teacher_depth", 2, False), ("rgb", 2, False), ("intrinsics", 2, False),
    ("teacher_depth", 2, True), ("sparse_depth", 1, True)])  # shard 1 whole, 2 partial
def test_flipped_bytes_inside_a_chunk_name_store_array_shard_key_and_row(
        tmp_path: Path, name: str, shard: int, stored: bool) -> None:
    url = str(tmp_path / "s.zarr")
    batches = write_store(url, [4, 4, 3])
    store = SampleStore.open(url)
    _flip_bytes_in_chunk(store, name, shard, 1)
    with pytest.raises(StoreError) as err:
        SampleStore.open(url).read_shard(shard, stored=stored)
    message = str(err.value)
    expected_key = batches[shard]["key"][1]
    assert message.startswith(f"{url}: array {name!r}, shard {shard}, sample "
                              f"{expected_key!r} (row {4 * shard + 1}): corrupt data")
    assert "checksum" in message
    assert "\n" not in message
    SampleStore.open(url).read_shard(0, stored=stored)  # the other shards still read


def test_inspect_strict_exits_2_on_a_corrupt_chunk(tmp_path: Path) -> None:
    url = str(tmp_path / "s.zarr")
    batches = write_store(url, [4, 4])
    assert _dmd3c("inspect", "--strict", url).returncode == 0
    _flip_bytes_in_chunk(SampleStore.open(url), "rgb", 1, 3)
    result = _dmd3c("inspect", "--strict", url)
    assert result.returncode == 2
    key = batches[1]["key"][3]
    assert result.stderr.strip().startswith(
        f"dmd3c: error: {url}: array 'rgb', shard 1, sample {key!r} (row 7): corrupt data")
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_plain_inspect_names_a_corrupt_depth_chunk(tmp_path: Path) -> None:
    url = str(tmp_path / "s.zarr")
    write_store(url, [4, 4])
    _flip_bytes_in_chunk(SampleStore.open(url), "teacher_depth", 0, 2)
    result = _dmd3c("inspect", "--json", url)
    assert result.returncode == 2
    assert "array 'teacher_depth', shard 0, sample 's0/002.png' (row 2)" in result.stderr


def test_truncated_shard_object_is_named(tmp_path: Path) -> None:
    url = str(tmp_path / "s.zarr")
    write_store(url, [4, 4])
    store = SampleStore.open(url)
    path = Path(store.location.root) / store.shard_key("sparse_depth", 1)
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(StoreError, match=r"array 'sparse_depth', shard 1"):
        SampleStore.open(url).read_shard(1)


def test_missing_shard_object_of_a_committed_shard_is_named(tmp_path: Path) -> None:
    url = str(tmp_path / "s.zarr")
    write_store(url, [4, 4])
    store = SampleStore.open(url)
    (Path(store.location.root) / store.shard_key("rgb", 0)).unlink()
    with pytest.raises(StoreError, match=r"array 'rgb', shard 0 \(samples 's0/000.png'.."
                                         r"'s0/003.png'\): the shard object rgb/c/0/0/0/0 is "
                                         r"missing"):
        SampleStore.open(url).read_shard(0)


def _rewrite_values(url: str, name: str, row: int, values: np.ndarray) -> None:
    """Replace one row through zarr (valid checksums: only the values are implausible)."""
    store = SampleStore.open(url, mode="r+")
    array = store.array(name)
    whole = np.asarray(array[:])
    whole[row] = values
    array[:] = whole


@pytest.mark.parametrize(("name", "value", "problem"), [
    ("teacher_depth", 200.0, r"depth 200 m is neither 0 nor within \[0.05, 161\] m"),
    ("sparse_depth", 0.01, r"depth 0.01172 m is neither 0 nor within \[0.05, 1000\] m"),
    ("intrinsics", -5.0, r"implausible K"),
    ("teacher_output", np.inf, r"is not finite"),
])
def test_strict_validation_checks_physical_ranges(tmp_path: Path, name: str, value: float,
                                                  problem: str) -> None:
    url = str(tmp_path / "s.zarr")
    write_store(url, [4, 3])
    _set_attr(url, "generator", {"metric": {"max_depth_m": 160.0}})  # teacher range 160 m
    validate(url, strict=True)
    sample = np.asarray(SampleStore.open(url).array(name)[5]).copy()
    sample[1, 1] = value
    _rewrite_values(url, name, 5, sample)
    with pytest.raises(StoreError, match=rf"array '{name}', shard 1, sample 's1/001.png' "
                                         rf"\(row 5\): {problem}"):
        validate(url, strict=True)
    validate(url)  # without strict only the structure is checked


def _set_attr(url: str, name: str, value: object) -> None:
    group = zarr.open_group(url, mode="r+", use_consolidated=False)
    group.attrs[name] = value
    zarr.consolidate_metadata(url)


def test_teacher_maps_carry_checksums(tmp_path: Path) -> None:
    url = tmp_path / "t.zarr"
    group = create_teacher_maps(url, {"output_kind": "disparity"})
    from data_schemas.teacher_maps import write_teacher_map

    values = np.random.default_rng(0).random((6, 8), dtype=np.float32)
    write_teacher_map(group, "a/b.png", "src", values, "relative disparity")
    np.testing.assert_array_equal(read_teacher_map(open_teacher_maps(url), "a/b.png"), values)
    meta = json.loads((url / "a" / "b.png" / "zarr.json").read_text())
    assert [c["name"] for c in meta["codecs"]][-1] == "crc32c"
    chunk = url / "a" / "b.png" / "c" / "0" / "0"
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0xFF
    chunk.write_bytes(bytes(data))
    with pytest.raises(StoreError, match=r"teacher map 'a/b.png': corrupt data"):
        read_teacher_map(open_teacher_maps(url), "a/b.png")
