"""LiDAR points -> camera image -> sparse depth map with a z-buffer (nearest point wins per pixel).

Points the camera cannot see but the offset LiDAR can stay in the map, as in real KITTI scans.
"""

from __future__ import annotations

import numpy as np

from pipeline.camera import parse_hw, parse_intrinsics
from pipeline.pose import parse_transform


def transform_points(T: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(4, 4) transform applied to (N, 3) points -> (N, 3) float64."""
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"points must be (N, 3), got {points.shape}")
    return points @ T[:3, :3].T + T[:3, 3]


def project_points(
    points_cam: np.ndarray, K: np.ndarray, hw: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, 3) camera-frame points -> (flat pixel index, depth z, in-image mask), rounded."""
    h, w = parse_hw(hw)
    K = parse_intrinsics(K)
    p = np.asarray(points_cam, dtype=np.float64)
    z = p[:, 2]
    front = z > 1e-6
    z_safe = np.where(front, z, 1.0)
    u = np.rint((K[0, 0] * p[:, 0] + K[0, 1] * p[:, 1]) / z_safe + K[0, 2])
    v = np.rint(K[1, 1] * p[:, 1] / z_safe + K[1, 2])
    inside = front & (u >= 0) & (u < w) & (v >= 0) & (v < h)
    flat = np.where(inside, v * w + u, 0).astype(np.int64)
    return flat, z, inside


def sparse_depth(points_cam: np.ndarray, K: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """(N, 3) camera-frame points -> (H, W) float32 depth (m), nearest z per pixel, 0 elsewhere."""
    h, w = parse_hw(hw)
    flat, z, inside = project_points(points_cam, K, (h, w))
    flat, z = flat[inside], z[inside]
    order = np.argsort(
        flat * 1024.0 + np.minimum(z, 1000.0)
    )  # by pixel, nearest first (ties: equal z)
    flat, z = flat[order], z[order]
    first = np.ones(len(flat), dtype=bool)
    first[1:] = flat[1:] != flat[:-1]
    buf = np.zeros(h * w, np.float32)
    buf[flat[first]] = z[first]
    return buf.reshape(h, w)


def lidar_to_sparse_depth(
    points_lidar: np.ndarray, T_cam_from_lidar: np.ndarray, K: np.ndarray, hw: tuple[int, int]
) -> np.ndarray:
    """(N, 3) LiDAR-frame points + (4, 4) T_cam_from_lidar -> (H, W) float32 sparse depth (m)."""
    return sparse_depth(transform_points(parse_transform(T_cam_from_lidar), points_lidar), K, hw)
