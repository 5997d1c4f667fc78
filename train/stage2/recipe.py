"""Stage-2 recipe: fine-tune BP-Net on KITTI depth completion with GT + SSI-to-teacher losses.

``dmd3c finetune --kitti ROOT --teacher-maps STORE --init CKPT --out RUN_DIR`` resolves a
:class:`~train.stage2.config.FinetuneConfig` (defaults mirrored in
``configs/finetune.yaml``), writes it to ``RUN_DIR/config.yaml`` and trains with
:mod:`train.engine` (the same loop, AMP, DDP, EMA, checkpoints and resume as stage 1).
Only the data (KITTI frames + teacher maps, :mod:`train.datasets.kitti`; or NYUv2) and the
loss differ:

    loss = sum_i w_i * supervised(pred_i, GT)            BP-Net's multi-scale L2 (or L1)
         + ssi_weight * SSI(pred_final, teacher, teacher > 0)     (train.losses.ssi)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

from torch import Tensor, nn
from torch.utils.data import DataLoader

from data_schemas.errors import ConfigError, InputNotFoundError
from train.datasets.kitti.dataset import KittiDataset
from train.datasets.kitti.layout import find_frames
from train.datasets.kitti.teacher import TeacherMaps
from train.datasets.nyu import CROP_HW, PADDED_HW, NyuDataset, find_nyu_files, pad_collate
from train.datasets.panel import batch_panel
from train.datasets.sample import Batch, collate_items
from train.datasets.sampling import StreamPlan, plan_loader
from train.engine import DistContext, LossTerms, Recipe, RunState, run_recipe
from train.engine.recipe import LossFn
from train.losses.pixel import multiscale_loss
from train.losses.ssi import ssi_loss
from train.model import BPNet, load_checkpoint
from train.stage2.config import FinetuneConfig, Stage2LossConfig, Stage2ModelConfig
from train.stage2.validation import (
    kitti_validation_frames,
    kitti_validator,
    nyu_validation_files,
    nyu_validator,
)

logger = logging.getLogger(__name__)


# -- loss ---------------------------------------------------------------------------------
def _ssi_kwargs(cfg: Stage2LossConfig) -> dict[str, object]:
    if cfg.ssi == "paper":
        return {"grad_weight": cfg.grad_weight}
    if cfg.ssi == "patch":
        return {"grad_weight": cfg.grad_weight, "patch_sizes": tuple(cfg.patch_sizes)}
    return {"num_crops": cfg.rpnl_crops, "min_frac": cfg.rpnl_min_frac,
            "max_frac": cfg.rpnl_max_frac}


def stage2_loss(preds: Sequence[Tensor], batch: Batch, cfg: Stage2LossConfig,
                space: str) -> LossTerms:
    """Multi-scale supervised loss on GT pixels + weighted SSI of the final prediction."""
    total, terms = multiscale_loss(preds, batch.target, batch.target > 0, cfg.scale_weights,
                                   cfg.supervised)
    scalars = {f"gt_scale{i}": t.detach() for i, t in enumerate(terms)}
    if cfg.ssi != "none":
        if batch.teacher is None:
            raise ValueError(f"loss.ssi={cfg.ssi} but the batch carries no teacher maps")
        ssi = ssi_loss(cfg.ssi)(preds[-1].float(), batch.teacher, batch.teacher > 0,
                                space=space, **_ssi_kwargs(cfg))
        total = total + cfg.ssi_weight * ssi
        scalars[f"ssi_{cfg.ssi}"] = ssi.detach()
    scalars["total"] = total.detach()
    return LossTerms(total, scalars)


def _loss_fn(cfg: Stage2LossConfig, space: str) -> LossFn[Batch]:
    def loss_fn(model: nn.Module, batch: Batch) -> tuple[LossTerms, Tensor]:
        preds = model(batch.rgb, batch.sparse, batch.K)
        return stage2_loss(preds, batch, cfg, space), preds[-1]
    return loss_fn


def _model_factory(cfg: Stage2ModelConfig) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        model = BPNet(drop_path=cfg.drop_path)
        if cfg.init:
            if not Path(cfg.init).is_file():
                raise InputNotFoundError(f"--init checkpoint not found: {cfg.init}")
            load_checkpoint(cfg.init, model, key=cfg.init_weights)
        return model
    return build


# -- recipes ------------------------------------------------------------------------------
def teacher_space(cfg: FinetuneConfig) -> str:
    """The SSI space: configured, or from the teacher store's output kind."""
    if cfg.loss.ssi == "none" or cfg.loss.teacher_space != "auto":
        return cfg.loss.teacher_space if cfg.loss.teacher_space != "auto" else "disparity"
    return TeacherMaps(cfg.teacher_maps).space


