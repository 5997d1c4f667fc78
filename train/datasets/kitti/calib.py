"""KITTI calibration files -> intrinsics K [3,3] and ``T_cam_from_lidar`` [4,4].

Formats handled:

* raw: ``<date>/calib_cam_to_cam.txt`` (``P_rect_0x``, ``R_rect_00``) and
  ``<date>/calib_velo_to_cam.txt`` (``R``, ``T``: Velodyne -> unrectified camera 0);
* object benchmark: one file with ``P0..P3``, ``R0_rect``, ``Tr_velo_to_cam``;
* val_selection_cropped / test ``intrinsics/*.txt``: 9 numbers, K row-major.

``T_cam_from_lidar`` maps LiDAR points (x fwd, y left, z up) into the *rectified* camera
``x`` (OpenCV axes), including camera x's offset from camera 0 along the stereo baseline,
so that ``K @ (T @ p)[:3]`` equals KITTI's ``P_rect_0x @ R_rect_00 @ T_velo_to_cam @ p``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data_schemas.errors import InputError, InputNotFoundError
from data_schemas.geometry import lidar_to_sparse_depth, parse_intrinsics

CAMERAS: tuple[int, ...] = (2, 3)


def parse_camera(camera: int | str) -> int:
    """``2``/``3`` or ``"image_02"``/``"image_03"`` -> 2 or 3; anything else is an InputError."""
    text = str(camera).removeprefix("image_0").removeprefix("image_")
    if text not in ("2", "3"):
        raise InputError(f"camera must be one of 2, 3 (image_02, image_03), got {camera!r}")
    return int(text)


def read_calib_file(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """``key: v1 v2 ...`` lines -> {key: float64 array}; non-numeric entries are skipped."""
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"calibration file not found: {path}")
    entries: dict[str, np.ndarray] = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        try:
            entries[key.strip()] = np.array([float(x) for x in value.split()], dtype=np.float64)
        except ValueError:
            continue  # calib_time and other text entries
    return entries


def _entry(entries: dict[str, np.ndarray], key: str, size: int, path: Path) -> np.ndarray:
    if key not in entries:
        found = ", ".join(sorted(entries)) or "none"
        raise InputError(f"{path}: no {key!r} entry (found: {found})")
    if entries[key].size != size:
        raise InputError(f"{path}: {key!r} has {entries[key].size} values, expected {size}")
    return entries[key]


def _rigid(rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = rotation.reshape(3, 3)
    T[:3, 3] = translation.reshape(3)
    return T


def _checked_K(K: np.ndarray, path: Path) -> np.ndarray:
    """``K`` if it is a pinhole matrix (fx, fy > 0, ...), else an InputError naming ``path``."""
    try:
        return parse_intrinsics(K)
    except InputError as err:
        raise InputError(f"{path}: {err}") from None


def _rectified_camera(P: np.ndarray, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """P_rect [3,4] -> (K [3,3], T_camx_from_rect0 [4,4]) with t = K^-1 P[:, 3]."""
    K = _checked_K(P[:, :3], path)
    T = np.eye(4)
    T[:3, 3] = np.linalg.solve(K, P[:, 3])
    return K, T


@dataclass(frozen=True)
class CameraCalib:
    """Intrinsics of a rectified camera and, when known, its pose w.r.t. the LiDAR."""

    K: np.ndarray
    T_cam_from_lidar: np.ndarray | None = None


def parse_intrinsics_txt(path: str | os.PathLike[str]) -> np.ndarray:
    """val_selection_cropped / test ``intrinsics/*.txt`` (9 numbers) -> K float64 [3,3]."""
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"intrinsics file not found: {path}")
    try:
        values = np.array(path.read_text().split(), dtype=np.float64)
    except ValueError as err:
        raise InputError(f"{path}: intrinsics must be 9 numbers (K row-major)") from err
    if values.size != 9:
        raise InputError(f"{path}: intrinsics must be 9 numbers (K row-major), got {values.size}")
    return _checked_K(values.reshape(3, 3), path)


def raw_camera_calib(date_dir: str | os.PathLike[str], camera: int) -> CameraCalib:
    """KITTI raw ``<date>/calib_cam_to_cam.txt`` (+ ``calib_velo_to_cam.txt`` if present)."""
    date_dir = Path(date_dir)
    cam_path = date_dir / "calib_cam_to_cam.txt"
    cam = read_calib_file(cam_path)
    P = _entry(cam, f"P_rect_0{parse_camera(camera)}", 12, cam_path).reshape(3, 4)
    K, T_camx_from_rect0 = _rectified_camera(P, cam_path)
    velo_path = date_dir / "calib_velo_to_cam.txt"
    if not velo_path.is_file():
        return CameraCalib(K)
    velo = read_calib_file(velo_path)
    T_cam0_from_velo = _rigid(_entry(velo, "R", 9, velo_path), _entry(velo, "T", 3, velo_path))
    R_rect = _rigid(_entry(cam, "R_rect_00", 9, cam_path), np.zeros(3))
    return CameraCalib(K, T_camx_from_rect0 @ R_rect @ T_cam0_from_velo)


def object_camera_calib(path: str | os.PathLike[str], camera: int = 2) -> CameraCalib:
    """KITTI object-benchmark calib file (``P2``, ``R0_rect``, ``Tr_velo_to_cam``)."""
    path = Path(path)
    entries = read_calib_file(path)
    P = _entry(entries, f"P{parse_camera(camera)}", 12, path).reshape(3, 4)
    K, T_camx_from_rect0 = _rectified_camera(P, path)
    R_rect = _rigid(_entry(entries, "R0_rect", 9, path), np.zeros(3))
    velo = _entry(entries, "Tr_velo_to_cam", 12, path).reshape(3, 4)
    return CameraCalib(K, T_camx_from_rect0 @ R_rect @ _rigid(velo[:, :3], velo[:, 3]))


def load_camera_calib(path: str | os.PathLike[str], camera: int = 2) -> CameraCalib:
    """Any supported calibration file (see module docstring) -> :class:`CameraCalib`."""
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"calibration file not found: {path}")
    if path.name == "calib_velo_to_cam.txt":
        path = path.with_name("calib_cam_to_cam.txt")
    entries = read_calib_file(path)
    if any(k.startswith("P_rect_") for k in entries):
        return raw_camera_calib(path.parent, camera)
    if "Tr_velo_to_cam" in entries:
        return object_camera_calib(path, camera)
    return CameraCalib(parse_intrinsics_txt(path))


def project_lidar(points_lidar: np.ndarray, calib: CameraCalib, hw: tuple[int, int]) -> np.ndarray:
    """[N,>=3] LiDAR points -> sparse depth float32 [H,W] in m (nearest point per pixel)."""
    if calib.T_cam_from_lidar is None:
        raise InputError("the calibration has no LiDAR-to-camera transform (raw layout: "
                         "calib_velo_to_cam.txt next to calib_cam_to_cam.txt)")
    return lidar_to_sparse_depth(points_lidar, calib.T_cam_from_lidar, calib.K, hw)
