"""Metrics vs a literal, loop-by-loop transcription of the KITTI devkit (evaluate_depth.cpp)."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from train.metrics import (
    fill_holes_devkit,
    kitti_metrics,
    mean_kitti_metrics,
    mean_nyu_metrics,
    nyu_metrics,
)

SAMPLE = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "kitti_sample"


def devkit_interpolate(pred: np.ndarray) -> np.ndarray:
    """``interpolateBackground`` written as the C++ loops (invalid = value <= 0)."""
    d = pred.astype(np.float64).copy()
    height, width = d.shape
    for v in range(height):
        count = 0
        for u in range(width):
            if d[v, u] > 0:
                if count >= 1:
                    u1, u2 = u - count, u - 1
                    if u1 > 0 and u2 < width - 1:
                        d[v, u1:u2 + 1] = min(d[v, u1 - 1], d[v, u2 + 1])
                count = 0
            else:
                count += 1
        for u in range(width):
            if d[v, u] > 0:
                d[v, :u] = d[v, u]
                break
        for u in range(width - 1, -1, -1):
            if d[v, u] > 0:
                d[v, u + 1:] = d[v, u]
                break
    for u in range(width):
        for v in range(height):
            if d[v, u] > 0:
                d[:v, u] = d[v, u]
                break
        for v in range(height - 1, -1, -1):
            if d[v, u] > 0:
                d[v + 1:, u] = d[v, u]
                break
    return d


def devkit_errors(gt: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Per-image sums over valid GT pixels as the devkit accumulates them (m, 1/m)."""
    sums = dict.fromkeys(("mae", "rmse", "imae", "irmse", "log_mae", "log_rmse", "log_sum",
                          "abs_rel", "sq_rel"), 0.0)
    n = 0
    for v in range(gt.shape[0]):
        for u in range(gt.shape[1]):
            if gt[v, u] > 0:
                g, p = float(gt[v, u]), float(pred[v, u])
                err = abs(g - p)
                sums["mae"] += err
                sums["rmse"] += err * err
                sums["imae"] += abs(1 / g - 1 / p)
                sums["irmse"] += (1 / g - 1 / p) ** 2
                sums["log_mae"] += abs(math.log(g) - math.log(p))
                sums["log_rmse"] += (math.log(g) - math.log(p)) ** 2
                sums["log_sum"] += math.log(g) - math.log(p)
                sums["abs_rel"] += err / g
                sums["sq_rel"] += err * err / (g * g)
                n += 1
    return {"mae": sums["mae"] / n, "rmse": math.sqrt(sums["rmse"] / n),
            "imae": sums["imae"] / n, "irmse": math.sqrt(sums["irmse"] / n),
            "log_mae": sums["log_mae"] / n, "log_rmse": math.sqrt(sums["log_rmse"] / n),
            "silog": math.sqrt(sums["log_rmse"] / n - (sums["log_sum"] / n) ** 2),
            "abs_rel": sums["abs_rel"] / n, "sq_rel": sums["sq_rel"] / n}


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


@pytest.mark.parametrize("seed", range(6))
def test_hole_filling_equals_devkit_loops(seed: int) -> None:
    rng = np.random.default_rng(seed)
    pred, _ = random_pair(rng)
    pred[3:, :2] = 0.0  # leading runs
    np.testing.assert_array_equal(fill_holes_devkit(pred), devkit_interpolate(pred))


def test_empty_interior_row_takes_min_of_column_neighbours() -> None:
    pred = np.array([[4.0, 6.0], [0.0, 0.0], [5.0, 2.0]])
    np.testing.assert_array_equal(fill_holes_devkit(pred)[1], [4.0, 2.0])


def test_hole_filling_column_extrapolation() -> None:
    pred = np.zeros((5, 4))
    pred[2] = [0, 3.0, 0, 5.0]
    expected = np.tile([3.0, 3.0, 3.0, 5.0], (5, 1))
    np.testing.assert_array_equal(fill_holes_devkit(pred), expected)


@pytest.mark.parametrize("seed", range(6))
def test_kitti_metrics_equal_devkit_on_random_maps_with_holes(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    pred, gt = random_pair(rng)
    ours = kitti_metrics(pred, gt)
    ref = devkit_errors(gt, devkit_interpolate(pred))
    for name, value in ref.items():
        assert getattr(ours, name) == pytest.approx(value, rel=1e-9, abs=1e-12), name


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


def test_kitti_metrics_on_real_sample_frame() -> None:
    if not SAMPLE.is_dir():
        pytest.skip(f"KITTI sample frame not found at {SAMPLE}")
    drive = SAMPLE / "raw" / "2011_09_26" / "2011_09_26_drive_0001_sync" / "proj_depth"
    gt = _read_depth_png(drive / "groundtruth" / "image_02" / "0000000005.png")
    sparse = _read_depth_png(drive / "velodyne_raw" / "image_02" / "0000000005.png")
    crop = (slice(150, 375), slice(300, 700))  # keep the reference loops fast
    # a holey "prediction": the real scan grown by a 5x5 max filter (no empty rows inside)
    pred = cv2.dilate(sparse[crop].astype(np.float32), np.ones((5, 5), np.uint8))
    gt = gt[crop]
    assert (pred > 0).mean() < 0.9 and (pred > 0).any(axis=1)[20:].all()
    ours = kitti_metrics(pred, gt)
    ref = devkit_errors(gt, devkit_interpolate(pred))
    for name, value in ref.items():
        assert getattr(ours, name) == pytest.approx(value, rel=1e-9), name
    assert 100 < ours.leaderboard()["rmse_mm"] < 20000
