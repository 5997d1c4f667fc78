"""Depth-completion metrics: the KITTI devkit (``evaluate_depth.cpp``) and the NYUv2 set.

Every function takes ``(pred, target, valid_mask)`` as ``[H, W]`` arrays in metres and
returns plain floats. KITTI metrics are computed per image exactly as the devkit does
(after its hole filling, in m and 1/m) and :func:`mean_kitti_metrics` averages them over
images and converts to the leaderboard's units: RMSE/MAE in **mm**, iRMSE/iMAE in **1/km**.

Devkit hole filling (``interpolateBackground``), reproduced by :func:`fill_holes_devkit`:
a run of invalid pixels strictly inside a row takes the min of its two valid neighbours;
leading/trailing runs of a row take the nearest valid value of that row; then, per
column, leading/trailing runs take the nearest valid value of that column. A pixel is
valid when > 0 (the devkit reads PNG value 0 as invalid). One extension: an empty row
*between* non-empty rows (only sparse inputs have them) is left invalid by the devkit, which
then scores it as -1 m (NaN log metrics); here each such pixel takes the min of the nearest
valid values above and below it, the devkit's own rule for runs inside a row.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields

import numpy as np

from data_schemas.errors import InputError

MIN_VALID_DEPTH_M = 1e-3
"""GT pixels at or below this depth are invalid (KITTI stores 0 for 'no GT')."""


@dataclass(frozen=True)
class KittiMetrics:
    """KITTI devkit metrics of one image (m, 1/m, ratios) or their mean over images."""

    rmse: float
    mae: float
    irmse: float
    imae: float
    log_rmse: float
    log_mae: float
    silog: float
    abs_rel: float
    sq_rel: float
    delta1: float
    delta2: float
    delta3: float

    def leaderboard(self) -> dict[str, float]:
        """Leaderboard units: RMSE/MAE in mm, iRMSE/iMAE in 1/km; the rest unchanged."""
        out = asdict(self)
        for name in ("rmse", "mae", "irmse", "imae"):
            out[name] = out[name] * 1000.0
        return {_LEADERBOARD_NAMES.get(k, k): float(v) for k, v in out.items()}


_LEADERBOARD_NAMES = {
    "rmse": "rmse_mm",
    "mae": "mae_mm",
    "irmse": "irmse_1_per_km",
    "imae": "imae_1_per_km",
}


@dataclass(frozen=True)
class NyuMetrics:
    """NYUv2 metrics of one image (RMSE in m, REL, delta ratios) or their mean."""

    rmse: float
    rel: float
    delta1: float
    delta2: float
    delta3: float


def _check_pair(pred: np.ndarray, target: np.ndarray) -> None:
    if pred.ndim != 2 or target.ndim != 2:
        raise InputError(f"pred and target must be [H,W], got {pred.shape} and {target.shape}")
    if pred.shape != target.shape:
        raise InputError(
            f"prediction size {pred.shape[1]}x{pred.shape[0]} differs from "
            f"ground-truth size {target.shape[1]}x{target.shape[0]}"
        )


def default_valid_mask(target: np.ndarray) -> np.ndarray:
    """Valid GT pixels: finite and > :data:`MIN_VALID_DEPTH_M`."""
    return np.asarray(np.isfinite(target) & (target > MIN_VALID_DEPTH_M))


def _fill_rows(depth: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    height, width = depth.shape
    cols = np.broadcast_to(np.arange(width), (height, width))
    prev = np.maximum.accumulate(np.where(valid, cols, -1), axis=1)
    nxt = np.minimum.accumulate(np.where(valid, cols, width)[:, ::-1], axis=1)[:, ::-1]
    rows = np.arange(height)[:, None]
    prev_val = depth[rows, np.clip(prev, 0, width - 1)]
    next_val = depth[rows, np.clip(nxt, 0, width - 1)]
    has_prev, has_next = prev >= 0, nxt < width
    filled = np.where(
        has_prev & has_next, np.minimum(prev_val, next_val), np.where(has_next, next_val, prev_val)
    )
    filled_valid = has_prev | has_next
    return np.where(valid, depth, np.where(filled_valid, filled, 0.0)), valid | filled_valid


def _extrapolate_columns(depth: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    height = depth.shape[0]
    rows_idx = np.broadcast_to(np.arange(height)[:, None], depth.shape)
    first = np.where(valid.any(axis=0), np.argmax(valid, axis=0), -1)
    last = np.where(valid.any(axis=0), height - 1 - np.argmax(valid[::-1], axis=0), -1)
    cols = np.arange(depth.shape[1])
    top = (rows_idx < first) & (first >= 0)
    bottom = (rows_idx > last) & (last >= 0)
    out = depth.copy()
    out = np.where(top, depth[np.clip(first, 0, None), cols][None, :], out)
    out = np.where(bottom, depth[np.clip(last, 0, None), cols][None, :], out)
    return out, valid | top | bottom


def fill_holes_devkit(pred: np.ndarray) -> np.ndarray:
    """[H,W] m, 0/NaN = hole -> [H,W] m filled like the devkit's ``interpolateBackground``.

    Empty rows between non-empty rows are filled column-wise (see the module docstring).
    Raises ValueError for an empty prediction.
    """
    depth = np.nan_to_num(np.asarray(pred, dtype=np.float64), nan=0.0, posinf=0.0)
    valid = depth > 0
    if valid.all():
        return depth
    if not valid.any():
        raise InputError("prediction has no valid (> 0) pixel; nothing to fill holes from")
    depth, valid = _fill_rows(depth, valid)
    depth, valid = _extrapolate_columns(depth, valid)
    if not valid.all():
        depth_t, _ = _fill_rows(depth.T, valid.T)
        depth = depth_t.T
    return depth


def kitti_metrics(
    pred: np.ndarray,
    target: np.ndarray,
    valid_mask: np.ndarray | None = None,
    fill_holes: bool = True,
) -> KittiMetrics:
    """Devkit metrics of one image: pred, target [H,W] m; valid_mask [H,W] bool (default GT > 0).

    Values in m and 1/m (as the devkit computes them); see :meth:`KittiMetrics.leaderboard`.
    """
    pred, target, valid = _scored_pair(pred, target, valid_mask)
    filled = fill_holes_devkit(pred) if fill_holes else pred
    gt, est = target[valid], filled[valid]
    if (est <= 0).any():
        raise InputError("prediction has non-positive depth on valid GT pixels")
    return _kitti_from_pixels(est, gt)


def _scored_pair(pred: np.ndarray, target: np.ndarray, valid_mask: np.ndarray | None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """pred, target as float64 [H,W] (same shape) and the valid-GT mask, which must be
    non-empty."""
    pred = np.asarray(pred, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    _check_pair(pred, target)
    valid = default_valid_mask(target) if valid_mask is None else np.asarray(valid_mask, bool)
    if not valid.any():
        raise InputError("ground truth has no valid pixel")
    return pred, target, valid


def _kitti_from_pixels(est: np.ndarray, gt: np.ndarray) -> KittiMetrics:
    err = np.abs(gt - est)
    inv_err = np.abs(1.0 / gt - 1.0 / est)
    log_diff = np.log(gt) - np.log(est)
    silog_sq = np.mean(log_diff**2) - np.mean(log_diff) ** 2
    ratio = np.maximum(est / gt, gt / est)
    return KittiMetrics(
        rmse=float(np.sqrt(np.mean(err**2))),
        mae=float(np.mean(err)),
        irmse=float(np.sqrt(np.mean(inv_err**2))),
        imae=float(np.mean(inv_err)),
        log_rmse=float(np.sqrt(np.mean(log_diff**2))),
        log_mae=float(np.mean(np.abs(log_diff))),
        silog=float(np.sqrt(max(silog_sq, 0.0))),
        abs_rel=float(np.mean(err / gt)),
        sq_rel=float(np.mean(err**2 / gt**2)),
        delta1=float(np.mean(ratio < 1.25)),
        delta2=float(np.mean(ratio < 1.25**2)),
        delta3=float(np.mean(ratio < 1.25**3)),
    )


def nyu_metrics(
    pred: np.ndarray, target: np.ndarray, valid_mask: np.ndarray | None = None
) -> NyuMetrics:
    """NYUv2 metrics of one image (NLSPN/BP-Net convention): RMSE m, REL, delta < 1.25^k."""
    pred, target, valid = _scored_pair(pred, target, valid_mask)
    gt, est = target[valid], np.maximum(pred[valid], 1e-8)
    ratio = np.maximum(est / gt, gt / est)
    return NyuMetrics(
        rmse=float(np.sqrt(np.mean((est - gt) ** 2))),
        rel=float(np.mean(np.abs(est - gt) / gt)),
        delta1=float(np.mean(ratio < 1.25)),
        delta2=float(np.mean(ratio < 1.25**2)),
        delta3=float(np.mean(ratio < 1.25**3)),
    )


def _mean_of(per_image: Iterable[object], cls: type) -> object:
    items = list(per_image)
    if not items:
        raise InputError("no images to average")
    names = [f.name for f in fields(cls)]
    return cls(**{n: float(np.mean([getattr(m, n) for m in items])) for n in names})


def mean_kitti_metrics(per_image: Iterable[KittiMetrics]) -> KittiMetrics:
    """Arithmetic mean over images of each per-image metric (the devkit's reported value)."""
    return _mean_of(per_image, KittiMetrics)  # type: ignore[return-value]


def mean_nyu_metrics(per_image: Iterable[NyuMetrics]) -> NyuMetrics:
    """Arithmetic mean over images of each per-image NYUv2 metric."""
    return _mean_of(per_image, NyuMetrics)  # type: ignore[return-value]


def format_metrics(values: Mapping[str, float]) -> str:
    """One line ``name=value`` per metric, fixed precision, for terminal reports."""
    return "\n".join(f"{name:>16s} = {value:.4f}" for name, value in values.items())
