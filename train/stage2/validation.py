"""Stage-2 validation during training: KITTI devkit metrics on held-out frames, or NYUv2
metrics on the val files; each rank scores its share and the sums are reduced.

When and on what (the recipe's config): ``engine.val_each_epoch``, ``engine.val_every``
steps from epoch ``engine.val_from_epoch``, on ``data.val_max_frames`` frames of
``data.val_split``, in the bottom-centre ``data.val_crop`` window; the engine validates the
EMA model and keeps the lowest ``val/rmse_mm`` as ``best.pt``. The release scores
``criteria.RMSE`` (per-image RMSE of the raw float prediction, averaged over batches of 2);
here the devkit's per-image RMSE of the prediction as the benchmark PNG reads it back
(1/256 m steps), averaged over frames: the same quantity up to that rounding.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from data_schemas.errors import InputNotFoundError
from train.datasets.kitti.layout import KittiFrame, find_frames, parse_split
from train.datasets.nyu import find_nyu_files
from train.engine import DistContext
from train.engine.distributed import all_sum
from train.engine.recipe import ValidateFn
from train.infer.evaluate import frame_metrics, load_eval_sample, nyu_file_metrics
from train.stage2.config import FinetuneConfig

KITTI_NAMES = ("rmse_mm", "mae_mm", "irmse_1_per_km", "imae_1_per_km")
NYU_NAMES = ("rmse_m", "rel")
KITTI_BEST = "val/rmse_mm"
"""``best.pt`` keeps the lowest mean per-image RMSE, as the release's ``best_metric_ema``."""
NYU_BEST = "val/rmse_m"


def _means(ctx: DistContext, sums: torch.Tensor, names: Sequence[str]) -> dict[str, float]:
    """``sums`` = [per-metric sums..., count] of this rank -> {"val/<name>": mean over ranks}."""
    total = all_sum(ctx, sums.to(ctx.device)).cpu()
    count = max(float(total[-1]), 1.0)
    return {f"val/{n}": float(total[i]) / count for i, n in enumerate(names)}


def kitti_validator(frames: Sequence[KittiFrame], crop: tuple[int, int] | None) -> ValidateFn:
    """Mean devkit RMSE/MAE (mm) and iRMSE/iMAE (1/km) over ``frames`` (bottom-centre ``crop``
    when given); frames without GT or LiDAR in the window are skipped."""
    def validate(model: nn.Module, ctx: DistContext) -> dict[str, float]:
        sums = torch.zeros(len(KITTI_NAMES) + 1, dtype=torch.float64)
        for frame in frames[ctx.rank::ctx.world_size]:
            sample = load_eval_sample(frame, crop)
            if not (sample.target > 0).any() or not (sample.sparse > 0).any():
                continue
            board = frame_metrics(model, sample, ctx.device).leaderboard()
            sums += torch.tensor([*(board[n] for n in KITTI_NAMES), 1.0], dtype=torch.float64)
        return _means(ctx, sums, KITTI_NAMES)
    return validate


def nyu_validator(files: Sequence[Path]) -> ValidateFn:
    """Mean NYUv2 RMSE (m) and REL over ``files`` (sparse points fixed per file)."""
    def validate(model: nn.Module, ctx: DistContext) -> dict[str, float]:
        per_image = nyu_file_metrics(model, files[ctx.rank::ctx.world_size], ctx.device)
        sums = torch.tensor([sum(m.rmse for m in per_image), sum(m.rel for m in per_image),
                             len(per_image)], dtype=torch.float64)
        return _means(ctx, sums, NYU_NAMES)
    return validate


def kitti_validation_frames(cfg: FinetuneConfig) -> list[KittiFrame]:
    """The frames of ``data.val_split`` under the KITTI root (at most ``data.val_max_frames``);
    none when validation is off or the root has no such split."""
    split = cfg.data.val_split
    if not split:
        return []
    try:
        frames = find_frames(cfg.kitti, parse_split(split))
    except InputNotFoundError:
        return []  # no validation data under this root: train without validation
    limit = cfg.data.val_max_frames
    return frames[:limit] if limit else frames


def nyu_validation_files(cfg: FinetuneConfig) -> list[Path]:
    """The NYUv2 val files (at most ``data.val_max_frames``); none when validation is off or
    the root has no val/ folder."""
    if not cfg.data.val_split:
        return []
    try:
        files = find_nyu_files(cfg.nyu, "val")
    except InputNotFoundError:
        return []
    limit = cfg.data.val_max_frames
    return files[:limit] if limit else files
