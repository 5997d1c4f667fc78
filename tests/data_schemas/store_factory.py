"""Synthetic shard batches for store tests (importable from worker processes)."""

from __future__ import annotations

import numpy as np

from data_schemas import StoreInfo, StoreLayout, create_store, write_shard

HEIGHT, WIDTH = 6, 10


def make_batch(seed: int, count: int, prefix: str, height: int = HEIGHT,
               width: int = WIDTH) -> dict[str, object]:
    """A random but valid batch of ``count`` samples with keys ``prefix/i``."""
    rng = np.random.default_rng(seed)
    sparse = rng.uniform(1, 80, (count, height, width)).astype(np.float32)
    sparse[rng.random(sparse.shape) < 0.9] = 0.0
    teacher = rng.uniform(0.5, 150, (count, height, width)).astype(np.float32)
    teacher[:, 0, :] = 0.0  # a "sky" row
    K = np.tile(np.array([[50, 0, 5], [0, 50, 3], [0, 0, 1]], np.float32), (count, 1, 1))
    return {
        "rgb": rng.integers(0, 256, (count, height, width, 3), dtype=np.uint8),
        "sparse_depth": sparse,
        "teacher_depth": teacher,
        "teacher_output": rng.random((count, height, width), dtype=np.float32),
        "intrinsics": K,
        "T_cam_from_lidar": np.tile(np.eye(4, dtype=np.float32), (count, 1, 1)),
        "key": [f"{prefix}/{i:03d}.png" for i in range(count)],
        "source": [f"file:///corpus/{prefix}/{i:03d}.png" for i in range(count)],
    }


def assert_stored_equal(name: str, got: np.ndarray, expected: np.ndarray) -> None:
    """``got`` (read back) equals ``expected`` (written) within the schema-2.0 bound of
    ``name``, transcribed here: depth maps 1/512 m absolute (0 exact, never NaN), teacher
    output float16 (2^-11 relative), everything else bit-exact."""
    got, expected = np.asarray(got), np.asarray(expected)
    assert got.shape == expected.shape
    if name in ("sparse_depth", "teacher_depth"):
        assert got.dtype == np.float32
        assert np.isfinite(got).all()
        np.testing.assert_array_equal(got == 0, expected == 0)
        assert np.abs(got - expected).max(initial=0) <= 1 / 512 + 1e-6
    elif name == "teacher_output":
        assert got.dtype == np.float16
        np.testing.assert_array_equal(got == 0, expected == 0)
        rel = np.abs(got.astype(np.float64) - expected) / np.maximum(np.abs(expected), 1e-30)
        assert rel.max(initial=0) <= 2.0**-11
    elif name in ("key", "source"):
        assert [str(v) for v in got.reshape(-1)] == [str(v) for v in expected.reshape(-1)]
    else:
        np.testing.assert_array_equal(got, expected)
        assert got.dtype == expected.dtype


def write_store(path: str, counts: list[int], shard_size: int = 4) -> dict[int, dict]:
    """Create a store and write shard ``s`` with ``counts[s]`` samples; returns the batches."""
    store = create_store(path, StoreLayout(HEIGHT, WIDTH, len(counts), shard_size),
                         StoreInfo(teacher={"id": "synthetic"}, sensor={"preset": "none"}))
    batches = {}
    for shard, count in enumerate(counts):
        batches[shard] = make_batch(shard, count, f"s{shard}")
        write_shard(store, shard, batches[shard] if count else {})
    return batches


def write_shards_in_process(path: str, shards: list[int], count: int) -> None:
    """Worker-process entry: open the store and write the given shards."""
    from data_schemas import SampleStore

    store = SampleStore.open(path, mode="r+")
    for shard in shards:
        write_shard(store, shard, make_batch(shard, count, f"s{shard}"))
