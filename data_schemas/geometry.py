"""Camera geometry for both rooms: rigid transforms, projection, z-buffer, unprojection.

Conventions (DESIGN.md section 4): metres; camera frame OpenCV (x right, y down, z forward);
LiDAR frame x forward, y left, z up; transforms are (4, 4) ``T_b_from_a`` mapping frame-a
points into frame b; K is a (3, 3) pinhole matrix in pixels. Pixel (row r, col c) has its
centre at (u, v) = (c, r); a projected point lands on the pixel whose centre is nearest
(KITTI's convention). Depth maps are float32 metres with 0 = no data, never NaN.

The near plane: points with camera z <= ``min_depth_m`` (default :data:`MIN_DEPTH_M`, 0.1 m)
are not projected. Both rooms use this one default; a real LiDAR has no returns that close
(HDL-64E minimum range ~0.9 m), so it only guards the division.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from data_schemas.errors import ConfigError, InputError

DepthSpace = Literal["disparity", "depth"]
"""What a dense map holds: affine-invariant disparity (relative teachers) or metric depth."""
DEPTH_SPACES: tuple[DepthSpace, ...] = ("disparity", "depth")

MIN_DEPTH_M = 0.1
"""Near plane (m): points at camera z <= this are not projected."""

Float64Array = NDArray[np.float64]
Float32Array = NDArray[np.float32]


def parse_depth_space(space: str) -> DepthSpace:
    """``"disparity"`` or ``"depth"``; anything else is a :class:`ConfigError` naming both."""
    for allowed in DEPTH_SPACES:
        if space == allowed:
            return allowed
    raise ConfigError(f"unknown depth space {space!r}; allowed: {', '.join(DEPTH_SPACES)}")


def parse_hw(hw: tuple[int, int]) -> tuple[int, int]:
    """Validate an image size ``(H, W)`` of ints >= 2."""
    h, w = (int(x) for x in hw)
    if h < 2 or w < 2:
        raise InputError(f"image size (H, W) must be at least (2, 2), got {tuple(hw)}")
    return h, w


def parse_intrinsics(K: ArrayLike) -> Float64Array:
    """Validate a (3, 3) pinhole K (finite, fx, fy > 0, last row [0, 0, 1]); returns float64."""
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3) or not np.all(np.isfinite(K)):
        raise InputError(f"intrinsics must be a finite (3, 3) matrix, got shape {K.shape}")
    if K[0, 0] <= 0 or K[1, 1] <= 0:
        raise InputError(f"intrinsics need fx > 0 and fy > 0, got fx={K[0, 0]}, fy={K[1, 1]}")
    if not np.allclose(K[2], [0, 0, 1]) or K[1, 0] != 0:
        raise InputError("intrinsics must be upper triangular with last row [0, 0, 1]")
    return K


def parse_transform(T: ArrayLike, name: str = "T_cam_from_lidar") -> Float64Array:
    """Validate a (4, 4) rigid transform (finite, proper rotation, last row [0, 0, 0, 1])."""
    T = np.asarray(T, dtype=np.float64)
    if T.shape != (4, 4) or not np.all(np.isfinite(T)):
        raise InputError(f"{name} must be a finite (4, 4) matrix, got shape {T.shape}")
    R = T[:3, :3]
    if not np.allclose(R @ R.T, np.eye(3), atol=1e-4) or np.linalg.det(R) <= 0:
        raise InputError(f"{name} rotation block is not a proper rotation")
    if not np.allclose(T[3], [0.0, 0.0, 0.0, 1.0]):
        raise InputError(f"{name} last row must be [0, 0, 0, 1]")
    return T


def parse_depth(depth: ArrayLike) -> Float32Array:
    """Validate an (H, W) metric depth map: finite, >= 0 (0 = no data); returns float32."""
    depth = np.asarray(depth)
    if depth.ndim != 2 or min(depth.shape) < 2:
        raise InputError(f"depth must be a 2-D (H, W) map with H, W >= 2, got shape {depth.shape}")
    if not np.all(np.isfinite(depth)):
        raise InputError("depth contains NaN or inf; use 0 for no data")
    if np.any(depth < 0):
        raise InputError("depth contains negative values; use 0 for no data")
    return depth.astype(np.float32, copy=False)


def parse_points(points: ArrayLike) -> Float64Array:
    """(N, >=3) points (extra columns such as reflectance ignored) -> (N, 3) float64."""
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 3:
        raise InputError(f"points must be (N, 3) or (N, >3), got shape {p.shape}")
    return p[:, :3]


def transform_points(T_b_from_a: ArrayLike, points_a: ArrayLike) -> Float64Array:
    """(4, 4) ``T_b_from_a`` applied to (N, >=3) frame-a points -> (N, 3) float64 frame-b points."""
    T = parse_transform(T_b_from_a, "T_b_from_a")
    return parse_points(points_a) @ T[:3, :3].T + T[:3, 3]


def project_points(
    points_cam: ArrayLike, K: ArrayLike, hw: tuple[int, int], min_depth_m: float = MIN_DEPTH_M
) -> tuple[NDArray[np.int64], NDArray[np.int64], Float64Array, NDArray[np.bool_]]:
    """(N, 3) camera points -> (rows, cols, z, inside), each (N,).

    ``inside``: in front of the near plane and on the image; ``rows``/``cols`` are the pixel
    whose centre is nearest to the projection (round half to even), 0 where not ``inside``.
    """
    h, w = parse_hw(hw)
    K = parse_intrinsics(K)
    p = parse_points(points_cam)
    z = p[:, 2]
    front = z > min_depth_m
    uvw = p @ K.T
    z_safe = np.where(front, uvw[:, 2], 1.0)
    cols = np.rint(uvw[:, 0] / z_safe)
    rows = np.rint(uvw[:, 1] / z_safe)
    inside = front & (cols >= 0) & (cols < w) & (rows >= 0) & (rows < h)
    rows_i = np.where(inside, rows, 0).astype(np.int64)
    cols_i = np.where(inside, cols, 0).astype(np.int64)
    return rows_i, cols_i, z, inside


def zbuffer(
    rows: NDArray[np.int64], cols: NDArray[np.int64], z: Float64Array, hw: tuple[int, int]
) -> Float32Array:
    """Pixels (rows, cols) with depths z -> (H, W) float32 map: nearest z per pixel, 0 elsewhere."""
    h, w = parse_hw(hw)
    nearest = np.full(h * w, np.inf)
    np.minimum.at(nearest, rows * w + cols, z)
    nearest[np.isinf(nearest)] = 0.0
    return nearest.reshape(h, w).astype(np.float32)


def points_to_sparse_depth(
    points_cam: ArrayLike, K: ArrayLike, hw: tuple[int, int], min_depth_m: float = MIN_DEPTH_M
) -> Float32Array:
    """(N, 3) camera-frame points -> (H, W) float32 sparse depth (m), nearest point per pixel."""
    rows, cols, z, inside = project_points(points_cam, K, hw, min_depth_m)
    return zbuffer(rows[inside], cols[inside], z[inside], hw)


def lidar_to_sparse_depth(
    points_lidar: ArrayLike,
    T_cam_from_lidar: ArrayLike,
    K: ArrayLike,
    hw: tuple[int, int],
    min_depth_m: float = MIN_DEPTH_M,
) -> Float32Array:
    """(N, >=3) LiDAR points + (4, 4) ``T_cam_from_lidar`` -> (H, W) float32 sparse depth (m).

    Points the camera cannot see but the offset LiDAR can (behind a foreground edge) stay in
    the map, as in real KITTI scans: the z-buffer keeps only the nearest point of each pixel.
    """
    points_cam = transform_points(T_cam_from_lidar, points_lidar)
    return points_to_sparse_depth(points_cam, K, hw, min_depth_m)


def pixel_rays(hw: tuple[int, int], K: ArrayLike) -> Float32Array:
    """(H, W, 3) float32 camera-frame rays K^-1 [u, v, 1] (z = 1) through pixel centres."""
    h, w = parse_hw(hw)
    K = parse_intrinsics(K)
    u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    y = (v - K[1, 2]) / K[1, 1]
    x = (u - K[0, 2] - K[0, 1] * y) / K[0, 0]
    return np.stack([x, y, np.ones_like(x)], axis=-1).astype(np.float32)


def unproject(depth: ArrayLike, K: ArrayLike) -> Float32Array:
    """(H, W) depth (m, z along the optical axis) -> (H, W, 3) float32 camera-frame points."""
    depth32 = parse_depth(depth)
    h, w = depth32.shape
    return pixel_rays((h, w), K) * depth32[..., None]
