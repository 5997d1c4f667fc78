"""Screen-space geometry of rays seen by a pinhole camera.

A ray X(t) = o + t d (camera frame, d_z > 0) projects to the pixel p(s) = p_inf + a * s,
which is *affine* in the ray's inverse depth s = 1 / z(t): the ray's image is a straight
segment ending at its vanishing point p_inf. A planar triangle's inverse depth is also affine
in the image, so a ray meets a grid-mesh triangle where two affine functions of s agree.
Every ray may start at its own origin (a LiDAR's emitters sit apart from its centre).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Z_FLOOR_M = 1e-3
"""Rays are considered only where they are at least this far in front of the camera."""


@dataclass(frozen=True)
class Traces:
    """Image traces of N rays, clipped to the image and to an inverse-depth interval."""

    p_inf: np.ndarray
    """(N, 2) float64 pixel (u, v) of each ray's vanishing point."""
    slope: np.ndarray
    """(N, 2) float64 pixel change per unit of inverse depth (px * m)."""
    s_near: np.ndarray
    """(N,) float64 inverse depth (1/m) where the clipped trace starts (nearest point)."""
    s_far: np.ndarray
    """(N,) float64 inverse depth (1/m) where it ends (farthest point), <= s_near."""
    ok: np.ndarray
    """(N,) bool: the clipped trace is non-empty."""


def ray_origins(origins: np.ndarray, n: int) -> np.ndarray:
    """(3,) shared or (N, 3) per-ray origins -> (N, 3) float64 view."""
    return np.broadcast_to(np.asarray(origins, dtype=np.float64), (n, 3))


def _s_bounds_from_range(
    origin_z: np.ndarray, dz: np.ndarray, t_min: float, t_max: float
) -> tuple[np.ndarray, np.ndarray]:
    """Inverse-depth interval [s_far, s_near] for t in [t_min, t_max] (empty: s_far > s_near)."""
    z_far = origin_z + t_max * dz
    s_far = 1.0 / np.maximum(z_far, Z_FLOOR_M)
    s_far[z_far <= Z_FLOOR_M] = np.inf
    return s_far, 1.0 / np.maximum(origin_z + t_min * dz, Z_FLOOR_M)


def _clip_axis(
    p: np.ndarray, a: np.ndarray, hi: float, s_far: np.ndarray, s_near: np.ndarray
) -> None:
    """Clip p + a s to [0, hi] along one axis, narrowing s_far / s_near in place."""
    inv = 1.0 / (a + 1e-300)
    s0, s1 = -p * inv, (hi - p) * inv
    np.maximum(s_far, np.minimum(s0, s1), out=s_far)
    np.minimum(s_near, np.maximum(s0, s1), out=s_near)


def image_traces(
    origins: np.ndarray,
    dirs: np.ndarray,
    K: np.ndarray,
    hw: tuple[int, int],
    t_range: tuple[float, float],
    s_range: tuple[float, float] = (0.0, np.inf),
) -> Traces:
    """Traces of rays o + t d (camera frame, t in ``t_range`` m) clipped to [0, W-1] x [0, H-1].

    ``origins``: (3,) shared or (N, 3) per ray. ``s_range`` further limits the inverse depth
    (e.g. to the scene's [min, max] 1/depth).
    """
    dirs = np.asarray(dirs, dtype=np.float64)
    o = ray_origins(origins, len(dirs))
    dz = dirs[:, 2]
    ok = dz > 1e-9
    dz_safe = np.maximum(dz, 1e-9)
    nx, ny = dirs[:, 0] / dz_safe, dirs[:, 1] / dz_safe
    mx, my = o[:, 0] - o[:, 2] * nx, o[:, 1] - o[:, 2] * ny
    p_inf = np.stack([K[0, 0] * nx + K[0, 1] * ny + K[0, 2], K[1, 1] * ny + K[1, 2]], axis=1)
    slope = np.stack([K[0, 0] * mx + K[0, 1] * my, K[1, 1] * my], axis=1)
    s_far, s_near = _s_bounds_from_range(o[:, 2], dz_safe, *t_range)
    s_far = np.maximum(s_far, s_range[0])
    s_near = np.minimum(s_near, s_range[1])
    h, w = hw
    _clip_axis(p_inf[:, 0], slope[:, 0], w - 1.0, s_far, s_near)
    _clip_axis(p_inf[:, 1], slope[:, 1], h - 1.0, s_far, s_near)
    ok &= s_far <= s_near
    return Traces(p_inf=p_inf, slope=slope, s_near=s_near, s_far=s_far, ok=ok)


def s_to_t(s: np.ndarray, origin_z: np.ndarray | float, dz: np.ndarray) -> np.ndarray:
    """Inverse depth s (1/m) on rays from origins at camera z ``origin_z`` -> ray parameter t."""
    return np.asarray((1.0 / s - origin_z) / dz)
