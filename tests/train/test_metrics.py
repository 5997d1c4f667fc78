"""Metrics vs a loop-by-loop float32 transcription of the KITTI devkit (``evaluate_depth.cpp``).

The transcription follows the devkit's C++ statement by statement: float32 maps (PNG value
/ 256, holes at -1), ``interpolateBackground``, then ``depthError`` over columns (outer) and
rows (inner) with float32 running sums, double-precision inverse terms rounded to float,
``logf`` from the C library, and ``statMean`` over images.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from PIL import Image

from train.metrics import (
    KittiMetrics,
    fill_holes_devkit,
    kitti_metrics,
    mean_kitti_metrics,
    mean_nyu_metrics,
    nyu_metrics,
)

F32 = np.float32
DEVKIT_NAMES = ("mae", "rmse", "imae", "irmse", "log_mae", "log_rmse", "silog", "abs_rel",
                "sq_rel")


def c_logf() -> Any:
    """The C library's logf (float in, float out)."""
    name = ctypes.util.find_library("m")
    if name is None:
        pytest.skip("no C math library to take logf from")
    fn = ctypes.CDLL(name).logf
    fn.restype, fn.argtypes = ctypes.c_float, [ctypes.c_float]
    return fn


def devkit_interpolate(pred: np.ndarray) -> np.ndarray:
    """``interpolateBackground`` written as the C++ loops on a float32 map (hole = -1)."""
    d = np.where(np.nan_to_num(pred) > 0, pred, -1).astype(F32)
    height, width = d.shape
    for v in range(height):
        count = 0
        for u in range(width):
            if d[v, u] >= 0:
                if count >= 1:
                    u1, u2 = u - count, u - 1
                    if u1 > 0 and u2 < width - 1:
                        d[v, u1:u2 + 1] = min(d[v, u1 - 1], d[v, u2 + 1])
                count = 0
            else:
                count += 1
        for u in range(width):
            if d[v, u] >= 0:
                d[v, :u] = d[v, u]
                break
        for u in range(width - 1, -1, -1):
            if d[v, u] >= 0:
                d[v, u + 1:] = d[v, u]
                break
    for u in range(width):
        for v in range(height):
            if d[v, u] >= 0:
                d[:v, u] = d[v, u]
                break
        for v in range(height - 1, -1, -1):
            if d[v, u] >= 0:
                d[v + 1:, u] = d[v, u]
                break
    return d


def devkit_errors(gt: np.ndarray, pred: np.ndarray) -> dict[str, np.float32]:
    """``depthError``: float32 scalars pixel by pixel, columns outer, rows inner."""
    logf = c_logf()
    gt32, pred32 = gt.astype(F32), pred.astype(F32)
    sums = dict.fromkeys(("mae", "rmse", "imae", "irmse", "log_mae", "log_rmse", "log_sum",
                          "abs_rel", "sq_rel"), F32(0))
    n = 0
    with np.errstate(invalid="ignore"):
        for u in range(gt.shape[1]):
            for v in range(gt.shape[0]):
                if gt[v, u] > 0:
                    g, p = gt32[v, u], pred32[v, u]
                    err = F32(abs(g - p))
                    inv = F32(abs(1.0 / float(g) - 1.0 / float(p)))  # C double, then float
                    lg, lp = F32(logf(float(g))), F32(logf(float(p)))
                    log_err = F32(abs(lg - lp))
                    terms = {"mae": err, "rmse": err * err, "imae": inv, "irmse": inv * inv,
                             "log_mae": log_err, "log_rmse": log_err * log_err,
                             "log_sum": lg - lp, "abs_rel": err / g,
                             "sq_rel": (err * err) / (g * g)}
                    for key, value in terms.items():
                        sums[key] = F32(sums[key] + F32(value))
                    n += 1
        count = F32(n)
        nsl = sums["log_rmse"] / count
        return {"mae": sums["mae"] / count, "rmse": np.sqrt(sums["rmse"] / count),
                "imae": sums["imae"] / count, "irmse": np.sqrt(sums["irmse"] / count),
                "log_mae": sums["log_mae"] / count, "log_rmse": np.sqrt(nsl),
                "silog": np.sqrt(nsl - sums["log_sum"] * sums["log_sum"] / (count * count)),
                "abs_rel": sums["abs_rel"] / count, "sq_rel": sums["sq_rel"] / count}


def devkit_stat_mean(per_image: list[dict[str, np.float32]], name: str) -> np.float32:
    """``statMean``: a float32 running sum over images / (float)count."""
    total = F32(0)
    for errors in per_image:
        total = F32(total + errors[name])
    return F32(total / F32(len(per_image)))


