"""Camera intrinsics, teacher output -> metric depth, sky mask, unprojection.

Camera frame: OpenCV (x right, y down, z forward), pixel (row r, col c) has centre (u, v) = (c, r).
Depth maps are float32 metres with 0 = no data; never NaN.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

TeacherKind = Literal["disparity", "depth"]
TEACHER_KINDS = ("disparity", "depth")

KITTI_K_1216x352 = np.array([[721.5377, 0.0, 596.5593], [0.0, 721.5377, 149.854], [0.0, 0.0, 1.0]])
"""KITTI 2011_09_26 P_rect_02 intrinsics for the 352 x 1216 depth-completion crop."""


def parse_hw(hw: tuple[int, int]) -> tuple[int, int]:
    """Validate an image size ``(H, W)`` of positive ints."""
    h, w = (int(x) for x in hw)
    if h < 2 or w < 2:
        raise ValueError(f"image size (H, W) must be at least (2, 2), got {tuple(hw)}")
    return h, w


def parse_intrinsics(K: np.ndarray) -> np.ndarray:
    """Validate a (3, 3) pinhole K (finite, fx, fy > 0, last row [0, 0, 1]); returns float64."""
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3) or not np.all(np.isfinite(K)):
        raise ValueError(f"intrinsics must be a finite (3, 3) matrix, got shape {K.shape}")
    if K[0, 0] <= 0 or K[1, 1] <= 0:
        raise ValueError(f"intrinsics need fx > 0 and fy > 0, got fx={K[0, 0]}, fy={K[1, 1]}")
    if not np.allclose(K[2], [0, 0, 1]) or K[1, 0] != 0:
        raise ValueError("intrinsics must be upper triangular with last row [0, 0, 1]")
    return K


def parse_depth(depth: np.ndarray) -> np.ndarray:
    """Validate an (H, W) metric depth map: finite, >= 0 (0 = no data); returns float32."""
    depth = np.asarray(depth)
    if depth.ndim != 2 or min(depth.shape) < 2:
        raise ValueError(f"depth must be a 2-D (H, W) map with H, W >= 2, got shape {depth.shape}")
    if not np.all(np.isfinite(depth)):
        raise ValueError("depth contains NaN or inf; use 0 for no data")
    if np.any(depth < 0):
        raise ValueError("depth contains negative values; use 0 for no data")
    return depth.astype(np.float32, copy=False)


def parse_teacher_kind(kind: str) -> TeacherKind:
    """``"disparity"`` (relative, affine-invariant) or ``"depth"`` (metric)."""
    if kind not in TEACHER_KINDS:
        raise ValueError(f"unknown teacher kind {kind!r}; allowed: {', '.join(TEACHER_KINDS)}")
    return kind  # type: ignore[return-value]


def intrinsics_from_fov(hw: tuple[int, int], hfov_deg: float, cx: float, cy: float) -> np.ndarray:
    """(3, 3) K with square pixels for horizontal field of view ``hfov_deg`` on an (H, W) image."""
    _, w = parse_hw(hw)
    if not 1.0 < hfov_deg < 179.0:
        raise ValueError(f"hfov_deg must be in (1, 179), got {hfov_deg}")
    f = 0.5 * w / math.tan(math.radians(hfov_deg) / 2.0)
    return np.array([[f, 0.0, cx], [0.0, f, cy], [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class IntrinsicsSampler:
    """Distribution of plausible pinhole intrinsics for an unlabeled photo."""

    hfov_deg: tuple[float, float] = (60.0, 90.0)
    """Uniform range of the horizontal field of view (deg); KITTI's crop is ~80 deg."""
    principal_jitter: float = 0.02
    """Principal point offset from the image centre, uniform +- this fraction of W and H."""


def sample_intrinsics(
    hw: tuple[int, int], rng: np.random.Generator, sampler: IntrinsicsSampler = IntrinsicsSampler()
) -> np.ndarray:
    """Seeded (3, 3) K for an (H, W) image: HFOV uniform in range, principal point near centre."""
    h, w = parse_hw(hw)
    lo, hi = sampler.hfov_deg
    if not 1.0 < lo <= hi < 179.0:
        raise ValueError(f"hfov_deg range must satisfy 1 < lo <= hi < 179, got {sampler.hfov_deg}")
    hfov, jx, jy = rng.uniform(lo, hi), *rng.uniform(-1.0, 1.0, size=2)
    cx = (w - 1) / 2.0 + jx * sampler.principal_jitter * w
    cy = (h - 1) / 2.0 + jy * sampler.principal_jitter * h
    return intrinsics_from_fov((h, w), float(hfov), float(cx), float(cy))


