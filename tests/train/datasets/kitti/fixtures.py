"""Tiny KITTI trees built in tmp dirs from the shared real sample frame (symlinks, no copies)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from data_schemas.teacher_maps import create_teacher_maps, write_teacher_map
from tests.conftest import KITTI_SAMPLE

SAMPLE = KITTI_SAMPLE
DATE = "2011_09_26"
DRIVE = "2011_09_26_drive_0001_sync"
FRAME = "0000000005"
RAW_DRIVE = SAMPLE / "raw" / DATE / DRIVE


def require_sample() -> Path:
    if not (SAMPLE / "raw" / DATE / "calib_cam_to_cam.txt").is_file():
        pytest.skip(f"KITTI sample frame not found at {SAMPLE}")
    return SAMPLE


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.symlink_to(src)


def official_tree(root: Path, splits: tuple[str, ...] = ("train", "val"),
                  cameras: tuple[str, ...] = ("image_02", "image_03")) -> Path:
    """ROOT in the official layout holding frame 5 of the sample drive in ``splits``."""
    require_sample()
    for name in ("calib_cam_to_cam.txt", "calib_velo_to_cam.txt"):
        _link(SAMPLE / "raw" / DATE / name, root / "raw" / DATE / name)
    for cam in cameras:
        _link(RAW_DRIVE / cam / "data" / f"{FRAME}.png",
              root / "raw" / DATE / DRIVE / cam / "data" / f"{FRAME}.png")
        for split in splits:
            for kind, top in (("groundtruth", "data_depth_annotated"),
                              ("velodyne_raw", "data_depth_velodyne")):
                _link(RAW_DRIVE / "proj_depth" / kind / cam / f"{FRAME}.png",
                      root / top / split / DRIVE / "proj_depth" / kind / cam / f"{FRAME}.png")
    return root


def selval_and_test_tree(root: Path) -> Path:
    """ROOT with val_selection_cropped (the sample's) and a test set made of its frames."""
    require_sample()
    sel = SAMPLE / "val_selection_cropped"
    (root / "val_selection_cropped").parent.mkdir(parents=True, exist_ok=True)
    (root / "val_selection_cropped").symlink_to(sel)
    test = root / "test_depth_completion_anonymous"
    for i, cam in enumerate(("image_02", "image_03")):
        name = f"{i:010d}"
        _link(sel / "image" / f"{DRIVE}_image_{FRAME}_{cam}.png", test / "image" / f"{name}.png")
        _link(sel / "velodyne_raw" / f"{DRIVE}_velodyne_raw_{FRAME}_{cam}.png",
              test / "velodyne_raw" / f"{name}.png")
        _link(sel / "intrinsics" / f"{DRIVE}_image_{FRAME}_{cam}.txt",
              test / "intrinsics" / f"{name}.txt")
    return root


def write_teacher_maps(out: Path, maps: dict[str, np.ndarray],
                       output_kind: str = "disparity") -> Path:
    """A ``dmd3c.teacher_maps`` store as ``dmd3c teach`` writes it: key -> float32 [H,W]."""
    group = create_teacher_maps(out, {"name": "test", "output_kind": output_kind})
    for key, values in maps.items():
        write_teacher_map(group, key, f"/kitti/{key}", values, output_kind)
    group.attrs["keys"] = list(maps)
    return out


def fake_disparity(hw: tuple[int, int]) -> np.ndarray:
    """A smooth positive 'relative disparity' map growing towards the bottom of the image."""
    rows = np.linspace(0.1, 1.0, hw[0], dtype=np.float32)[:, None]
    return np.broadcast_to(rows * 10.0, hw).copy()
