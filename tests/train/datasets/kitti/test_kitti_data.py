"""KITTI layouts, calibration, teacher lookup, dataset crops/flips, beam thinning."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data_schemas.errors import InputError
from data_schemas.velodyne import rings_from_scan_order
from tests.train.datasets.kitti.fixtures import (
    DATE,
    DRIVE,
    FRAME,
    RAW_DRIVE,
    SAMPLE,
    fake_disparity,
    official_tree,
    require_sample,
    selval_and_test_tree,
    write_teacher_maps,
)
from train.datasets.augment import AugmentConfig, bottom_center_crop, hflip
from train.datasets.kitti.beams import (
    elevation_deg,
    parse_beams,
    thin_scan_to_beams,
    thin_sparse_to_beams,
)
from train.datasets.kitti.calib import (
    load_camera_calib,
    parse_intrinsics_txt,
    project_lidar,
    raw_camera_calib,
)
from train.datasets.kitti.dataset import KittiDataset, load_sample
from train.datasets.kitti.io import read_depth_png, read_velodyne_bin
from train.datasets.kitti.layout import find_frames, parse_split
from train.datasets.kitti.teacher import TeacherMaps
from train.datasets.sample import Batch, collate_items
from train.datasets.sampling import SampleRef
from train.model.inputs import RGB_MEAN, RGB_STD

FULL_K = np.array([[721.5377, 0, 609.5593], [0, 721.5377, 172.854], [0, 0, 1]])


def test_official_layout_pairs_frames_and_reads_calibration(tmp_path: Path) -> None:
    root = official_tree(tmp_path)
    frames = find_frames(root, "train")
    assert [f.name for f in frames] == [f"{DRIVE}/image_02/{FRAME}", f"{DRIVE}/image_03/{FRAME}"]
    np.testing.assert_allclose(frames[0].K, FULL_K)
    assert frames[0].key == f"raw/{DATE}/{DRIVE}/image_02/data/{FRAME}.png"
    assert len(find_frames(root, "val")) == 2


def test_selval_crop_intrinsics_are_full_frame_minus_13_23() -> None:
    require_sample()
    frames = find_frames(SAMPLE, "selval")
    assert len(frames) == 2
    full = raw_camera_calib(SAMPLE / "raw" / DATE, 2).K
    np.testing.assert_allclose(frames[0].K[0, 2], full[0, 2] - 13, atol=1e-4)
    np.testing.assert_allclose(frames[0].K[1, 2], full[1, 2] - 23, atol=1e-4)
    # the selection crop is the bottom-centre 352x1216 window of the raw frame
    raw = find_frames(SAMPLE, "selval")[0]
    sel = load_sample(raw)
    full_gt = read_depth_png(RAW_DRIVE / "proj_depth" / "groundtruth" / "image_02" / f"{FRAME}.png")
    np.testing.assert_array_equal(sel.target, full_gt[23:375, 13:1229])


def test_bottom_center_crop_of_a_raw_frame_matches_selval(tmp_path: Path) -> None:
    root = official_tree(tmp_path, ("val",), ("image_02",))
    sample = load_sample(find_frames(root, "val")[0])
    assert sample.hw == (375, 1242)
    cropped = bottom_center_crop(sample, (352, 1216))
    selval = load_sample(find_frames(SAMPLE, "selval")[0])
    np.testing.assert_array_equal(cropped.rgb, selval.rgb)
    np.testing.assert_array_equal(cropped.sparse, selval.sparse)
    np.testing.assert_allclose(cropped.K, selval.K, atol=1e-4)


def test_test_split_has_no_gt(tmp_path: Path) -> None:
    root = selval_and_test_tree(tmp_path)
    frames = find_frames(root, "test")
    assert [f.name for f in frames] == ["0000000000", "0000000001"]
    assert all(f.gt is None for f in frames)
    assert load_sample(frames[0]).target.max() == 0


def test_raw_layout_skips_the_frames_without_sparse_input_with_one_warning(
        caplog: pytest.LogCaptureFixture) -> None:
    require_sample()
    with caplog.at_level(logging.WARNING, logger="train.datasets.kitti.layout"):
        frames = find_frames(SAMPLE, "raw")
    assert [f.name for f in frames] == [f"{DRIVE}/image_02/{FRAME}", f"{DRIVE}/image_03/{FRAME}"]
    assert [r.getMessage() for r in caplog.records] == [
        f"{SAMPLE} (raw): skipped 2 groundtruth frame(s) without a velodyne_raw map (no LiDAR "
        f"input), using the other 2: {DRIVE}/image_02/0000000050, {DRIVE}/image_02/0000000100"]


def test_official_layout_skips_a_frame_without_sparse_input(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = official_tree(tmp_path, ("train",))
    (root / "data_depth_velodyne" / "train" / DRIVE / "proj_depth" / "velodyne_raw" /
     "image_03" / f"{FRAME}.png").unlink()
    with caplog.at_level(logging.WARNING, logger="train.datasets.kitti.layout"):
        frames = find_frames(root, "train")
    assert [f.name for f in frames] == [f"{DRIVE}/image_02/{FRAME}"]
    assert len(caplog.records) == 1
    assert caplog.records[0].getMessage().endswith(
        f"skipped 1 groundtruth frame(s) without a velodyne_raw map (no LiDAR input), using the "
        f"other 1: {DRIVE}/image_03/{FRAME}")


def test_raw_layout_of_a_complete_drive(tmp_path: Path) -> None:
    require_sample()
    drive = tmp_path / "raw" / DATE / DRIVE
    for name in ("calib_cam_to_cam.txt",):
        (tmp_path / "raw" / DATE).mkdir(parents=True, exist_ok=True)
        (tmp_path / "raw" / DATE / name).symlink_to(SAMPLE / "raw" / DATE / name)
    for rel in (f"image_02/data/{FRAME}.png", f"proj_depth/groundtruth/image_02/{FRAME}.png",
                f"proj_depth/velodyne_raw/image_02/{FRAME}.png"):
        (drive / rel).parent.mkdir(parents=True, exist_ok=True)
        (drive / rel).symlink_to(RAW_DRIVE / rel)
    assert [f.name for f in find_frames(tmp_path, "raw")] == [f"{DRIVE}/image_02/{FRAME}"]


def test_missing_folders_and_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="KITTI root not found"):
        find_frames(tmp_path / "nope", "train")
    root = official_tree(tmp_path / "a", ("train",), ("image_02",))
    with pytest.raises(FileNotFoundError, match="data_depth_annotated/val"):
        find_frames(root, "val")
    (root / "raw" / DATE / DRIVE / "image_02" / "data" / f"{FRAME}.png").unlink()
    with pytest.raises(ValueError, match=f"{DRIVE} image_02.*no raw image for frame.*{FRAME}"):
        find_frames(root, "train")
    with pytest.raises(ValueError, match="choose one of train, val, selval, test, raw"):
        parse_split("trainval")


def test_image_without_calibration_is_an_error(tmp_path: Path) -> None:
    root = official_tree(tmp_path, ("train",), ("image_02",))
    (root / "raw" / DATE / "calib_cam_to_cam.txt").unlink()
    with pytest.raises(FileNotFoundError, match=f"no calibration for drive {DRIVE}"):
        find_frames(root, "train")


def test_gt_png_must_be_16_bit(tmp_path: Path) -> None:
    root = official_tree(tmp_path, ("train",), ("image_02",))
    gt = root / "data_depth_annotated" / "train" / DRIVE / "proj_depth" / "groundtruth"
    path = gt / "image_02" / f"{FRAME}.png"
    path.unlink()
    Image.fromarray(np.zeros((375, 1242), np.uint8)).save(path)
    with pytest.raises(ValueError, match="16-bit"):
        load_sample(find_frames(root, "train")[0])


def test_map_size_mismatch_is_named(tmp_path: Path) -> None:
    root = official_tree(tmp_path, ("train",), ("image_02",))
    path = (root / "data_depth_velodyne" / "train" / DRIVE / "proj_depth" / "velodyne_raw"
            / "image_02" / f"{FRAME}.png")
    path.unlink()
    Image.fromarray(np.full((370, 1224), 2560, np.uint16)).save(path)
    with pytest.raises(ValueError, match="map sizes differ.*velodyne_raw 1224x370"):
        load_sample(find_frames(root, "train")[0])


def _teacher_store(tmp_path: Path, root: Path) -> Path:
    maps = {f.key: fake_disparity((375, 1242)) for f in find_frames(root, "train")}
    return write_teacher_maps(tmp_path / "teacher.zarr", maps)


def test_teacher_maps_found_by_image_path(tmp_path: Path) -> None:
    root = official_tree(tmp_path / "kitti")
    frames = find_frames(root, "train")
    maps = TeacherMaps(_teacher_store(tmp_path, root))
    assert maps.space == "disparity"
    maps.check_covers(frames)
    np.testing.assert_array_equal(maps.read(frames[0], (375, 1242)), fake_disparity((375, 1242)))
    assert maps.read(frames[0], (100, 200)).shape == (100, 200)
    # keys made from another root still match by path suffix
    other = write_teacher_maps(tmp_path / "other.zarr",
                               {f"elsewhere/kitti/{f.key}": fake_disparity((375, 1242))
                                for f in frames})
    TeacherMaps(other).check_covers(frames)


def test_missing_teacher_maps_are_counted(tmp_path: Path) -> None:
    root = official_tree(tmp_path / "kitti")
    frames = find_frames(root, "train")
    store = write_teacher_maps(tmp_path / "t.zarr", {frames[0].key: fake_disparity((375, 1242))})
    with pytest.raises(ValueError, match="1 of 2 KITTI images have no teacher map"):
        TeacherMaps(store).check_covers(frames)


def _unnormalise(rgb: np.ndarray) -> np.ndarray:
    return rgb * np.array(RGB_STD)[:, None, None] + np.array(RGB_MEAN)[:, None, None]


def training_batch(frames: list, crop: tuple[int, int] = (64, 256), flip: float = 0.0,
                   jitter: float = 0.0, teacher: str | None = None, seed: int = 1,
                   epoch: int = 0) -> Batch:
    """Frame 0 as the training stream draws it in ``epoch``, collated."""
    ds = KittiDataset(frames, True, crop, AugmentConfig(flip, jitter), teacher_maps=teacher,
                      seed=seed)
    return collate_items([ds[SampleRef(epoch, 0, 0)]])


def test_training_crop_shapes_and_intrinsics(tmp_path: Path) -> None:
    root = official_tree(tmp_path / "kitti")
    frames = find_frames(root, "train")
    teacher = str(_teacher_store(tmp_path, root))
    batch = training_batch(frames, teacher=teacher, seed=3, jitter=0.1)
    assert batch.rgb.shape == (1, 3, 64, 256)
    assert batch.teacher is not None
    for maps in (batch.sparse, batch.target, batch.teacher):
        assert maps.shape == (1, 1, 64, 256)
    K = batch.K[0].numpy()
    top = 172.854 - K[1, 2]
    left = 609.5593 - K[0, 2]
    assert 50 <= round(top) <= 375 - 64 and 0 <= round(left) <= 1242 - 256
    # the teacher map moved with the crop: its rows encode the row index
    expected = fake_disparity((375, 1242))[round(top):round(top) + 64, 0]
    np.testing.assert_allclose(batch.teacher[0, 0, :, 0].numpy(), expected, rtol=1e-6)
    # same seed, epoch and frame -> same sample; another epoch -> another crop
    again = training_batch(frames, teacher=teacher, seed=3, jitter=0.1)
    np.testing.assert_array_equal(again.K[0].numpy(), K)
    np.testing.assert_array_equal(again.rgb.numpy(), batch.rgb.numpy())
    later = training_batch(frames, teacher=teacher, seed=3, jitter=0.1, epoch=1)
    assert later.epoch == 1
    assert not np.array_equal(later.K[0].numpy(), K) or not np.array_equal(
        later.rgb.numpy(), batch.rgb.numpy())


def test_eval_crop_is_bottom_centre(tmp_path: Path) -> None:
    root = official_tree(tmp_path, ("val",), ("image_02",))
    sample, colour = KittiDataset(find_frames(root, "val"), train=False,
                                  crop=(256, 1216)).sample(0)
    assert sample.hw == (256, 1216) and not colour.any() and sample.teacher is None
    np.testing.assert_allclose(sample.K[:2, 2], [609.5593 - 13, 172.854 - 119], atol=1e-3)


def test_flip_mirrors_every_map_and_k() -> None:
    require_sample()
    loaded = load_sample(find_frames(SAMPLE, "selval")[0])
    sample = replace(loaded, teacher=fake_disparity(loaded.hw))
    flipped = hflip(sample)
    for name in ("rgb", "sparse", "target", "teacher"):
        np.testing.assert_array_equal(getattr(flipped, name), getattr(sample, name)[:, ::-1])
    assert flipped.K[0, 2] == pytest.approx(1215 - sample.K[0, 2])
    # a LiDAR pixel projects to the mirrored column with the mirrored K
    v, u = np.argwhere(sample.sparse > 0)[0]
    z = sample.sparse[v, u]
    x = (u - sample.K[0, 2]) * z / sample.K[0, 0]
    u_flip = -x * flipped.K[0, 0] / z + flipped.K[0, 2]
    assert u_flip == pytest.approx(1215 - u, abs=1e-3)
    assert flipped.sparse[v, round(u_flip)] == z


def test_training_flip_and_jitter(tmp_path: Path) -> None:
    root = official_tree(tmp_path, ("train",), ("image_02",))
    frames = find_frames(root, "train")
    plain = training_batch(frames)
    flipped = training_batch(frames, flip=1.0)
    np.testing.assert_array_equal(flipped.sparse.numpy(), plain.sparse.numpy()[..., ::-1])
    np.testing.assert_allclose(flipped.rgb.numpy(), plain.rgb.numpy()[..., ::-1], atol=1e-5)
    assert flipped.K[0, 0, 2] == pytest.approx(255 - plain.K[0, 0, 2])
    jittered = training_batch(frames, jitter=0.3)
    assert not np.allclose(jittered.rgb.numpy(), plain.rgb.numpy())
    np.testing.assert_array_equal(jittered.sparse.numpy(), plain.sparse.numpy())
    assert 0 <= _unnormalise(plain.rgb[0].numpy()).min() + 1e-3


def test_projection_of_the_raw_scan_reproduces_velodyne_raw() -> None:
    require_sample()
    calib = load_camera_calib(SAMPLE / "raw" / DATE / "calib_cam_to_cam.txt", 2)
    points = read_velodyne_bin(RAW_DRIVE / "velodyne_points" / "data" / f"{FRAME}.bin")
    ref = read_depth_png(RAW_DRIVE / "proj_depth" / "velodyne_raw" / "image_02" / f"{FRAME}.png")
    depth = project_lidar(points, calib, ref.shape)
    both = (depth > 0) & (ref > 0)
    assert both.sum() > 5000  # SOURCES.md: ~6.2k of ~19.1k pixels, median |diff| 0.03 m
    assert np.median(np.abs(depth - ref)[both]) < 0.05


def test_beam_thinning_keeps_the_expected_share_of_lines() -> None:
    require_sample()
    ref = read_depth_png(RAW_DRIVE / "proj_depth" / "velodyne_raw" / "image_02" / f"{FRAME}.png")
    calib = raw_camera_calib(SAMPLE / "raw" / DATE, 2)
    count = (ref > 0).sum()
    for beams, share in ((32, 0.5), (16, 0.25), (8, 0.125)):
        thinned = thin_sparse_to_beams(ref, calib.K, beams, calib.T_cam_from_lidar)
        assert share * 0.8 < (thinned > 0).sum() / count < share * 1.2
        assert np.all((thinned == 0) | (thinned == ref))
    np.testing.assert_array_equal(thin_sparse_to_beams(ref, calib.K, 64), ref)
    points = read_velodyne_bin(RAW_DRIVE / "velodyne_points" / "data" / f"{FRAME}.bin")
    assert abs(len(thin_scan_to_beams(points, 16)) / len(points) - 0.25) < 0.03
    assert parse_beams("64,32,16,8") == [64, 32, 16, 8]
    with pytest.raises(ValueError, match="choose from 64, 32, 16, 8"):
        parse_beams("64,12")


def _laser_line_rms(points: np.ndarray) -> float:
    """RMS (m) of z about the best line z = a * rho + b: one laser's cone (its elevation, with
    the emitter's vertical offset) is such a line; two lasers glued together are not."""
    rho = np.hypot(points[:, 0], points[:, 1])
    A = np.stack([rho, np.ones_like(rho)], 1)
    coef, *_ = np.linalg.lstsq(A, points[:, 2], rcond=None)
    return float(np.sqrt(np.mean((points[:, 2] - A @ coef) ** 2)))


