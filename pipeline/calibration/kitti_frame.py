"""One real KITTI frame (Velodyne HDL-64E scan + rectified camera 2) in the 352 x 1216 crop.

Reads the raw-data layout (``raw/<date>/<drive>/velodyne_points/data/<frame>.bin``,
``image_02/data/<frame>.png``, ``raw/<date>/calib_{velo_to_cam,cam_to_cam}.txt``) and the
object-benchmark layout (``velodyne/<id>.bin``, ``image_2/<id>.png``, ``calib/<id>.txt``).
The camera is the rectified camera 2 (``P_rect_02`` / ``P2``); the crop is KITTI depth
completion's bottom-centre 352 x 1216 window.

Laser rings: a KITTI ``.bin`` stores the scan laser by laser, top laser first, and each laser's
sweep runs from azimuth 0 (straight ahead) round to 0 again, wrapping at +-180 deg *inside*
the laser. A new laser therefore starts where the azimuth crosses 0 upwards (from < 0, -0.0
included, to >= +0.0 between consecutive points), not where it wraps: the wrap rule splits
every laser at the back and glues the rear half of laser l to the front half of laser l + 1
(65 segments for 64 lasers, with a ~0.3-0.5 deg elevation step in the middle of the camera
view). Checked on six KITTI scans from different drives: 64 rings each, and every ring fits
one laser exactly (:mod:`pipeline.calibration.laser_table`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from data_schemas.errors import InputError, InputNotFoundError
from data_schemas.geometry import lidar_to_sparse_depth, parse_points

CROP_HW = (352, 1216)
"""KITTI depth-completion crop (H, W), bottom-centre of the 375 x 1242 image."""


@dataclass(frozen=True)
class KittiFrame:
    """A real scan with the camera it is compared in (the crop)."""

    name: str
    points_lidar: np.ndarray
    """(N, 3) float64 points in scan order, LiDAR frame (x forward, y left, z up), m."""
    reflectance: np.ndarray
    """(N,) float32 KITTI reflectance of each point, [0, 1]."""
    ring: np.ndarray
    """(N,) int64 laser index from scan order (0 = first stored = top laser)."""
    K: np.ndarray
    """(3, 3) float64 intrinsics of the cropped rectified camera 2."""
    T_cam_from_lidar: np.ndarray
    """(4, 4) float64 rectified camera 2 from LiDAR."""
    rgb: np.ndarray
    """(352, 1216, 3) uint8 cropped camera-2 image."""

    @property
    def hw(self) -> tuple[int, int]:
        return CROP_HW

    def sparse_depth(self) -> np.ndarray:
        """(352, 1216) float32 projected real scan (z-buffer), 0 = no return."""
        return lidar_to_sparse_depth(self.points_lidar, self.T_cam_from_lidar, self.K, self.hw)


def rings_from_scan_order(points: np.ndarray) -> np.ndarray:
    """(N, >=2) KITTI points in scan order -> (N,) int64 laser index (see module docstring)."""
    azimuth = np.arctan2(points[:, 1], points[:, 0])
    negative = np.signbit(azimuth)  # a laser's last returns may sit at azimuth -0.0
    starts = negative[:-1] & ~negative[1:] & (np.abs(np.diff(azimuth)) < np.pi)
    return np.concatenate([[0], np.cumsum(starts)]).astype(np.int64)


def read_bin(path: Path) -> np.ndarray:
    """KITTI Velodyne ``.bin`` -> (N, 4) float32 (x, y, z, reflectance)."""
    if not path.is_file():
        raise InputNotFoundError(f"{path}: no such Velodyne scan")
    raw = np.fromfile(path, dtype=np.float32)
    if raw.size == 0 or raw.size % 4:
        raise InputError(f"{path}: not a KITTI Velodyne .bin (float32 x, y, z, reflectance)")
    return raw.reshape(-1, 4)


def read_calib(path: Path) -> dict[str, np.ndarray]:
    """KITTI ``key: v1 v2 ...`` calibration text -> key -> float64 vector (text lines skipped)."""
    if not path.is_file():
        raise InputNotFoundError(f"{path}: no such calibration file")
    out: dict[str, np.ndarray] = {}
    for line in path.read_text().splitlines():
        key, _, values = line.partition(":")
        try:
            out[key.strip()] = np.array([float(v) for v in values.split()])
        except ValueError:
            continue
    return out


def _rigid(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R.reshape(3, 3), t
    return T


def rectified_camera(
    P: np.ndarray, R_rect: np.ndarray, T_cam0_from_lidar: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(3, 4) rectified projection + (3, 3) R_rect + (4, 4) -> (K, T_cam_from_lidar)."""
    K = P[:, :3].copy()
    T_rect = _rigid(R_rect, np.zeros(3))
    return K, _rigid(np.eye(3), np.linalg.solve(K, P[:, 3])) @ T_rect @ T_cam0_from_lidar


