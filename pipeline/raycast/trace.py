"""Screen-space geometry of rays seen by a pinhole camera.

A ray X(t) = o + t d (camera frame, d_z > 0) projects to the pixel p(s) = p_inf + a * s,
which is *affine* in the ray's inverse depth s = 1 / z(t): the ray's image is a straight
segment ending at its vanishing point p_inf. A planar triangle's inverse depth is also affine
in the image, so a ray meets a grid-mesh triangle where two affine functions of s agree.
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


def _s_bounds_from_range(origin: np.ndarray, dz: np.ndarray, t_min: float, t_max: float) -> tuple[np.ndarray, np.ndarray]:
    """Inverse-depth interval [s_far, s_near] covered by t in [t_min, t_max] (empty -> s_far > s_near)."""
    z_far = origin[2] + t_max * dz
    z_near = np.maximum(origin[2] + t_min * dz, Z_FLOOR_M)
    s_far = np.where(z_far > Z_FLOOR_M, 1.0 / np.maximum(z_far, Z_FLOOR_M), np.inf)
    return s_far, 1.0 / z_near


def _clip_axis(p: np.ndarray, a: np.ndarray, hi: float, s_far: np.ndarray, s_near: np.ndarray, ok: np.ndarray) -> None:
    """Clip p + a s to [0, hi] along one axis, narrowing s_far / s_near / ok in place."""
    moving = np.abs(a) > 1e-12
    a_safe = np.where(moving, a, 1.0)
    s0, s1 = -p / a_safe, (hi - p) / a_safe
    np.maximum(s_far, np.where(moving, np.minimum(s0, s1), -np.inf), out=s_far)
    np.minimum(s_near, np.where(moving, np.maximum(s0, s1), np.inf), out=s_near)
    ok &= moving | ((p >= 0) & (p <= hi))


def image_traces(
    origin: np.ndarray,
    dirs: np.ndarray,
    K: np.ndarray,
    hw: tuple[int, int],
    t_range: tuple[float, float],
    s_range: tuple[float, float] = (0.0, np.inf),
) -> Traces:
    """Traces of rays o + t d (camera frame, t in ``t_range`` m) inside the pixel-centre box [0, W-1] x [0, H-1].

    ``s_range`` further limits the inverse depth (e.g. to the scene's [min, max] 1/depth).
    """
    dirs = np.asarray(dirs, dtype=np.float64)
    o = np.asarray(origin, dtype=np.float64)
    dz = dirs[:, 2]
    ok = dz > 1e-9
    dz_safe = np.where(ok, dz, 1.0)
    n_inf = dirs[:, :2] / dz_safe[:, None]
    m = o[:2] - o[2] * n_inf
    A = K[:2, :2]
    p_inf = n_inf @ A.T + K[:2, 2]
    slope = m @ A.T
    s_far, s_near = _s_bounds_from_range(o, dz_safe, *t_range)
    s_far = np.maximum(s_far, s_range[0])
    s_near = np.minimum(s_near, s_range[1])
    h, w = hw
    _clip_axis(p_inf[:, 0], slope[:, 0], w - 1.0, s_far, s_near, ok)
    _clip_axis(p_inf[:, 1], slope[:, 1], h - 1.0, s_far, s_near, ok)
    ok &= s_far <= s_near
    return Traces(p_inf=p_inf, slope=slope, s_near=s_near, s_far=s_far, ok=ok)


def s_to_t(s: np.ndarray, origin: np.ndarray, dz: np.ndarray) -> np.ndarray:
    """Inverse depth s (1/m) on rays with direction z-component dz -> ray parameter t (m)."""
    return (1.0 / s - origin[2]) / dz
