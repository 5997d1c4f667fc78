"""``dmd3c teach --align lidar``: the robust per-image fit, the stored metric maps, grey PNGs."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import zarr

from data_schemas.teacher_maps import (
    LidarFit,
    open_teacher_maps,
    read_aligned_map,
    read_teacher_map,
    teacher_map_keys,
)
from pipeline.teach import TeachConfig, official_disp_png, run_teach
from pipeline.teacher import TeacherConfig
from pipeline.teachers.align import AlignConfig, apply_fit, fit_to_lidar, robust_affine

RAW_0005 = "raw/2011_09_26/2011_09_26_drive_0001_sync/image_02/data/0000000005.png"
RAW_0050 = "raw/2011_09_26/2011_09_26_drive_0001_sync/image_02/data/0000000050.png"
SELVAL = "val_selection_cropped/image/2011_09_26_drive_0001_sync_image_0000000005_image_02.png"


def synthetic(space: str, seed: int, n: int = 2000) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                              tuple[float, float]]:
    """Teacher values x, LiDAR depths z (20 % gross outliers, > 2 m off), inlier mask, truth."""
    rng = np.random.default_rng(seed)
    if space == "disparity":
        truth = (0.05, 0.01)
        x = rng.uniform(0.2, 10.0, n)
        z = 1.0 / (truth[0] * x + truth[1])
    else:
        truth = (1.3, -0.8)
        x = rng.uniform(2.0, 60.0, n)
        z = truth[0] * x + truth[1]
    z = z + rng.normal(0.0, 0.02, n)
    outlier = rng.random(n) < 0.2
    wrong = rng.uniform(1.0, 80.0, n)
    wrong = np.where(np.abs(wrong - z) < 2.0, wrong + 4.0, wrong)
    return x, np.where(outlier, wrong, z), ~outlier, truth


@pytest.mark.parametrize("space", ["disparity", "depth"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_robust_fit_recovers_scale_and_shift_with_20_percent_outliers(space, seed) -> None:
    x, z, inlier, (scale, shift) = synthetic(space, seed)
    fit = robust_affine(x, z, space)  # type: ignore[arg-type]
    assert fit.points == len(x) and fit.inliers == inlier.sum()
    y = 1.0 / z if space == "disparity" else z
    design = np.stack([x[inlier], np.ones(inlier.sum())], axis=1)
    (ls_scale, ls_shift), *_ = np.linalg.lstsq(design, y[inlier], rcond=None)
    np.testing.assert_allclose([fit.scale, fit.shift], [ls_scale, ls_shift], rtol=1e-9, atol=1e-12)
    assert abs(fit.scale / scale - 1) < 2e-3
    assert abs(fit.shift - shift) < (3e-4 if space == "disparity" else 1e-2)
    assert fit.residual_m < 0.05


def test_plain_least_squares_is_not_robust() -> None:
    """The outliers do move an ordinary fit: what the robust one is guarding against."""
    x, z, _, (scale, _) = synthetic("depth", 0)
    ols_scale = np.polyfit(x, z, 1)[0]
    assert abs(ols_scale / scale - 1) > 0.05


def test_fit_on_maps_and_the_metric_map() -> None:
    rng = np.random.default_rng(4)
    disparity = rng.uniform(0.5, 5.0, (60, 80)).astype(np.float32)
    disparity[:10] = 0.0                                   # sky
    depth = 1.0 / (0.1 * disparity.astype(np.float64) + 0.02)
    sparse = np.zeros_like(disparity)
    rows, cols = rng.integers(10, 60, 400), rng.integers(0, 80, 400)
    sparse[rows, cols] = depth[rows, cols]
    fit = fit_to_lidar(disparity, sparse, "disparity")
    assert fit is not None and fit.inliers == fit.points == np.count_nonzero(sparse)
    metric = apply_fit(disparity, fit)
    np.testing.assert_allclose(metric[10:], depth[10:], rtol=1e-5)
    assert (metric[:10] == 0).all()
    assert fit_to_lidar(disparity, np.where(sparse > 0, 0, sparse), "disparity") is None
    few = np.zeros_like(sparse)
    few[20, :50] = 10.0
    assert fit_to_lidar(disparity, few, "disparity", AlignConfig(min_points=51)) is None


def test_teach_align_lidar_on_kitti(kitti_sample, tmp_path) -> None:
    out = tmp_path / "maps.zarr"
    cfg = TeachConfig(str(kitti_sample), str(out), "tiny-random",
                      TeacherConfig(input_size=42), include=(RAW_0005, RAW_0050, SELVAL),
                      progress=False, align="lidar")
    summary = run_teach(cfg)
    assert summary.written == 3
    assert summary.unaligned == {RAW_0050: "no LiDAR map (velodyne_raw) for this image"}
    group = open_teacher_maps(out)
    assert group.attrs["align"]["space"] == "disparity" and group.attrs["align"]["delta_m"] == 1
    assert group.attrs["unaligned"] == summary.unaligned
    assert teacher_map_keys(group) == sorted([RAW_0005, RAW_0050, SELVAL])
    assert read_aligned_map(group, RAW_0050) is None
    assert group[RAW_0050].attrs["align"] == summary.unaligned[RAW_0050]
    for key, lidar_file in ((RAW_0005, "raw/2011_09_26/2011_09_26_drive_0001_sync/proj_depth/"
                             "velodyne_raw/image_02/0000000005.png"),
                            (SELVAL, "val_selection_cropped/velodyne_raw/2011_09_26_drive_"
                             "0001_sync_velodyne_raw_0000000005_image_02.png")):
        metric, fit = read_aligned_map(group, key)  # type: ignore[misc]
        raw = read_teacher_map(group, key)
        lidar = cv2.imread(str(kitti_sample / lidar_file), cv2.IMREAD_UNCHANGED) / 256.0
        assert fit.space == "disparity" and fit.points == np.count_nonzero((lidar > 0) & (raw > 0))
        assert 0 < fit.inliers <= fit.points and group[key].attrs["align"] == "fitted"
        expected = 1.0 / (fit.scale * raw.astype(np.float64) + fit.shift)
        valid = metric > 0
        np.testing.assert_allclose(metric[valid], expected[valid], rtol=1e-5)
    again = run_teach(cfg)
    assert again.written == 0 and again.already == 3
    assert open_teacher_maps(out).attrs["unaligned"] == summary.unaligned


def test_too_few_points_keep_the_unaligned_map(kitti_sample, tmp_path) -> None:
    cfg = TeachConfig(str(kitti_sample), str(tmp_path / "m.zarr"), "tiny-random",
                      TeacherConfig(input_size=42), include=(RAW_0005,), progress=False,
                      align="lidar", fit=AlignConfig(min_points=10**6))
    summary = run_teach(cfg)
    assert summary.written == 1 and "too few LiDAR points (" in summary.unaligned[RAW_0005]
    group = open_teacher_maps(cfg.out)
    assert read_aligned_map(group, RAW_0005) is None and group[RAW_0005].attrs["complete"]


def test_fit_attributes_round_trip() -> None:
    fit = LidarFit("depth", 1.1, -0.3, 100, 90, float("nan"))
    back = LidarFit.from_attrs(fit.attrs())
    assert back.space == "depth" and back.inliers == 90 and np.isnan(back.residual_m)


def test_official_grey_png_from_a_stored_map(kitti_sample, tmp_path) -> None:
    """``run.py --grayscale``: (d - min) / (max - min) * 255 truncated, written with cv2."""
    run_teach(TeachConfig(str(kitti_sample), str(tmp_path / "m.zarr"), "tiny-random",
                          TeacherConfig(input_size=42), include=(RAW_0005,), progress=False))
    values = read_teacher_map(zarr.open_group(str(tmp_path / "m.zarr"), mode="r"), RAW_0005)
    grey = official_disp_png(values)
    expected = ((values - values.min()) / (values.max() - values.min()) * 255.0).astype(np.uint8)
    assert grey.shape == (*values.shape, 3) and (grey == expected[..., None]).all()
    path = Path(tmp_path / "disp.png")
    cv2.imwrite(str(path), grey)
    from PIL import Image

    np.testing.assert_array_equal(np.array(Image.open(path).convert("L")), expected)
