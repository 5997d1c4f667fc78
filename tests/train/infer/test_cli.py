"""``dmd3c evaluate / export / complete`` end to end on the real sample frame and tiny
fixtures (CPU). BP-Net forwards at full KITTI size: one in evaluate, one in complete."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from data_schemas.quicklook import BAR_HEIGHT_PX
from tests.train.cli_helpers import StubNet, run_cli
from tests.train.datasets.kitti.fixtures import (
    DATE,
    DRIVE,
    FRAME,
    RAW_DRIVE,
    SAMPLE,
    require_sample,
)
from train.datasets.kitti.dataset import load_sample
from train.datasets.kitti.io import read_depth_png, write_depth_png
from train.datasets.kitti.layout import find_frames
from train.infer.export import export_frames
from train.infer.predict import predict_depth


def test_evaluate_json_on_the_sample_frame(ckpt: Path, capsys: pytest.CaptureFixture[str]) -> None:
    require_sample()
    code, out, err = run_cli(["evaluate", "--kitti", SAMPLE, "--split", "selval", "--ckpt", ckpt,
                              "--json", "--limit", "1", "--crop", "64,256", "--device", "cpu"],
                             capsys)
    assert code == 0, err
    report = json.loads(out)
    assert report["frames"] == 1 and report["split"] == "selval" and report["crop"] == [64, 256]
    metrics = report["metrics"]
    for name in ("rmse_mm", "mae_mm", "irmse_1_per_km", "imae_1_per_km", "silog", "delta1"):
        assert np.isfinite(metrics[name])
    assert metrics["rmse_mm"] >= metrics["mae_mm"] > 0


def _tiny_test_set(root: Path) -> Path:
    """test_depth_completion_anonymous with one 64x256 frame cut from the sample frame."""
    require_sample()
    sel = SAMPLE / "val_selection_cropped"
    stem = f"{DRIVE}_image_{FRAME}_image_02"
    rgb = np.asarray(Image.open(sel / "image" / f"{stem}.png"))[-64:, 480:736]
    sparse = read_depth_png(sel / "velodyne_raw" / f"{DRIVE}_velodyne_raw_{FRAME}_image_02.png")
    K = np.loadtxt(sel / "intrinsics" / f"{stem}.txt").reshape(3, 3)
    K[0, 2] -= 480
    K[1, 2] -= 352 - 64
    test = root / "test_depth_completion_anonymous"
    for sub in ("image", "velodyne_raw", "intrinsics"):
        (test / sub).mkdir(parents=True)
    Image.fromarray(rgb).save(test / "image" / "0000000000.png")
    write_depth_png(test / "velodyne_raw" / "0000000000.png", sparse[-64:, 480:736])
    (test / "intrinsics" / "0000000000.txt").write_text(" ".join(f"{v:.4f}" for v in K.ravel()))
    return root


def test_export_pngs_read_back_to_the_prediction(ckpt: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    root = _tiny_test_set(tmp_path / "kitti")
    out = tmp_path / "submission"
    code, stdout, err = run_cli(["export", "--kitti", root, "--ckpt", ckpt, "--out", out,
                                 "--device", "cpu"], capsys)
    assert code == 0, err
    assert "1 PNGs" in stdout
    with Image.open(out / "0000000000.png") as png:
        assert png.mode == "I;16" and png.size == (256, 64)
    with zipfile.ZipFile(out / "kitti_depth_completion_submission.zip") as archive:
        assert archive.namelist() == ["0000000000.png"]
    # the PNG holds the prediction to within the benchmark's 1/256 m quantisation
    frames = find_frames(root, "test")
    summary = export_frames(StubNet(), frames, tmp_path / "stub", torch.device("cpu"))
    sample = load_sample(frames[0])
    pred = predict_depth(StubNet(), sample.rgb, sample.sparse, sample.K, torch.device("cpu"))
    back = read_depth_png(summary.out / "0000000000.png")
    assert np.abs(back - pred).max() <= 1 / 256


def test_complete_on_the_raw_frame_with_its_scan(ckpt: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    require_sample()
    out = tmp_path / "out"
    code, stdout, err = run_cli([
        "complete", "--image", RAW_DRIVE / "image_02" / "data" / f"{FRAME}.png",
        "--velodyne", RAW_DRIVE / "velodyne_points" / "data" / f"{FRAME}.bin",
        "--calib", SAMPLE / "raw" / DATE / "calib_cam_to_cam.txt", "--ckpt", ckpt,
        "--out", out, "--ply", "--device", "cpu"], capsys)
    assert code == 0, err
    depth = np.load(out / f"{FRAME}_depth.npy")
    assert depth.shape == (375, 1242) and depth.dtype == np.float32
    np.testing.assert_allclose(read_depth_png(out / f"{FRAME}_depth.png"),
                               np.clip(depth, 0, 65535 / 256), atol=1 / 256)
    with Image.open(out / f"{FRAME}_depth_color.png") as colour:
        assert colour.mode == "RGB" and colour.size == (1242, 375 + BAR_HEIGHT_PX)
    assert (out / f"{FRAME}.ply").stat().st_size > 1000
    for kind in ("png", "npy", "color", "ply"):
        assert f"{kind}: " in stdout


@pytest.mark.parametrize("case", ["size", "empty", "calib", "both", "no-lidar-calib"])
def test_complete_bad_input(case: str, ckpt: Path, tmp_path: Path,
                            capsys: pytest.CaptureFixture[str]) -> None:
    require_sample()
    image = RAW_DRIVE / "image_02" / "data" / f"{FRAME}.png"
    calib = SAMPLE / "raw" / DATE / "calib_cam_to_cam.txt"
    args = ["complete", "--image", image, "--ckpt", ckpt, "--out", tmp_path / "o"]
    if case == "size":
        np.save(tmp_path / "s.npy", np.ones((10, 20), np.float32))
        args += ["--sparse", tmp_path / "s.npy", "--calib", calib]
        message = "is 20x10 but the image"
    elif case == "empty":
        np.save(tmp_path / "s.npy", np.zeros((375, 1242), np.float32))
        args += ["--sparse", tmp_path / "s.npy", "--calib", calib]
        message = "sparse input is empty"
    elif case == "calib":
        args += ["--sparse", tmp_path / "s.npy", "--calib", tmp_path / "missing.txt"]
        np.save(tmp_path / "s.npy", np.ones((375, 1242), np.float32))
        message = "calibration file not found"
    elif case == "both":
        args += ["--calib", calib]
        message = "exactly one of --sparse"
    else:
        (tmp_path / "K.txt").write_text("721 0 609 0 721 172 0 0 1")
        args += ["--velodyne", RAW_DRIVE / "velodyne_points" / "data" / f"{FRAME}.bin",
                 "--calib", tmp_path / "K.txt"]
        message = "no LiDAR-to-camera transform"
    code, _, err = run_cli(args, capsys)
    assert code == 2
    assert err.startswith("dmd3c: error: ") and message in err and err.count("\n") == 1


def test_checkpoint_of_another_architecture_names_the_key(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]
                                                          ) -> None:
    require_sample()
    bad = tmp_path / "other.pt"
    torch.save({"net": {"encoder.weight": torch.zeros(3)}}, bad)
    code, _, err = run_cli(["evaluate", "--kitti", SAMPLE, "--ckpt", bad, "--device", "cpu"],
                           capsys)
    assert code == 2 and "does not match the model: missing key 'conv_img." in err
    code, _, err = run_cli(["evaluate", "--kitti", SAMPLE, "--ckpt", tmp_path / "none.pt"],
                           capsys)
    assert code == 2 and "checkpoint not found" in err
    (tmp_path / "text.pt").write_text("not a checkpoint")
    code, _, err = run_cli(["evaluate", "--kitti", SAMPLE, "--ckpt", tmp_path / "text.pt"],
                           capsys)
    assert code == 2 and "not a PyTorch checkpoint" in err


def test_evaluate_bad_options(ckpt: Path, tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["evaluate", "--kitti", tmp_path, "--ckpt", ckpt, "--split", "val",
                            "--device", "cpu"], capsys)
    assert code == 2 and "missing KITTI folder" in err
    code, _, err = run_cli(["evaluate", "--kitti", tmp_path, "--ckpt", ckpt, "--beams", "12"],
                           capsys)
    assert code == 2 and "choose from 64, 32, 16, 8" in err