def _plan(count: int, cfg: FinetuneConfig, ctx: DistContext) -> StreamPlan:
    per_rank = cfg.engine.batch_size // max(ctx.world_size, 1)
    return StreamPlan.for_items(count, per_rank, cfg.engine.seed, ctx.rank, ctx.world_size)


def build_recipe(cfg: FinetuneConfig, ctx: DistContext) -> Recipe[Batch]:
    """Stage-2 KITTI recipe: BP-Net from --init, the KITTI stream with teacher maps, the loss,
    validation on ``data.val_split``."""
    frames = find_frames(cfg.kitti, cfg.data.split)
    teacher_url = cfg.teacher_maps if cfg.loss.ssi != "none" else None
    if teacher_url:
        TeacherMaps(teacher_url).check_covers(frames)
    dataset = KittiDataset(frames, True, cfg.data.crop, cfg.data.augment, cfg.data.top_min,
                           teacher_url, cfg.engine.seed)
    plan = _plan(len(frames), cfg, ctx)
    space = teacher_space(cfg)

    def make_batches(start: int) -> DataLoader[Batch]:
        return plan_loader(dataset, plan, start, collate_items, cfg.data.num_workers,
                           ctx.device.type == "cuda")

    val_frames = kitti_validation_frames(cfg)
    validate = kitti_validator(val_frames, cfg.data.val_crop) if val_frames else None
    if ctx.is_main:
        logger.info("%d KITTI %s frames, crop %dx%d, loss %s + %g x SSI %s (%s); validation "
                    "%d %s frames; %d rank(s) x %d on %s", len(frames), cfg.data.split,
                    cfg.data.crop[0], cfg.data.crop[1], cfg.loss.supervised,
                    cfg.loss.ssi_weight, cfg.loss.ssi, space, len(val_frames),
                    cfg.data.val_split or "no", ctx.world_size, plan.batch_size, ctx.device)
    hint = (f"lower engine.batch_size (now {cfg.engine.batch_size}) or data.crop (now "
            f"{cfg.data.crop[0]}x{cfg.data.crop[1]})")
    return Recipe(_model_factory(cfg.model), _loss_fn(cfg.loss, space), make_batches, validate,
                  hint, batch_panel)


def build_nyu_recipe(cfg: FinetuneConfig, ctx: DistContext) -> Recipe[Batch]:
    """NYUv2 recipe: the same model/engine, GT-supervised, 500 sparse points per sample, the
    228x304 crop padded to 256x320."""
    files = find_nyu_files(cfg.nyu, "train")
    dataset = NyuDataset(files, train=True, seed=cfg.engine.seed,
                         flip_prob=cfg.data.augment.flip_prob)
    plan = _plan(len(files), cfg, ctx)
    collate = partial(pad_collate, hw=PADDED_HW)

    def make_batches(start: int) -> DataLoader[Batch]:
        return plan_loader(dataset, plan, start, collate, cfg.data.num_workers,
                           ctx.device.type == "cuda")

    val_files = nyu_validation_files(cfg)
    validate = nyu_validator(val_files) if val_files else None
    if ctx.is_main:
        logger.info("%d NYUv2 train files (%dx%d padded to %dx%d), loss %s; validation %d "
                    "files", len(files), *CROP_HW, *PADDED_HW, cfg.loss.supervised,
                    len(val_files))
    return Recipe(_model_factory(cfg.model), _loss_fn(cfg.loss, "depth"), make_batches,
                  validate, f"lower engine.batch_size (now {cfg.engine.batch_size})",
                  batch_panel)


def finetune(run_dir: Path, cfg: FinetuneConfig, resume: bool = False) -> RunState:
    """Run (or resume) stage-2 fine-tuning into ``run_dir``; returns the final run state."""
    if not cfg.kitti and not cfg.nyu:
        raise ConfigError("--kitti ROOT (or --nyu ROOT) is required")
    build = build_nyu_recipe if cfg.nyu else build_recipe
    return run_recipe(cfg, run_dir, resume, lambda ctx: build(cfg, ctx))
