"""Small synthetic sample stores for tests, benchmarks and smoke runs (no generator needed).

Every sample is a tilted plane seen by a pinhole camera: the teacher depth is the exact
plane depth for the sample's K, the sparse depth keeps ~5% of it, the top rows are sky.
"""

from __future__ import annotations

import os

import numpy as np

from data_schemas import SampleStore, StoreInfo, StoreLayout, create_store, write_shard


def plane_depth(
    K: np.ndarray, normal: np.ndarray, offset: float, hw: tuple[int, int]
) -> np.ndarray:
    """Depth z [H,W] (m) of the plane ``normal . X = offset`` (camera frame) seen through K.

    Pixels whose ray misses the plane (or hits it behind the camera) get 0.
    """
    v, u = np.mgrid[0 : hw[0], 0 : hw[1]].astype(np.float64)
    rays = np.stack([u, v, np.ones_like(u)], axis=-1) @ np.linalg.inv(K.astype(np.float64)).T
    denom = rays @ normal.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(np.abs(denom) > 1e-9, offset / denom, 0.0)
    return np.where(z > 0, z, 0.0).astype(np.float32)


def synthetic_batch(
    seed: int, count: int, hw: tuple[int, int], prefix: str = "synthetic"
) -> dict[str, np.ndarray | list[str]]:
    """``count`` valid store samples (all arrays of the schema) of random tilted planes."""
    rng = np.random.default_rng(seed)
    samples = [_sample(rng, hw) for _ in range(count)]
    stack: dict[str, np.ndarray] = {name: np.stack([s[name] for s in samples])
                                    for name in samples[0]}
    stack["teacher_output"] = np.where(
        stack["teacher_depth"] > 0, 1.0 / np.maximum(stack["teacher_depth"], 1e-3), 0.0
    ).astype(np.float32)
    stack["T_cam_from_lidar"] = np.tile(np.eye(4, dtype=np.float32), (count, 1, 1))
    keys = [f"{prefix}/{seed:04d}-{i:04d}.png" for i in range(count)]
    return {**stack, "key": keys, "source": [f"synthetic://{k}" for k in keys]}


def _sample(rng: np.random.Generator, hw: tuple[int, int]) -> dict[str, np.ndarray]:
    h, w = hw
    f = rng.uniform(0.6, 1.2) * w
    K = np.array(
        [[f, 0, rng.uniform(0.4, 0.6) * w], [0, f, rng.uniform(0.4, 0.6) * h], [0, 0, 1]],
        np.float32,
    )
    normal = np.array([rng.uniform(-0.3, 0.3), -1.0, rng.uniform(-0.2, -0.05)])
    depth = np.clip(plane_depth(K, normal, -1.6, hw), 0.0, 80.0)
    depth[: max(1, h // 8)] = 0.0  # sky
    sparse = np.where(rng.random(hw) < 0.05, depth, 0.0).astype(np.float32)
    shade = (255 * (0.3 + 0.7 * np.tanh(depth / 20.0)))[..., None]
    rgb = np.clip(shade * rng.uniform(0.5, 1.0, 3) + rng.normal(0, 8, (h, w, 3)), 0, 255)
    return {
        "rgb": rgb.astype(np.uint8),
        "sparse_depth": sparse,
        "teacher_depth": depth,
        "intrinsics": K,
    }


def write_synthetic_store(
    path: str | os.PathLike[str],
    num_samples: int,
    hw: tuple[int, int],
    shard_size: int = 8,
    seed: int = 0,
    overwrite: bool = False,
) -> SampleStore:
    """Create a store at ``path`` with ``num_samples`` synthetic samples, all shards committed."""
    layout = StoreLayout.for_samples(num_samples, hw[0], hw[1], shard_size)
    store = create_store(
        path,
        layout,
        StoreInfo(teacher={"id": "synthetic-plane"}, sensor={"preset": "synthetic-5%"}),
        overwrite=overwrite,
    )
    for shard in range(layout.num_shards):
        count = min(shard_size, num_samples - shard * shard_size)
        write_shard(store, shard, synthetic_batch(seed * 100003 + shard, count, hw))
    return store
