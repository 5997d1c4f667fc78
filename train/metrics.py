"""Depth-completion metrics: the KITTI devkit (``evaluate_depth.cpp``), digit for digit, and NYUv2.

Every function takes ``(pred, target, valid_mask)`` as ``[H, W]`` arrays in metres and returns
plain floats. :func:`kitti_metrics` scores one image as the official devkit does
(``devkit_depth``: ``io_depth.h``, ``evaluate_depth.cpp`` ``depthError``, ``utils.h``
``statMean``), in m and 1/m; :func:`mean_kitti_metrics` averages images as the devkit does;
:meth:`KittiMetrics.leaderboard` converts to the leaderboard's units (RMSE/MAE in **mm**,
iRMSE/iMAE in **1/km**).

The devkit's arithmetic, reproduced exactly (checked bit for bit against the devkit's own
``depthError`` / ``interpolateBackground`` / ``statMean`` built with its ``make.sh`` flags,
``g++ -O3``, g++ 12 / glibc on x86-64):

* Maps are float32: a PNG value ``v`` becomes ``v / 256.0`` (0 = invalid, stored as -1).
  Other inputs are cast to float32; a prediction pixel <= 0 or NaN is a hole.
* Hole filling (``DepthImage::interpolateBackground``): per row, a run of holes between two
  valid pixels takes the smaller of the two, leading / trailing runs the nearest valid value
  of the row; then per column, the top and bottom runs take the nearest valid value of the
  column. A row that is empty between filled rows stays a hole: its pixels keep -1 m, which
  then counts in MAE/RMSE (error gt + 1) and iMAE/iRMSE and makes the log metrics NaN. This is
  done here too, with a logged warning naming the rows (only sparse predictions have them).
* Per valid GT pixel, columns outer and rows inner (column-major), in float32:
  ``d = |g - p|``, ``d*d``; ``|1.0/g - 1.0/p|`` computed in double (``1.0`` is a double
  literal) and rounded to float; its square in float; ``|logf(g) - logf(p)|`` and its square
  in float (with ``<math.h>`` in C++ and ``using namespace std``, ``log(float)`` resolves to
  the float overload: the built devkit calls ``logf``; here glibc's ``logf`` is called through
  ``ctypes``); ``d / g`` and ``d*d / (g*g)`` in float. Each term is added one pixel at a time
  to a float32 running sum (``errors[i] +=``; ``logSum`` likewise).
* Per image, in float32: sums / ``(float)n``; RMSE-type metrics are ``sqrt`` of that;
  ``SILog = sqrt(sumsq_log / n - logSum * logSum / (n * n))`` with ``n * n`` itself rounded
  to float (a negative argument gives NaN, as in the devkit).
* Over images (``statMean``): a float32 running sum in image order, divided by
  ``(float)count``.

A float32 running sum is exact to emulate with ``np.cumsum(x, dtype=np.float32)``, which
numpy evaluates strictly left to right in float32 (``np.sum`` uses pairwise summation and
differs). Caveat: the log metrics depend on the C math library's ``logf`` (glibc's since 2.28
here) and on that overload resolution; a devkit built with an old toolchain whose
``log(float)`` was C's double ``log`` gives other last digits for log MAE / log RMSE / SILog.
MAE, RMSE, iMAE and iRMSE (the leaderboard's metrics) do not involve logarithms.
``delta1..3`` are not devkit metrics; they are computed in float64 on the same pixels (a
pixel left at -1 m fails every threshold).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, fields

import numpy as np

from data_schemas.errors import InputError

logger = logging.getLogger(__name__)

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
    valid: np.ndarray = np.isfinite(target) & (target > MIN_VALID_DEPTH_M)
    return valid


DEVKIT_HOLE_M = -1.0
"""Depth the devkit stores for a pixel without a value (``DepthImage::setInvalid``)."""
_PNG_SCALE = 256.0
_PNG_MAX = 65535


def _fill_rows(depth: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row pass of ``interpolateBackground``: interior runs take the min of their two
    neighbours, leading / trailing runs the nearest valid value; empty rows stay holes."""
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
    return np.where(valid | ~filled_valid, depth, filled), valid | filled_valid