def assert_bitwise(ours: KittiMetrics, ref: dict[str, np.float32]) -> None:
    for name in DEVKIT_NAMES:
        value = getattr(ours, name)
        if np.isnan(ref[name]):
            assert math.isnan(value), name
            continue
        assert F32(value) == ref[name] and float(F32(value)) == value, (name, value, ref[name])


def random_pair(rng: np.random.Generator, height: int = 17, width: int = 29,
                hole_frac: float = 0.4) -> tuple[np.ndarray, np.ndarray]:
    gt = rng.uniform(2, 80, (height, width)) * (rng.random((height, width)) < 0.3)
    gt[0, 0] = 10.0
    pred = rng.uniform(1, 90, (height, width)) * (rng.random((height, width)) > hole_frac)
    pred[:2, :] = 0.0  # empty rows at the top and bottom: column extrapolation
    pred[-1, :] = 0.0
    pred[:, rng.integers(0, width)] = 0.0
    pred[2:-1, width // 2] = rng.uniform(1, 90, height - 3)  # no empty row inside
    return pred, gt


def quantised(x: np.ndarray) -> np.ndarray:
    """Metres as a depth PNG stores them (multiples of 1/256)."""
    return np.round(x * 256) / 256


@pytest.mark.parametrize("seed", range(6))
def test_hole_filling_equals_devkit_loops(seed: int) -> None:
    rng = np.random.default_rng(seed)
    pred, _ = random_pair(rng)
    pred[3:, :2] = 0.0  # leading runs
    np.testing.assert_array_equal(fill_holes_devkit(pred), devkit_interpolate(pred))


def test_empty_interior_row_stays_at_minus_one_like_the_devkit() -> None:
    pred = np.array([[4.0, 6.0], [0.0, 0.0], [5.0, 2.0]])
    filled = fill_holes_devkit(pred)
    np.testing.assert_array_equal(filled, devkit_interpolate(pred))
    np.testing.assert_array_equal(filled[1], [-1.0, -1.0])


def test_hole_filling_column_extrapolation() -> None:
    pred = np.zeros((5, 4))
    pred[2] = [0, 3.0, 0, 5.0]
    expected = np.tile([3.0, 3.0, 3.0, 5.0], (5, 1))
    np.testing.assert_array_equal(fill_holes_devkit(pred), expected)


@pytest.mark.parametrize("seed", range(6))
def test_kitti_metrics_equal_devkit_bit_for_bit_on_random_maps(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    pred, gt = (quantised(x) for x in random_pair(rng))
    assert_bitwise(kitti_metrics(pred, gt), devkit_errors(gt, devkit_interpolate(pred)))


def test_unquantised_inputs_are_scored_as_float32() -> None:
    rng = np.random.default_rng(7)
    pred, gt = random_pair(rng)  # arbitrary float64 metres: the devkit holds float32
    assert_bitwise(kitti_metrics(pred, gt), devkit_errors(gt, devkit_interpolate(pred)))


def test_empty_interior_row_scores_like_the_devkit_and_warns(
        caplog: pytest.LogCaptureFixture) -> None:
    rng = np.random.default_rng(3)
    pred, gt = (quantised(x) for x in random_pair(rng))
    pred[6, :] = 0.0
    gt[6, 4] = 12.5
    with caplog.at_level(logging.WARNING, logger="train.metrics"):
        ours = kitti_metrics(pred, gt)
    assert "rows 6 are empty between filled rows" in caplog.text
    ref = devkit_errors(gt, devkit_interpolate(pred))
    assert_bitwise(ours, ref)
    assert math.isnan(ours.log_mae) and math.isnan(ours.silog) and math.isfinite(ours.rmse)
    filled_elsewhere = kitti_metrics(np.where(np.arange(pred.shape[0])[:, None] == 6, 1.0,
                                              pred), gt)
    assert ours.mae != filled_elsewhere.mae  # the -1 m pixel counts (|12.5 + 1|)


def test_mean_over_images_is_the_devkit_float32_stat_mean() -> None:
    rng = np.random.default_rng(11)
    ours, refs = [], []
    for _ in range(7):
        pred, gt = (quantised(x) for x in random_pair(rng))
        ours.append(kitti_metrics(pred, gt))
        refs.append(devkit_errors(gt, devkit_interpolate(pred)))
    mean = mean_kitti_metrics(ours)
    for name in DEVKIT_NAMES:
        assert F32(getattr(mean, name)) == devkit_stat_mean(refs, name), name
    assert mean.delta1 == pytest.approx(np.mean([m.delta1 for m in ours]), rel=1e-15)


def test_leaderboard_units_mm_and_per_km() -> None:
    gt = np.full((4, 4), 10.0)
    pred = np.full((4, 4), 10.5)
    board = kitti_metrics(pred, gt).leaderboard()
    assert board["rmse_mm"] == pytest.approx(500.0)
    assert board["mae_mm"] == pytest.approx(500.0)
    assert board["imae_1_per_km"] == pytest.approx(1000 * (1 / 10 - 1 / 10.5))
    assert board["irmse_1_per_km"] == pytest.approx(1000 * (1 / 10 - 1 / 10.5))
    assert board["delta1"] == 1.0


def test_mean_is_over_images_not_pixels() -> None:
    a = kitti_metrics(np.full((2, 2), 11.0), np.full((2, 2), 10.0))
    gt_b = np.zeros((2, 2))
    gt_b[0, 0] = 10.0
    b = kitti_metrics(np.full((2, 2), 13.0), gt_b)
    assert mean_kitti_metrics([a, b]).mae == pytest.approx(2.0)


def test_delta_thresholds() -> None:
    gt = np.array([[10.0, 10.0, 10.0, 10.0]])
    pred = np.array([[10.0, 12.6, 15.7, 19.5]])  # ratios 1, 1.26, 1.57, 1.95
    m = kitti_metrics(pred, gt)
    assert (m.delta1, m.delta2, m.delta3) == (0.25, 0.5, 1.0)


def test_nyu_metrics_straightforward() -> None:
    rng = np.random.default_rng(3)
    gt = rng.uniform(0.5, 10, (12, 16)) * (rng.random((12, 16)) > 0.2)
    pred = rng.uniform(0.5, 10, (12, 16))
    m = nyu_metrics(pred, gt)
    v = gt > 1e-3
    assert m.rmse == pytest.approx(np.sqrt(np.mean((pred[v] - gt[v]) ** 2)))
    assert m.rel == pytest.approx(np.mean(np.abs(pred[v] - gt[v]) / gt[v]))
    ratio = np.maximum(pred[v] / gt[v], gt[v] / pred[v])
    assert m.delta2 == pytest.approx(np.mean(ratio < 1.5625))
    assert mean_nyu_metrics([m, m]).rmse == pytest.approx(m.rmse)


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="differs from ground-truth size"):
        kitti_metrics(np.ones((3, 4)), np.ones((3, 5)))
    with pytest.raises(ValueError, match="no valid"):
        kitti_metrics(np.zeros((3, 4)), np.ones((3, 4)))
    with pytest.raises(ValueError, match="no valid pixel"):
        kitti_metrics(np.ones((3, 4)), np.zeros((3, 4)))


def _read_depth_png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path), dtype=np.float64) / 256.0