@dataclass(frozen=True)
class MetricRange:
    """Plausible metric range that a relative-disparity map is mapped to (in disparity space)."""

    near_m: tuple[float, float] = (3.0, 6.0)
    """Uniform range of the depth given to the near (high-disparity) end."""
    far_m: tuple[float, float] = (60.0, 100.0)
    """Uniform range of the depth given to the far (low-disparity) end."""
    quantiles: tuple[float, float] = (0.01, 0.99)
    """Robust disparity quantiles (over non-sky pixels) mapped to far and near."""
    sky_rel_threshold: float = 0.03
    """Disparity below this fraction of the image's disparity span (above its min) is sky."""
    max_depth_m: float = 120.0
    """Metric teachers: depth beyond this (or <= 0) is far background / sky."""


def sky_mask(raw: np.ndarray, kind: str, cfg: MetricRange = MetricRange()) -> np.ndarray:
    """(H, W) bool sky / far-background mask: no LiDAR returns there."""
    raw = np.asarray(raw, dtype=np.float32)
    if parse_teacher_kind(kind) == "depth":
        return (raw <= 0) | (raw > cfg.max_depth_m)
    lo, hi = float(raw.min()), float(raw.max())
    if hi - lo <= 0:
        return np.ones(raw.shape, dtype=bool)
    return (raw - lo) < cfg.sky_rel_threshold * (hi - lo)


def _check_teacher_output(raw: np.ndarray) -> np.ndarray:
    raw = np.asarray(raw, dtype=np.float32)
    if raw.ndim != 2 or min(raw.shape) < 2:
        raise ValueError(f"teacher output must be (H, W) with H, W >= 2, got shape {raw.shape}")
    if not np.all(np.isfinite(raw)):
        raise ValueError("teacher output contains NaN or inf")
    return raw


def disparity_to_metric(
    disparity: np.ndarray,
    sky: np.ndarray,
    rng: np.random.Generator,
    cfg: MetricRange = MetricRange(),
) -> np.ndarray:
    """Affine map of relative disparity to metric inverse depth -> (H, W) float32 depth (m), sky 0.

    The alignment is done in disparity space because the teacher's output is affine-invariant there.
    """
    near, far = rng.uniform(*cfg.near_m), rng.uniform(*cfg.far_m)
    if not 0 < near < far:
        raise ValueError(f"metric range needs 0 < near < far, got near={near}, far={far}")
    ground = disparity[~sky]
    if ground.size == 0:
        return np.zeros(disparity.shape, np.float32)
    d_lo, d_hi = np.quantile(ground[:: max(1, ground.size // 65536)], cfg.quantiles)
    d_n = np.clip((disparity - d_lo) / max(float(d_hi - d_lo), 1e-12), 0.0, 1.0)
    inv_depth = 1.0 / far + d_n * (1.0 / near - 1.0 / far)
    return np.where(sky, 0.0, 1.0 / inv_depth).astype(np.float32)


def teacher_to_metric_depth(
    raw: np.ndarray,
    kind: str,
    rng: np.random.Generator,
    cfg: MetricRange = MetricRange(),
    sky: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Teacher output (H, W) -> (metric depth float32 m with sky = 0, sky mask bool).

    ``kind="disparity"``: affine map in disparity space to a sampled near/far range;
    ``kind="depth"``: identity (metric teachers). ``sky`` overrides the automatic mask.
    """
    raw = _check_teacher_output(raw)
    sky = sky_mask(raw, kind, cfg) if sky is None else np.asarray(sky, dtype=bool)
    if sky.shape != raw.shape:
        raise ValueError(f"sky mask shape {sky.shape} != teacher output shape {raw.shape}")
    if parse_teacher_kind(kind) == "depth":
        return np.where(sky, 0.0, raw).astype(np.float32), sky
    return disparity_to_metric(raw, sky, rng, cfg), sky


def pixel_rays(hw: tuple[int, int], K: np.ndarray) -> np.ndarray:
    """(H, W, 3) float32 camera-frame rays K^-1 [u, v, 1] (z = 1) through pixel centres."""
    h, w = parse_hw(hw)
    K = parse_intrinsics(K)
    u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    y = (v - K[1, 2]) / K[1, 1]
    x = (u - K[0, 2] - K[0, 1] * y) / K[0, 0]
    return np.stack([x, y, np.ones_like(x)], axis=-1).astype(np.float32)


def unproject(depth: np.ndarray, K: np.ndarray) -> np.ndarray:
    """(H, W) depth (m, z along the optical axis) -> (H, W, 3) float32 camera-frame points."""
    depth = parse_depth(depth)
    return pixel_rays(depth.shape, K) * depth[..., None]
