"""Tiny NYUv2 HDF5 files in the BP-Net / NLSPN layout, written by the tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def write_nyu_h5(path: Path, seed: int) -> Path:
    """One 640x480 file: random rgb, depth 0.5-9 m with a hole band (Kinect) on top."""
    h5py = pytest.importorskip("h5py", reason="h5py is needed to write NYUv2 HDF5 files")
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    depth = rng.uniform(0.5, 9.0, (480, 640)).astype(np.float32)
    depth[:20] = 0.0  # Kinect holes
    with h5py.File(path, "w") as f:
        f["rgb"] = rng.integers(0, 255, (3, 480, 640), dtype=np.uint8)
        f["depth"] = depth
    return path


def nyu_tree(root: Path) -> Path:
    """ROOT/train/scene_a/00001.h5 and ROOT/val/official/0000{1,2}.h5."""
    write_nyu_h5(root / "train" / "scene_a" / "00001.h5", 1)
    write_nyu_h5(root / "val" / "official" / "00001.h5", 2)
    write_nyu_h5(root / "val" / "official" / "00002.h5", 3)
    return root