def test_kitti_metrics_on_real_sample_frame_bit_for_bit(kitti_sample: Path) -> None:
    drive = kitti_sample / "raw" / "2011_09_26" / "2011_09_26_drive_0001_sync" / "proj_depth"
    gt = _read_depth_png(drive / "groundtruth" / "image_02" / "0000000005.png")
    sparse = _read_depth_png(drive / "velodyne_raw" / "image_02" / "0000000005.png")
    crop = (slice(150, 375), slice(300, 700))  # keep the reference loops fast
    scans = {  # a holey prediction without, and the raw scan with, empty rows inside
        "dilated": cv2.dilate(sparse[crop].astype(np.float32), np.ones((5, 5), np.uint8)),
        "raw scan": sparse[crop],
    }
    gt = gt[crop]
    per_image, refs = [], []
    for name, pred in scans.items():
        ours = kitti_metrics(pred, gt)
        ref = devkit_errors(gt, devkit_interpolate(pred))
        assert_bitwise(ours, ref)
        per_image.append(ours)
        refs.append(ref)
        assert 100 < ours.leaderboard()["rmse_mm"] < 20000, name
    assert math.isnan(per_image[1].log_rmse)  # the raw scan has empty rows between lines
    assert F32(mean_kitti_metrics(per_image).rmse) == devkit_stat_mean(refs, "rmse")
    valid = gt > 0
    est = fill_holes_devkit(scans["dilated"])[valid].astype(np.float64)
    float64_rmse = math.sqrt(np.mean((gt[valid] - est) ** 2))
    assert per_image[0].rmse != float64_rmse  # float32 accumulation shows in the digits
    assert per_image[0].rmse == pytest.approx(float64_rmse, rel=1e-5)