def crop_to_kitti(K: np.ndarray, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Full-image K and (H, W, 3) image -> K and image of the bottom-centre 352 x 1216 crop."""
    h, w = rgb.shape[:2]
    top, left = h - CROP_HW[0], (w - CROP_HW[1]) // 2
    if top < 0 or left < 0:
        raise InputError(f"image {w}x{h} is smaller than the {CROP_HW[1]}x{CROP_HW[0]} crop")
    K = K.copy()
    K[0, 2] -= left
    K[1, 2] -= top
    return K, np.ascontiguousarray(rgb[top:, left : left + CROP_HW[1]])


def read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise InputNotFoundError(f"{path}: no such image (or not readable)")
    return np.ascontiguousarray(image[:, :, ::-1])


def make_frame(name: str, scan: np.ndarray, K: np.ndarray, T: np.ndarray,
               rgb: np.ndarray) -> KittiFrame:
    """Assemble a ``KittiFrame`` from a full-size camera (K, image) and a scan."""
    K_crop, rgb_crop = crop_to_kitti(K, rgb)
    points = parse_points(scan)
    return KittiFrame(name, points, scan[:, 3].astype(np.float32), rings_from_scan_order(points),
                      K_crop, T, rgb_crop)


def raw_frame(root: Path, drive: str | None = None, frame: str | None = None) -> KittiFrame:
    """A frame of the raw-data layout under ``root`` (default: the first scan found)."""
    scans = sorted(Path(root).glob("raw/*/*/velodyne_points/data/*.bin"))
    scans = [s for s in scans if (drive is None or s.parents[2].name == drive)
             and (frame is None or s.stem == frame)]
    if not scans:
        raise InputNotFoundError(f"{root}: no raw/<date>/<drive>/velodyne_points/data/*.bin")
    scan_path = scans[0]
    drive_dir, date_dir = scan_path.parents[2], scan_path.parents[3]
    velo = read_calib(date_dir / "calib_velo_to_cam.txt")
    cam = read_calib(date_dir / "calib_cam_to_cam.txt")
    K, T = rectified_camera(cam["P_rect_02"].reshape(3, 4), cam["R_rect_00"],
                            _rigid(velo["R"], velo["T"]))
    rgb = read_rgb(drive_dir / "image_02" / "data" / f"{scan_path.stem}.png")
    return make_frame(f"{drive_dir.name}/{scan_path.stem}", read_bin(scan_path), K, T, rgb)


def object_frame(bin_path: Path, calib_path: Path, image_path: Path) -> KittiFrame:
    """A frame of the object-benchmark layout (``P2``, ``R0_rect``, ``Tr_velo_to_cam``)."""
    calib = read_calib(calib_path)
    velo = calib["Tr_velo_to_cam"].reshape(3, 4)
    K, T = rectified_camera(calib["P2"].reshape(3, 4), calib["R0_rect"],
                            _rigid(velo[:, :3], velo[:, 3]))
    return make_frame(bin_path.stem, read_bin(bin_path), K, T, read_rgb(image_path))


def object_frames(root: Path) -> list[KittiFrame]:
    """Every frame with a full scan under an object-benchmark folder (``velodyne/*.bin``)."""
    frames = []
    for scan in sorted(Path(root).glob("**/velodyne/*.bin")):
        split = scan.parents[1]
        frames.append(object_frame(scan, split / "calib" / f"{scan.stem}.txt",
                                   split / "image_2" / f"{scan.stem}.png"))
    return frames
