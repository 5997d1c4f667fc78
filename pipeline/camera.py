"""Camera intrinsics for unlabeled photos, teacher output -> metric depth, sky mask.

Projection, unprojection and the z-buffer live in :mod:`data_schemas.geometry`.

Camera frame: OpenCV (x right, y down, z forward), pixel (row r, col c) has centre (u, v) = (c, r).
Depth maps are float32 metres with 0 = no data; never NaN.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from data_schemas.errors import ConfigError, InputError
from data_schemas.geometry import parse_depth_space, parse_hw

KITTI_K_1216x352 = np.array([[721.5377, 0.0, 596.5593], [0.0, 721.5377, 149.854], [0.0, 0.0, 1.0]])
"""KITTI 2011_09_26 P_rect_02 intrinsics for the 352 x 1216 depth-completion crop."""


def intrinsics_from_fov(hw: tuple[int, int], hfov_deg: float, cx: float, cy: float) -> np.ndarray:
    """(3, 3) K with square pixels for horizontal field of view ``hfov_deg`` on an (H, W) image."""
    _, w = parse_hw(hw)
    if not 1.0 < hfov_deg < 179.0:
        raise ConfigError(f"hfov_deg must be in (1, 179), got {hfov_deg}")
    f = 0.5 * w / math.tan(math.radians(hfov_deg) / 2.0)
    return np.array([[f, 0.0, cx], [0.0, f, cy], [0.0, 0.0, 1.0]])


KITTI_HFOV_DEG = 2.0 * math.degrees(math.atan(608.0 / 721.5377))
"""Horizontal field of view of KITTI's 1216-px depth-completion crop (80.2 deg)."""
KITTI_PRINCIPAL_POINT = (596.5593 / 1216.0, 149.854 / 352.0)
"""KITTI crop's principal point as fractions of (W, H): (0.491, 0.426)."""


@dataclass(frozen=True)
class IntrinsicsSampler:
    """Distribution of plausible pinhole intrinsics for an unlabeled photo.

    The defaults reproduce KITTI's depth-completion crop, so that a 64-beam scan puts as many
    laser lines on the canvas as a KITTI frame has: a field of view around KITTI's 80 deg and
    the principal point (the horizon of a level camera) at 43 % of the height, which leaves
    room below it for every laser down to -14.7 deg (a centred horizon loses the lowest 3,
    a 60 deg view 12).
    """

    hfov_deg: tuple[float, float] = (75.0, 85.0)
    """Uniform range of the horizontal field of view (deg): +-5 deg around KITTI's crop (80.2
    deg); a 64-beam scan then covers 3.5-5.3 % of the canvas, as KITTI's 4.4 %."""
    principal_point: tuple[float, float] = KITTI_PRINCIPAL_POINT
    """Principal point as fractions of (W, H) of the canvas; KITTI's crop: (0.491, 0.426)."""
    principal_jitter: float = 0.02
    """Principal point offset from ``principal_point``, uniform +- this fraction of W and H."""

    def __post_init__(self) -> None:
        lo, hi = self.hfov_deg
        if not 1.0 < lo <= hi < 179.0:
            raise ConfigError(
                f"hfov_deg range must satisfy 1 < lo <= hi < 179, got {self.hfov_deg}")
        if not all(0.0 <= f <= 1.0 for f in self.principal_point) or self.principal_jitter < 0:
            raise ConfigError("principal_point fractions must be in [0, 1] and principal_jitter "
                              f">= 0, got {self.principal_point}, {self.principal_jitter}")


def sample_intrinsics(
    hw: tuple[int, int], rng: np.random.Generator, sampler: IntrinsicsSampler = IntrinsicsSampler()
) -> np.ndarray:
    """Seeded (3, 3) K for an (H, W) image: HFOV uniform in range, principal point near
    ``sampler.principal_point`` (fractions of the pixel-centre span [0, W-1] x [0, H-1])."""
    h, w = parse_hw(hw)
    hfov, jx, jy = rng.uniform(*sampler.hfov_deg), *rng.uniform(-1.0, 1.0, size=2)
    fx, fy = sampler.principal_point
    cx = fx * (w - 1) + jx * sampler.principal_jitter * w
    cy = fy * (h - 1) + jy * sampler.principal_jitter * h
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
    if parse_depth_space(kind) == "depth":
        return (raw <= 0) | (raw > cfg.max_depth_m)
    lo, hi = float(raw.min()), float(raw.max())
    if hi - lo <= 0:
        return np.ones(raw.shape, dtype=bool)
    return (raw - lo) < cfg.sky_rel_threshold * (hi - lo)


def _check_teacher_output(raw: np.ndarray) -> np.ndarray:
    raw = np.asarray(raw, dtype=np.float32)
    if raw.ndim != 2 or min(raw.shape) < 2:
        raise InputError(f"teacher output must be (H, W) with H, W >= 2, got shape {raw.shape}")
    if not np.all(np.isfinite(raw)):
        raise InputError("teacher output contains NaN or inf")
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
        raise ConfigError(f"metric range needs 0 < near < far, got near={near}, far={far}")
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
        raise InputError(f"sky mask shape {sky.shape} != teacher output shape {raw.shape}")
    if parse_depth_space(kind) == "depth":
        return np.where(sky, 0.0, raw).astype(np.float32), sky
    return disparity_to_metric(raw, sky, rng, cfg), sky
