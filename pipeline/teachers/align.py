"""Robust per-image affine fit of a teacher map to the frame's sparse LiDAR.

Relative teachers are affine-invariant in *disparity*, so their fit is
``1 / z_lidar ~ scale * d + shift``; metric teachers are fitted in depth,
``z_lidar ~ scale * D + shift``. Both are Huber-weighted iteratively reweighted least squares
(IRLS): a least-squares start, then ``iterations`` rounds whose weights are the Huber weights
``min(1, delta / |r|)`` of each point's *depth* residual ``r`` in metres (for disparity fits the
exact ``z_pred - z_lidar`` of the current fit, so ``delta`` means metres in both spaces; a
point whose fitted disparity is <= 0 gets weight 0). A final least-squares refit on the inliers
(``|r| <= delta``) removes the bounded but non-zero pull that Huber weights leave to gross
outliers (LiDAR points seen through foreground edges, reflections), repeated until the inlier
set no longer changes (at most 3 times). Frames with fewer than
``min_points`` returns keep their unaligned map.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from data_schemas.geometry import DepthSpace

if TYPE_CHECKING:
    from data_schemas.teacher_maps import LidarFit

ALIGNS = ("none", "lidar")


@dataclass(frozen=True)
class AlignConfig:
    """``dmd3c teach --align lidar``: the per-image robust fit to the frame's LiDAR."""

    iterations: int = 5
    """Huber IRLS rounds after the least-squares start."""
    delta_m: float = 1.0
    """Huber threshold (m) on the depth residual; also the inlier threshold."""
    min_points: int = 100
    """Frames with fewer LiDAR returns (on valid teacher pixels) keep the unaligned map."""
    max_depth_m: float = 250.0
    """Aligned depth beyond this (or a fitted disparity <= 0) is stored as 0 = invalid."""

    def __post_init__(self) -> None:
        if self.iterations < 0 or self.delta_m <= 0 or self.min_points < 2:
            raise ValueError("align needs iterations >= 0, delta_m > 0 and min_points >= 2")


def _weighted_line(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """(scale, shift) minimising sum w (y - scale x - shift)^2."""
    sw = np.sqrt(w)
    design = np.stack([x * sw, sw], axis=1)
    (scale, shift), *_ = np.linalg.lstsq(design, y * sw, rcond=None)
    return float(scale), float(shift)


def depth_residual(x: np.ndarray, z: np.ndarray, scale: float, shift: float,
                   space: DepthSpace) -> np.ndarray:
    """Predicted minus LiDAR depth (m); +inf where a disparity fit predicts <= 0."""
    pred = scale * x + shift
    residual: np.ndarray
    if space == "depth":
        residual = pred - z
        return residual
    with np.errstate(divide="ignore"):
        residual = np.where(pred > 0, 1.0 / np.where(pred > 0, pred, 1.0) - z, np.inf)
    return residual


def robust_affine(x: np.ndarray, z: np.ndarray, space: DepthSpace,
                  cfg: AlignConfig = AlignConfig()) -> LidarFit:
    """Fit of teacher values ``x`` to LiDAR depths ``z`` (m, > 0), both (N,) float64."""
    from data_schemas.teacher_maps import LidarFit  # the teacher-map format: loads zarr

    y = 1.0 / z if space == "disparity" else z
    weights = np.ones_like(x)
    scale, shift = _weighted_line(x, y, weights)
    for _ in range(cfg.iterations):
        r = np.abs(depth_residual(x, z, scale, shift, space))
        weights = np.where(r <= cfg.delta_m, 1.0, cfg.delta_m / np.maximum(r, 1e-12))
        scale, shift = _weighted_line(x, y, weights)
    scale, shift = _refit_inliers(x, y, z, space, (scale, shift), cfg)
    r = np.abs(depth_residual(x, z, scale, shift, space))
    inliers = r <= cfg.delta_m
    rms = float(np.sqrt(np.mean(r[inliers] ** 2))) if inliers.any() else float("nan")
    return LidarFit(space, scale, shift, len(x), int(inliers.sum()), rms)


def _refit_inliers(x: np.ndarray, y: np.ndarray, z: np.ndarray, space: DepthSpace,
                   line: tuple[float, float], cfg: AlignConfig,
                   rounds: int = 3) -> tuple[float, float]:
    """Least squares on the inliers of ``line``, repeated until the inlier set is stable."""
    inliers = np.zeros(len(x), bool)
    for _ in range(rounds):
        now = np.abs(depth_residual(x, z, *line, space)) <= cfg.delta_m
        if now.sum() < 2 or np.array_equal(now, inliers):
            break
        inliers = now
        line = _weighted_line(x[inliers], y[inliers], np.ones(int(inliers.sum())))
    return line


def lidar_pairs(teacher: np.ndarray, sparse: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(teacher values, LiDAR depths) at pixels with a return and a valid teacher value."""
    if teacher.shape != sparse.shape:
        raise ValueError(f"teacher map {teacher.shape} and LiDAR map {sparse.shape} differ")
    keep = (sparse > 0) & np.isfinite(teacher) & (teacher > 0)
    return teacher[keep].astype(np.float64), sparse[keep].astype(np.float64)


def apply_fit(teacher: np.ndarray, fit: LidarFit, cfg: AlignConfig = AlignConfig()) -> np.ndarray:
    """The metric depth map (float32 m, 0 = invalid) of ``teacher`` under ``fit``."""
    pred = fit.scale * teacher.astype(np.float64) + fit.shift
    if fit.space == "disparity":
        with np.errstate(divide="ignore"):
            pred = np.where(pred > 0, 1.0 / np.where(pred > 0, pred, 1.0), 0.0)
    valid = (pred > 0) & (pred <= cfg.max_depth_m) & (teacher > 0)
    depth: np.ndarray = np.where(valid, pred, 0.0).astype(np.float32)
    return depth


def fit_to_lidar(teacher: np.ndarray, sparse: np.ndarray, space: DepthSpace,
                 cfg: AlignConfig = AlignConfig()) -> LidarFit | None:
    """The robust fit of one frame, or None when it has fewer than ``min_points`` returns."""
    x, z = lidar_pairs(teacher, sparse)
    return robust_affine(x, z, space, cfg) if len(x) >= cfg.min_points else None
