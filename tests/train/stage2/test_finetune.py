"""``dmd3c finetune``: config errors, the ``ours`` loss, validation, the NYUv2 recipe, and a
tiny-fixture run through the CLI (the recipes themselves: test_recipes.py, test_smoke.py)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from data_schemas.errors import DmdError
from tests.train.cli_helpers import StubNet, run_cli
from tests.train.datasets.kitti.fixtures import fake_disparity, official_tree, write_teacher_maps
from train.datasets.kitti.layout import find_frames
from train.datasets.sample import Batch
from train.engine import DistContext
from train.losses.ssi import ssi_loss
from train.stage2.config import ours_recipe, resolve_config
from train.stage2.loss import stage2_loss
from train.stage2.recipe import build_nyu_recipe
from train.stage2.validation import kitti_validator

CPU = DistContext(0, 1, 0, torch.device("cpu"))
OURS = ["--recipe", "dmd3c-ours"]


def test_finetune_config_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["finetune", "--kitti", tmp_path, "--out", tmp_path / "r"], capsys)
    assert code == 2 and "recipe dmd3c trains against teacher maps: pass --teacher-maps" in err
    assert not (tmp_path / "r").exists()
    code, _, err = run_cli(["finetune", *OURS, "--kitti", tmp_path, "--out", tmp_path / "r",
                            "loss.ssi=midas"], capsys)
    assert code == 2 and "paper, rpnl, patch" in err
    code, out, err = run_cli(["finetune", *OURS, "--kitti", tmp_path, "--teacher-maps", "t.zarr",
                              "--out", tmp_path / "r", "--print-config"], capsys)
    assert code == 0 and "ssi: paper" in out and "steps: 160000" in out


def test_ours_adds_the_weighted_ssi_of_the_final_output() -> None:
    g = torch.Generator().manual_seed(0)
    target = torch.rand(1, 1, 32, 64, generator=g) * 30 * (torch.rand(1, 1, 32, 64, generator=g)
                                                           > 0.8)
    teacher = 1.0 / (5 + 20 * torch.rand(1, 1, 32, 64, generator=g))
    batch = Batch(rgb=torch.zeros(1, 3, 32, 64), sparse=torch.zeros(1, 1, 32, 64),
                       target=target, K=torch.eye(3)[None], keys=("a",), teacher=teacher)
    preds = [(5 + 20 * torch.rand(1, 1, 32, 64, generator=g)).requires_grad_(True)
             for _ in range(6)]
    ours = ours_recipe().loss
    gt_only = stage2_loss(preds, batch, replace(ours, teacher_weight=0.0), "disparity")
    both = stage2_loss(preds, batch, replace(ours, teacher_weight=0.5), "disparity")
    ssi = ssi_loss("paper")(preds[-1], teacher, teacher > 0, space="disparity", grad_weight=0.5)
    assert ssi.item() > 0
    assert both.scalars["teacher_scale5"].item() == pytest.approx(0.5 * ssi.item(), rel=1e-6)
    assert both.total.item() == pytest.approx(gt_only.total.item() + 0.5 * ssi.item(), rel=1e-6)
    both.total.backward()
    assert all(p.grad is not None for p in preds)


def test_finetune_validation_on_a_crop(tmp_path: Path) -> None:
    root = official_tree(tmp_path, ("val",), ("image_02",))
    validate = kitti_validator(find_frames(root, "val"), (64, 256))
    metrics = validate(StubNet(), CPU)
    assert set(metrics) == {"val/rmse_mm", "val/mae_mm", "val/irmse_1_per_km",
                            "val/imae_1_per_km"}
    assert metrics["val/rmse_mm"] >= metrics["val/mae_mm"] > 0


def test_nyu_finetune_stream_and_config(tmp_path: Path) -> None:
    h5py = pytest.importorskip("h5py", reason="h5py reads NYUv2 HDF5 files")
    folder = tmp_path / "nyu" / "train" / "s"
    folder.mkdir(parents=True)
    for i in range(2):
        with h5py.File(folder / f"{i}.h5", "w") as f:
            f["rgb"] = np.full((3, 480, 640), 100, np.uint8)
            f["depth"] = np.full((480, 640), 2.0 + i, np.float32)
    with pytest.raises(ValueError, match="loss.teacher_weight=0"):
        resolve_config("", "", "", tmp_path / "r", None, [], False, nyu=str(tmp_path / "nyu"))
    cfg = resolve_config("", "", "", tmp_path / "r", None,
                         ["loss.teacher_weight=0", "engine.batch_size=2", "data.num_workers=0"],
                         False, nyu=str(tmp_path / "nyu"))
    recipe = build_nyu_recipe(cfg, CPU)
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
            "loss.teacher_weight=0", "engine.steps=1", "engine.batch_size=1", "engine.device=cpu",
            "engine.precision=fp32", "engine.log_every=1", "engine.image_every=0",
            "engine.checkpoint_every=0", "engine.val_every=0", "engine.progress=false",
            "engine.ema_decay=0", "data.num_workers=0"]
    code, stdout, err = run_cli(args, capsys)
    assert code == 0, err
    payload = torch.load(out / "last.pt", weights_only=True, map_location="cpu")
    assert payload["step"] == 1
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 1 and np.isfinite(log[-1]["train/loss"])


@pytest.mark.parametrize(("override", "message"), [
    ("model.init_weights=best", "model.init_weights must be one of auto, ema, net; got 'best'"),
    ("loss.rpnl_min_frac=0.8", "must satisfy 0 < min <= max <= 1; got 0.8, 0.5"),
    ("loss.objective=midas", "loss.objective must be one of released, dmdpp, ours"),
    ("loss.scale_weights=[1,1]", "loss.scale_weights needs 6 weights"),
    ("loss.teacher_weight=-1", "loss.teacher_weight must be >= 0"),
    ("data.teacher_form=png", "data.teacher_form must be one of released, raw, aligned"),
    ("data.augment.jitter_on=image", "data.augment.jitter_on must be one of crop, frame"),
    ("data.augment.grey_prob=1.5", "probabilities must be in \\[0, 1\\]; got grey_prob=1.5"),
    ("data.crop=[250,1216]", r"data.crop=\[250,1216\]: both sides must be positive multiples"),
    ("data.val_crop=[64,100]", r"data.val_crop=\[64,100\]: both sides must be positive multiples"),
    ("data.split=trainval", "unknown KITTI split 'trainval'"),
    ("loss.supervised=huber", "one of l1, l2, l1\\+l2"),
    ("loss.teacher_space=log", "'log'"),
])
def test_invalid_settings_are_named(override: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(DmdError, match=message):
        resolve_config("kitti", "t.zarr", "", tmp_path / "r", None, [override], False)


def test_finetune_needs_a_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["finetune", "--out", tmp_path / "r", "loss.teacher_weight=0"],
                           capsys)
    assert code == 2 and err == "dmd3c: error: --kitti ROOT (or --nyu ROOT) is required\n"


def test_patch_sizes_must_fit_the_crop(tmp_path: Path) -> None:
    overrides = ["loss.ssi=patch", "data.crop=[64,256]", "loss.patch_sizes=[32,128]"]
    with pytest.raises(DmdError, match=r"loss.patch_sizes \[128\] do not fit the training crop "
                                       r"64x256"):
        resolve_config("kitti", "t.zarr", "", tmp_path / "r", None, overrides, False,
                       recipe="dmd3c-ours")
    assert resolve_config("kitti", "t.zarr", "", tmp_path / "r", None, overrides[:2],
                          False, recipe="dmd3c-ours").loss.patch_sizes == (32, 64)


def test_missing_teacher_maps_stop_the_run_before_training(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = official_tree(tmp_path / "kitti", ("train",))
    frames = find_frames(root, "train")
    teacher = write_teacher_maps(tmp_path / "t.zarr", {frames[0].key: fake_disparity((375, 1242))})
    out = tmp_path / "run"
    code, _, err = run_cli(["finetune", "--kitti", root, "--teacher-maps", teacher, "--out", out,
                            "engine.device=cpu"], capsys)
    assert code == 2
    assert "1 of 2 KITTI images have no teacher map" in err and frames[1].name in err
    assert not out.exists()  # refused before anything was written or built
    code, _, err = run_cli(["finetune", "--kitti", root, "--teacher-maps", tmp_path / "none",
                            "--out", out], capsys)
    assert code == 2 and "is neither a `dmd3c teach` store" in err
