"""One CPU smoke fine-tune per recipe through ``dmd3c finetune --recipe NAME`` on the shared KITTI
sample (frame 5, both cameras; validation on its val_selection_cropped frames): real BP-Net
steps at a small crop, each recipe with its own teacher source, a checkpoint and ``best.pt``."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from data_schemas.teacher_maps import LidarFit, open_teacher_maps, write_aligned_map
from tests.train.cli_helpers import run_cli
from tests.train.datasets.kitti.fixtures import SAMPLE, official_tree, write_teacher_maps
from train.datasets.kitti.io import read_depth_png
from train.datasets.kitti.layout import KittiFrame, find_frames
from train.engine.schedule import one_cycle
from train.stage2.config import RECIPES

FAST = ["engine.batch_size=1", "data.crop=[64,128]", "data.val_crop=[64,128]",
        "data.val_max_frames=1", "data.num_workers=0", "engine.device=cpu",
        "engine.progress=false", "engine.log_every=1", "engine.image_every=0"]
LENGTH = {"dmd3c": ["engine.epochs=1"], "dmd3c++": ["engine.epochs=1"],
          "dmd3c-ours": ["engine.steps=2"]}
"""Two steps each: one epoch of the two training frames, or two steps."""


def _disparity(frame: KittiFrame) -> np.ndarray:
    """A relative disparity consistent with the frame's LiDAR (inverse depth, smoothed)."""
    sparse = read_depth_png(frame.sparse)
    rows = np.linspace(0.02, 0.25, sparse.shape[0], dtype=np.float32)[:, None]
    return np.broadcast_to(rows, sparse.shape).astype(np.float32) + 0.01


@pytest.fixture(scope="module")
def kitti(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[KittiFrame]]:
    root = official_tree(tmp_path_factory.mktemp("kitti") / "kitti", ("train",))
    (root / "val_selection_cropped").symlink_to(SAMPLE / "val_selection_cropped")
    return root, find_frames(root, "train")


def _disp_folders(root: Path, frames: list[KittiFrame]) -> Path:
    """The authors' form: DA-V2 run.py grey PNGs in disp/ beside each image folder."""
    for frame in frames:
        d = _disparity(frame)
        grey = ((d - d.min()) / (d.max() - d.min()) * 255.0).astype(np.uint8)
        path = root / frame.key.replace("/data/", "/disp/")
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), np.repeat(grey[..., None], 3, axis=-1))
    return root


def _aligned_store(out: Path, frames: list[KittiFrame]) -> Path:
    store = write_teacher_maps(out, {f.key: _disparity(f) for f in frames})
    group = open_teacher_maps(store, "r+")
    for frame in frames:
        write_aligned_map(group, frame.key, 1.0 / _disparity(frame),
                          LidarFit("disparity", 1.0, 0.0, 1000, 900, 0.5))
    group.attrs["align"] = {"method": "lidar", "space": "disparity"}
    return store


def _teacher(name: str, root: Path, frames: list[KittiFrame], tmp: Path) -> Path:
    if name == "dmd3c":
        return _disp_folders(root, frames)
    if name == "dmd3c++":
        return _aligned_store(tmp / "aligned.zarr", frames)
    return write_teacher_maps(tmp / "raw.zarr", {f.key: _disparity(f) for f in frames})


@pytest.mark.parametrize(("name", "objective", "groups"), [
    ("dmd3c", "released", [0.0, 0.05]),
    ("dmd3c++", "dmdpp", [0.0, 0.05]),
    ("dmd3c-ours", "ours", [0.05]),
])
def test_recipe_smoke_run(name: str, objective: str, groups: list[float],
                          kitti: tuple[Path, list[KittiFrame]], ckpt: Path, tmp_path: Path,
                          capsys: pytest.CaptureFixture[str]) -> None:
    root, frames = kitti
    out = tmp_path / "run"
    args = ["finetune", "--recipe", name, "--kitti", root, "--teacher-maps",
            _teacher(name, root, frames, tmp_path), "--init", ckpt, "--out", out,
            *FAST, *LENGTH[name]]
    code, stdout, err = run_cli(args, capsys)
    assert code == 0, err
    assert "2 steps done" in stdout
    payload = torch.load(out / "last.pt", weights_only=True, map_location="cpu", mmap=True)
    assert payload["step"] == 2 and f"recipe: {name}" in payload["config"]
    assert f"objective: {objective}" in payload["config"]
    assert [g["weight_decay"] for g in payload["optimizer"]["param_groups"]] == groups
    best = torch.load(out / "best.pt", weights_only=True, map_location="cpu", mmap=True)
    assert np.isfinite(best["best_metric_ema"]) and best["best_metric_ema"] > 0
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    steps = [line for line in log if "train/loss" in line]
    assert [line["step"] for line in steps] == [1, 2]
    assert all(np.isfinite(line["train/loss"]) and line["train/loss_teacher"] > 0
               for line in steps)
    recipe = RECIPES[name]()  # lr peak, momentum bounds and noise of the recipe, as run
    table = one_cycle(2, recipe.optim.lr, recipe.schedule)
    assert [line["train/lr"] for line in steps] == pytest.approx(list(table.lr), rel=1e-12)
    assert [line["train/beta1"] for line in steps] == pytest.approx(list(table.beta1), rel=1e-12)
    assert [line["step"] for line in log if "val/rmse_mm" in line] == [2]
    code, _, err = run_cli(args, capsys)  # a second run into the same folder must be explicit
    assert code == 2 and "--resume" in err
