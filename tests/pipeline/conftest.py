"""Shared fixtures for the LiDAR simulation tests (analytic scenes, presets)."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.pose import kitti_mount
from pipeline.sensors import load_sensor
from pipeline.synthetic import Scene, kitti_like_scene


@pytest.fixture(scope="session")
def kitti_scene() -> Scene:
    """Seeded KITTI-like street (352 x 1216, KITTI intrinsics)."""
    return kitti_like_scene(seed=0)


@pytest.fixture(scope="session")
def hdl64e():
    return load_sensor("hdl64e")


@pytest.fixture(scope="session")
def mount() -> np.ndarray:
    return kitti_mount()


def small_K(hw: tuple[int, int], hfov_deg: float = 80.0) -> np.ndarray:
    """Square-pixel K centred on an (H, W) image."""
    h, w = hw
    f = 0.5 * w / np.tan(np.radians(hfov_deg) / 2)
    return np.array([[f, 0.0, (w - 1) / 2], [0.0, f, (h - 1) / 2], [0.0, 0.0, 1.0]])
