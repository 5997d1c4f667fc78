"""The LiDAR map and the calibrated focal length of a KITTI image, found from its path.

Layouts (the same as ``train.datasets.kitti.layout``, which ``pipeline`` may not import)::

    <root>/raw/<date>/<drive>/image_0x/data/<frame>.png                   image
    <root>/raw/<date>/<drive>/proj_depth/velodyne_raw/image_0x/<frame>.png  LiDAR (in-drive)
    <root>/data_depth_velodyne/{train,val}/<drive>/proj_depth/velodyne_raw/image_0x/<frame>.png
    <root>/raw/<date>/calib_cam_to_cam.txt                                 P_rect_0x -> fx
    <root>/{val_selection_cropped,test_depth_completion_anonymous}/image/<name>.png
        .../velodyne_raw/<name with _image_ -> _velodyne_raw_ (val) | same name (test)>.png
        .../intrinsics/<name>.txt                                           K (9 numbers)

LiDAR maps are KITTI depth PNGs: uint16, metres = value / 256, 0 = no return.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from data_schemas.errors import InputError

FLAT_SETS = ("val_selection_cropped", "test_depth_completion_anonymous")


def _raw_parts(image: Path) -> tuple[Path, str, str] | None:
    """(drive folder, camera folder, frame file) of a raw image path, else None."""
    if len(image.parts) >= 4 and image.parent.name == "data" and \
            image.parents[1].name.startswith("image_0"):
        return image.parents[2], image.parents[1].name, image.name
    return None


def lidar_candidates(image: Path) -> list[Path]:
    """Where the LiDAR map of ``image`` may be, most specific first."""
    raw = _raw_parts(image)
    if raw is not None:
        drive, camera, frame = raw
        found = [drive / "proj_depth" / "velodyne_raw" / camera / frame]
        if len(image.parts) >= 6 and image.parents[4].name == "raw":
            root = image.parents[5]
            found += [root / "data_depth_velodyne" / split / drive.name / "proj_depth" /
                      "velodyne_raw" / camera / frame for split in ("train", "val")]
        return found
    if image.parent.name == "image" and image.parents[1].name in FLAT_SETS:
        name = image.name
        if image.parents[1].name == FLAT_SETS[0]:
            name = name.replace("_image_", "_velodyne_raw_", 1)
        return [image.parents[1] / "velodyne_raw" / name]
    return []


def lidar_path(image: str | Path) -> Path | None:
    """The existing LiDAR map of a KITTI image, or None."""
    return next((p for p in lidar_candidates(Path(image)) if p.is_file()), None)


def read_kitti_depth(path: Path) -> np.ndarray:
    """A KITTI depth PNG -> (H, W) float32 metres, 0 = no data."""
    import cv2

    values = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if values is None or values.dtype != np.uint16 or values.ndim != 2:
        raise InputError(f"{path} is not a KITTI depth map (uint16 single-channel PNG)")
    return values.astype(np.float32) / 256.0


def focal_px(image: str | Path) -> float | None:
    """Calibrated fx (px) of a KITTI image: P_rect_0x of its date, or its intrinsics file."""
    path = Path(image)
    raw = _raw_parts(path)
    if raw is not None:
        calib = raw[0].parent / "calib_cam_to_cam.txt"
        return _calib_fx(calib, f"P_rect_{raw[1][-2:]}") if calib.is_file() else None
    intrinsics = path.parents[1] / "intrinsics" / f"{path.stem}.txt"
    if path.parent.name == "image" and intrinsics.is_file():
        return float(intrinsics.read_text().split()[0])
    return None


def _calib_fx(calib: Path, key: str) -> float | None:
    for line in calib.read_text().splitlines():
        name, _, values = line.partition(":")
        if name.strip() == key:
            return float(values.split()[0])
    return None
