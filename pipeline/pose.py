"""LiDAR mount relative to the camera: the KITTI default and seeded jitter.

Frames: camera = OpenCV (x right, y down, z forward); LiDAR = x forward, y left, z up.
``T_cam_from_lidar`` (4, 4) maps homogeneous LiDAR-frame points (m) to the camera frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from data_schemas.geometry import parse_transform

KITTI_R_CAM_FROM_LIDAR = np.array(
    [
        [7.533745e-03, -9.999714e-01, -6.166020e-04],
        [1.480249e-02, 7.280733e-04, -9.998902e-01],
        [9.998621e-01, 7.523790e-03, 1.480755e-02],
    ]
)
KITTI_t_CAM_FROM_LIDAR = np.array([-4.069766e-03, -7.631618e-02, -2.717806e-01])


def make_transform(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """(3, 3) rotation and (3,) translation -> (4, 4) float64 rigid transform."""
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = t
    return T


def kitti_mount() -> np.ndarray:
    """KITTI 2011_09_26 ``calib_velo_to_cam`` as (4, 4) ``T_cam_from_lidar``.

    The LiDAR sits ~0.27 m behind and ~0.08 m above camera 0.
    """
    return make_transform(KITTI_R_CAM_FROM_LIDAR, KITTI_t_CAM_FROM_LIDAR)


def camera_centred_mount() -> np.ndarray:
    """``T_cam_from_lidar`` with KITTI axes, LiDAR origin at the camera centre."""
    return make_transform(KITTI_R_CAM_FROM_LIDAR, np.zeros(3))


def axis_angle_to_matrix(rotvec: np.ndarray) -> np.ndarray:
    """(3,) axis * angle (rad) -> (3, 3) rotation (Rodrigues)."""
    theta = float(np.linalg.norm(rotvec))
    if theta < 1e-12:
        return np.eye(3)
    k = np.asarray(rotvec, dtype=np.float64) / theta
    Kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.asarray(np.eye(3) + np.sin(theta) * Kx + (1 - np.cos(theta)) * (Kx @ Kx))


@dataclass(frozen=True)
class MountJitter:
    """Gaussian perturbation of the LiDAR mount, applied in the LiDAR frame."""

    translation_std_m: float = 0.0
    """Std of each translation component (m)."""
    rotation_std_deg: float = 0.0
    """Std of each axis-angle component (deg)."""

    def __post_init__(self) -> None:
        if self.translation_std_m < 0 or self.rotation_std_deg < 0:
            raise ValueError("MountJitter stds must be >= 0")


def jitter_mount(
    T_cam_from_lidar: np.ndarray, jitter: MountJitter, rng: np.random.Generator
) -> np.ndarray:
    """Perturbed (4, 4) ``T_cam_from_lidar`` = T @ delta; always draws 6 normals."""
    T = parse_transform(T_cam_from_lidar)
    z = rng.standard_normal(6)
    rot = axis_angle_to_matrix(np.radians(jitter.rotation_std_deg) * z[:3])
    delta = make_transform(rot, jitter.translation_std_m * z[3:])
    return np.asarray(T @ delta)