def _extrapolate_columns(depth: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column pass: runs above the first / below the last valid pixel take its value."""
    height = depth.shape[0]
    rows_idx = np.broadcast_to(np.arange(height)[:, None], depth.shape)
    any_valid = valid.any(axis=0)
    first = np.where(any_valid, np.argmax(valid, axis=0), -1)
    last = np.where(any_valid, height - 1 - np.argmax(valid[::-1], axis=0), -1)
    cols = np.arange(depth.shape[1])
    top = (rows_idx < first) & (first >= 0)
    bottom = (rows_idx > last) & (last >= 0)
    out = np.where(top, depth[np.clip(first, 0, None), cols][None, :], depth)
    out = np.where(bottom, depth[np.clip(last, 0, None), cols][None, :], out)
    return out, valid | top | bottom


def fill_holes_devkit(pred: np.ndarray) -> np.ndarray:
    """[H,W] m, <= 0 / NaN = hole -> float32 [H,W] m filled as the devkit's
    ``interpolateBackground``; pixels it leaves unfilled (rows empty between filled rows) hold
    -1 m, as in the devkit. InputError for a prediction without any valid pixel."""
    depth = np.nan_to_num(np.asarray(pred, dtype=np.float32), nan=0.0, posinf=0.0)
    valid = depth > 0
    if valid.all():
        return depth
    if not valid.any():
        raise InputError("prediction has no valid (> 0) pixel; nothing to fill holes from")
    depth, valid = _fill_rows(depth, valid)
    depth, valid = _extrapolate_columns(depth, valid)
    return np.where(valid, depth, np.float32(DEVKIT_HOLE_M))


def _warn_unfilled_rows(filled: np.ndarray, valid_gt: np.ndarray) -> None:
    rows = np.flatnonzero((filled == DEVKIT_HOLE_M).all(axis=1))
    if rows.size:
        hit = int(valid_gt[rows].sum())
        logger.warning(
            "prediction rows %s are empty between filled rows: scored at -1 m as the KITTI "
            "devkit does (%d GT pixels; MAE/RMSE count them, log metrics become NaN)",
            ", ".join(map(str, rows[:10])) + (" ..." if rows.size > 10 else ""), hit)


def kitti_metrics(
    pred: np.ndarray,
    target: np.ndarray,
    valid_mask: np.ndarray | None = None,
    fill_holes: bool = True,
) -> KittiMetrics:
    """Devkit metrics of one image: pred, target [H,W] m; valid_mask [H,W] bool (default GT > 0).

    Values in m and 1/m, with the devkit's float32 digits; see :meth:`KittiMetrics.leaderboard`.
    ``fill_holes=False`` scores ``pred`` as it is (it must then be > 0 on every GT pixel).
    """
    pred, target, valid = _scored_pair(pred, target, valid_mask)
    if fill_holes:
        filled = fill_holes_devkit(pred)
        _warn_unfilled_rows(filled, valid)
    else:
        filled = pred.astype(np.float32)
        if (filled[valid] <= 0).any() or np.isnan(filled[valid]).any():
            raise InputError("prediction has non-positive depth on valid GT pixels")
    # column-major pixel order, as the devkit's loops (u outer, v inner)
    gt = target.astype(np.float32).T[valid.T]
    est = filled.T[valid.T]
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


@functools.cache
def _libm_logf() -> Callable[[float], float] | None:
    """The C library's ``logf`` (what the built devkit calls), or None where there is none."""
    name = ctypes.util.find_library("m")
    if name is None:
        return None
    logf: Callable[[float], float] = ctypes.CDLL(name).logf
    logf.restype, logf.argtypes = ctypes.c_float, [ctypes.c_float]  # type: ignore[attr-defined]
    return logf


def _logf_each(values: np.ndarray) -> np.ndarray:
    logf = _libm_logf()
    if logf is None:  # no C library to ask: the closest float to the exact logarithm
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log(values.astype(np.float64)).astype(np.float32)
    return np.array([logf(float(v)) for v in values], dtype=np.float32)


@functools.cache
def _logf_png_table() -> np.ndarray:
    """logf(k / 256) for every 16-bit PNG value k (k = 0 gives -inf)."""
    return _logf_each(np.arange(_PNG_MAX + 1, dtype=np.float32) / np.float32(_PNG_SCALE))


def devkit_logf(x: np.ndarray) -> np.ndarray:
    """float32 ``logf`` of float32 values, as the devkit's ``log(float)``: a table for the
    values a depth PNG can hold (k / 256), the C library for any other."""
    x = np.asarray(x, dtype=np.float32)
    k = x * np.float32(_PNG_SCALE)
    on_grid = (k == np.floor(k)) & (k >= 0) & (k <= _PNG_MAX)
    out = np.empty_like(x)
    out[on_grid] = _logf_png_table()[k[on_grid].astype(np.int64)]
    if not on_grid.all():
        unique, inverse = np.unique(x[~on_grid], return_inverse=True)
        out[~on_grid] = _logf_each(unique)[inverse]
    return out


def _running_sum(terms: np.ndarray) -> np.float32:
    """float32 sum added one term at a time, left to right (``float s; s += x``)."""
    return np.float32(np.cumsum(terms, dtype=np.float32)[-1])


def _devkit_pixel_terms(est: np.ndarray, gt: np.ndarray) -> dict[str, np.ndarray]:
    """The per-pixel float32 terms ``depthError`` adds up, keyed by metric."""
    err = np.abs(gt - est)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = np.abs(1.0 / gt.astype(np.float64) - 1.0 / est.astype(np.float64))
        inv32 = inv.astype(np.float32)
        log_diff = devkit_logf(gt) - devkit_logf(est)
    log_err = np.abs(log_diff)
    return {"mae": err, "rmse": err * err, "imae": inv32, "irmse": inv32 * inv32,
            "log_mae": log_err, "log_rmse": log_err * log_err, "log_sum": log_diff,
            "abs_rel": err / gt, "sq_rel": (err * err) / (gt * gt)}


def _kitti_from_pixels(est: np.ndarray, gt: np.ndarray) -> KittiMetrics:
    """est, gt: float32 [N] in column-major order -> the devkit's per-image metrics."""
    sums = {name: _running_sum(t) for name, t in _devkit_pixel_terms(est, gt).items()}
    n = np.float32(gt.size)
    mean = {name: value / n for name, value in sums.items()}
    with np.errstate(invalid="ignore"):
        silog = np.sqrt(mean["log_rmse"] - sums["log_sum"] * sums["log_sum"] / (n * n))
        ratio = np.where(est > 0, np.maximum(est / gt, gt / est), np.inf).astype(np.float64)
    return KittiMetrics(
        rmse=float(np.sqrt(mean["rmse"])),
        mae=float(mean["mae"]),
        irmse=float(np.sqrt(mean["irmse"])),
        imae=float(mean["imae"]),
        log_rmse=float(np.sqrt(mean["log_rmse"])),
        log_mae=float(mean["log_mae"]),
        silog=float(silog),
        abs_rel=float(mean["abs_rel"]),
        sq_rel=float(mean["sq_rel"]),
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


_DEVKIT_FIELDS = ("rmse", "mae", "irmse", "imae", "log_rmse", "log_mae", "silog", "abs_rel",
                  "sq_rel")


def mean_kitti_metrics(per_image: Iterable[KittiMetrics]) -> KittiMetrics:
    """Mean over images of each per-image metric, as the devkit's ``statMean`` (float32 running
    sum in image order / count); the delta ratios (not devkit metrics) in float64."""
    items = list(per_image)
    if not items:
        raise InputError("no images to average")
    count = np.float32(len(items))
    values = {
        name: float(_running_sum(np.array([getattr(m, name) for m in items], np.float32)) / count)
        if name in _DEVKIT_FIELDS else float(np.mean([getattr(m, name) for m in items]))
        for name in (f.name for f in fields(KittiMetrics))
    }
    return KittiMetrics(**values)


def mean_nyu_metrics(per_image: Iterable[NyuMetrics]) -> NyuMetrics:
    """Arithmetic mean over images of each per-image NYUv2 metric."""
    return _mean_of(per_image, NyuMetrics)  # type: ignore[return-value]


def format_metrics(values: Mapping[str, float]) -> str:
    """One line ``name=value`` per metric, fixed precision, for terminal reports."""
    return "\n".join(f"{name:>16s} = {value:.4f}" for name, value in values.items())
