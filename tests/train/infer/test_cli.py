"""``dmd3c finetune / evaluate / export / complete`` end to end on the real sample frame and
tiny fixtures (CPU). BP-Net forwards at full KITTI size: one in evaluate, one in complete."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dmd3c.cli import app, run_guarded
from tests.train.kitti.fixtures import (
    DATE,
    DRIVE,
    FRAME,
    RAW_DRIVE,
    SAMPLE,
    fake_disparity,
    official_tree,
    require_sample,
    write_teacher_maps,
)
from train.evaluate import Padding, as_submitted, evaluate_kitti, predict_depth
from train.export import export_frames
from train.kitti.io import read_depth_png, write_depth_png
from train.kitti.layout import find_frames
from train.metrics import kitti_metrics
from train.model import BPNet, save_checkpoint


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = 0
    try:
        run_guarded(lambda: app([str(a) for a in args], standalone_mode=True))
    except SystemExit as done:
        code = int(done.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "bpnet.pt"
    save_checkpoint(path, BPNet())  # the released {'net', 'epoch', 'best_metric_ema'} format
    return path


class StubNet(torch.nn.Module):
    """Stands in for BP-Net in function tests: depth = 10 m + 2 x normalised red channel."""

    def forward(self, rgb: torch.Tensor, sparse: torch.Tensor, K: torch.Tensor) -> list:
        return [10.0 + 2.0 * rgb[:, :1].clamp(-2, 2)] * 6


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


def test_evaluate_kitti_scores_what_export_would_submit() -> None:
    require_sample()
    frames = find_frames(SAMPLE, "selval")[:1]
    report = evaluate_kitti(StubNet(), frames, torch.device("cpu"), beams=[64, 16])
    assert set(report["beams"]) == {"64", "16"}  # type: ignore[arg-type]
    from train.kitti.dataset import load_sample

    sample = load_sample(frames[0])
    pred = predict_depth(StubNet(), sample.rgb, sample.sparse, sample.K, torch.device("cpu"))
    expected = kitti_metrics(as_submitted(pred), sample.gt).leaderboard()["rmse_mm"]
    assert report["beams"]["64"]["rmse_mm"] == pytest.approx(expected)  # type: ignore[index]


def test_padding_to_multiples_of_32_keeps_geometry() -> None:
    pad = Padding.for_size(375, 1242)
    assert (pad.top, pad.left, pad.right) == (9, 3, 3)
    rgb = np.zeros((375, 1242, 3), np.uint8)
    sparse = np.zeros((375, 1242), np.float32)
    sparse[200, 600] = 5.0
    depth = predict_depth(StubNet(), rgb, sparse, np.eye(3), torch.device("cpu"))
    assert depth.shape == (375, 1242)


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
    from train.kitti.dataset import load_sample

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
        assert colour.mode == "RGB" and colour.size == (1242, 375)
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


def test_finetune_three_steps_on_a_tiny_fixture(ckpt: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    root = official_tree(tmp_path / "kitti")
    maps = {f.key: fake_disparity((375, 1242)) for f in find_frames(root, "train")}
    teacher = write_teacher_maps(tmp_path / "teacher.zarr", maps)
    out = tmp_path / "run"
    args = ["finetune", "--kitti", root, "--teacher-maps", teacher, "--init", ckpt, "--out", out,
            "engine.steps=3", "engine.batch_size=1", "engine.device=cpu", "engine.precision=fp32",
            "engine.log_every=1", "engine.image_every=0", "engine.checkpoint_every=0",
            "engine.val_every=0", "engine.progress=false", "engine.ema_decay=0",
            "data.crop=[32,128]",
            "data.num_workers=0", "data.val_split=''", "loss.ssi=rpnl"]
    code, stdout, err = run_cli(args, capsys)
    assert code == 0, err
    assert "3 steps done" in stdout
    assert (out / "last.pt").is_file()
    config = (out / "config.yaml").read_text()
    assert "ssi: rpnl" in config and str(teacher) in config
    payload = torch.load(out / "last.pt", weights_only=True, map_location="cpu")
    init = torch.load(ckpt, weights_only=True, map_location="cpu", mmap=True)["net"]
    assert payload["step"] == 3 and set(payload["net"]) == set(init)
    # a second run into the same folder must be explicit
    code, _, err = run_cli(args, capsys)
    assert code == 2 and "--resume" in err


def test_finetune_config_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["finetune", "--kitti", tmp_path, "--out", tmp_path / "r",
                            "--print-config"], capsys)
    assert code == 2 and "needs --teacher-maps" in err
    code, _, err = run_cli(["finetune", "--kitti", tmp_path, "--out", tmp_path / "r",
                            "loss.ssi=midas"], capsys)
    assert code == 2 and "paper, rpnl, patch, none" in err
    code, out, err = run_cli(["finetune", "--kitti", tmp_path, "--teacher-maps", "t.zarr",
                              "--out", tmp_path / "r", "--print-config"], capsys)
    assert code == 0 and "ssi: paper" in out and "steps: 160000" in out


def test_stage2_loss_adds_weighted_ssi_to_the_gt_loss() -> None:
    from train.finetune import KittiBatch, Stage2LossConfig, stage2_loss

    g = torch.Generator().manual_seed(0)
    target = torch.rand(1, 1, 32, 64, generator=g) * 30 * (torch.rand(1, 1, 32, 64, generator=g)
                                                           > 0.8)
    teacher = 1.0 / (5 + 20 * torch.rand(1, 1, 32, 64, generator=g))
    batch = KittiBatch(rgb=torch.zeros(1, 3, 32, 64), sparse=torch.zeros(1, 1, 32, 64),
                       target=target, K=torch.eye(3)[None], keys=("a",), teacher=teacher)
    preds = [(5 + 20 * torch.rand(1, 1, 32, 64, generator=g)).requires_grad_(True)
             for _ in range(6)]
    gt_only = stage2_loss(preds, batch, Stage2LossConfig(ssi="none"), "disparity")
    both = stage2_loss(preds, batch, Stage2LossConfig(ssi="paper", ssi_weight=0.5), "disparity")
    ssi = both.scalars["ssi_paper"]
    assert ssi.item() > 0
    assert both.total.item() == pytest.approx(gt_only.total.item() + 0.5 * ssi.item(), rel=1e-5)
    both.total.backward()
    assert all(p.grad is not None for p in preds)


def test_finetune_validation_on_a_crop(tmp_path: Path) -> None:
    from train.engine import DistContext
    from train.finetune import _validator

    root = official_tree(tmp_path, ("val",), ("image_02",))
    validate = _validator(find_frames(root, "val"), (64, 256))
    metrics = validate(StubNet(), DistContext(0, 1, 0, torch.device("cpu")))
    assert set(metrics) == {"val/rmse_mm", "val/mae_mm", "val/irmse_1_per_km",
                            "val/imae_1_per_km"}
    assert metrics["val/rmse_mm"] >= metrics["val/mae_mm"] > 0


def test_stream_sampler_is_deterministic_and_resumable() -> None:
    from train.finetune import StreamSampler

    def first(start: int, n: int) -> list:
        it = iter(StreamSampler(10, 2, 0, 0, 1, start))
        return [next(it) for _ in range(n)]

    run = first(0, 12)
    assert first(7, 5) == run[7:12]  # resume from batch 7 continues the same stream
    epoch0 = [i for batch in run[:5] for (_, i, _) in batch]
    assert sorted(epoch0) == list(range(10))  # one epoch = a permutation of the frames
    with pytest.raises(ValueError, match="fewer than one global batch"):
        StreamSampler(1, 2, 0, 0, 1, 0)


def test_nyu_finetune_stream_and_config(tmp_path: Path) -> None:
    h5py = pytest.importorskip("h5py", reason="h5py reads NYUv2 HDF5 files")
    from train.engine import DistContext
    from train.finetune import build_nyu_recipe, resolve_config

    folder = tmp_path / "nyu" / "train" / "s"
    folder.mkdir(parents=True)
    for i in range(2):
        with h5py.File(folder / f"{i}.h5", "w") as f:
            f["rgb"] = np.full((3, 480, 640), 100, np.uint8)
            f["depth"] = np.full((480, 640), 2.0 + i, np.float32)
    with pytest.raises(ValueError, match="loss.ssi=none"):
        resolve_config("", "", "", tmp_path / "r", None, [], False, nyu=str(tmp_path / "nyu"))
    cfg = resolve_config("", "", "", tmp_path / "r", None,
                         ["loss.ssi=none", "engine.batch_size=2", "data.num_workers=0"], False,
                         nyu=str(tmp_path / "nyu"))
    recipe = build_nyu_recipe(cfg, DistContext(0, 1, 0, torch.device("cpu")))
    batch = next(iter(recipe.make_batches(0)))
    assert batch.rgb.shape == (2, 3, 256, 320) and batch.target.shape == (2, 1, 256, 320)
    assert int((batch.sparse > 0).sum()) == 2 * 500
    assert recipe.validate is None  # no val/ folder


def test_nyu_finetune_one_step_through_the_cli(ckpt: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    h5py = pytest.importorskip("h5py", reason="h5py reads NYUv2 HDF5 files")
    rng = np.random.default_rng(0)
    folder = tmp_path / "nyu" / "train" / "scene"
    folder.mkdir(parents=True)
    with h5py.File(folder / "00001.h5", "w") as f:
        f["rgb"] = rng.integers(0, 255, (3, 480, 640), dtype=np.uint8)
        f["depth"] = rng.uniform(0.5, 9.0, (480, 640)).astype(np.float32)
    out = tmp_path / "run"
    args = ["finetune", "--nyu", str(tmp_path / "nyu"), "--init", ckpt, "--out", out,
            "loss.ssi=none", "engine.steps=1", "engine.batch_size=1", "engine.device=cpu",
            "engine.precision=fp32", "engine.log_every=1", "engine.image_every=0",
            "engine.checkpoint_every=0", "engine.val_every=0", "engine.progress=false",
            "engine.ema_decay=0", "data.num_workers=0"]
    code, stdout, err = run_cli(args, capsys)
    assert code == 0, err
    payload = torch.load(out / "last.pt", weights_only=True, map_location="cpu")
    assert payload["step"] == 1
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 1 and np.isfinite(log[-1]["train/loss"])