def test_raw_scan_rings_are_the_64_lasers() -> None:
    """The sample scan splits into exactly 64 rings in stored order, each a single laser (one
    elevation), top laser first; the thinned scans keep every k-th of them."""
    require_sample()
    points = read_velodyne_bin(RAW_DRIVE / "velodyne_points" / "data" / f"{FRAME}.bin")
    ring = rings_from_scan_order(points)
    assert ring.max() == 63 and np.all(np.diff(ring) >= 0) and len(np.unique(ring)) == 64
    assert max(_laser_line_rms(points[ring == r]) for r in range(64)) < 0.01
    median_el = [float(np.median(elevation_deg(points[ring == r]))) for r in range(64)]
    assert np.all(np.diff(median_el) < 0) and median_el[0] > 1.5 and median_el[-1] < -23
    # the old rule (split where the azimuth wraps at the back) gives 65 segments that glue
    # the rear half of one laser to the front half of the next
    azimuth = np.arctan2(points[:, 1], points[:, 0])
    wrap = np.concatenate([[0], np.cumsum(np.abs(np.diff(azimuth)) > np.pi)])
    assert wrap.max() == 64
    assert max(_laser_line_rms(points[wrap == r]) for r in range(65)) > 0.05
    np.testing.assert_array_equal(thin_scan_to_beams(points, 8), points[ring % 8 == 0])


def test_intrinsics_files_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "K.txt"
    path.write_text("721 0 609 0 721 172 0 0 1")
    np.testing.assert_array_equal(parse_intrinsics_txt(path),
                                  [[721, 0, 609], [0, 721, 172], [0, 0, 1]])
    path.write_text("0 0 609 0 721 172 0 0 1")
    with pytest.raises(InputError, match=f"{path}: intrinsics need fx > 0 and fy > 0"):
        parse_intrinsics_txt(path)
    path.write_text("721 0 609 0 721")
    with pytest.raises(InputError, match="must be 9 numbers"):
        parse_intrinsics_txt(path)
