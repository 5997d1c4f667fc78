"""Stage-2 recipe: fine-tune BP-Net on KITTI depth completion with a GT term and a teacher term.

``dmd3c finetune --recipe NAME --kitti ROOT --teacher-maps MAPS --init CKPT --out RUN_DIR``
resolves a :class:`~train.stage2.config.FinetuneConfig` (the named recipe, mirrored in
``configs/finetune-NAME.yaml``), writes it to ``RUN_DIR/config.yaml`` and trains with
:mod:`train.engine` (the same loop, AMP, DDP, EMA, checkpoints and resume as stage 1).
Only the data (KITTI frames + teacher maps, :mod:`train.datasets.kitti`; or NYUv2), the
objective (:mod:`train.stage2.loss`) and the validation (:mod:`train.stage2.validation`,
``best.pt`` by RMSE) are stage 2's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

from torch import Tensor, nn
from torch.utils.data import DataLoader

from data_schemas.errors import InputNotFoundError
from train.datasets.kitti.dataset import KittiDataset
from train.datasets.kitti.layout import KittiFrame, find_frames
from train.datasets.kitti.teacher import TeacherSource, open_teacher
from train.datasets.nyu import CROP_HW, PADDED_HW, NyuDataset, find_nyu_files, pad_collate
from train.datasets.panel import batch_panel
from train.datasets.sample import Batch, collate_items
from train.datasets.sampling import StreamPlan, plan_loader
from train.engine import DistContext, LossTerms, Recipe, RunState, run_recipe
from train.engine.recipe import LossFn
from train.model import BPNet, load_checkpoint
from train.stage2.config import (
    FinetuneConfig,
    Stage2LossConfig,
    Stage2ModelConfig,
    check_inputs,
)
from train.stage2.loss import stage2_loss
from train.stage2.validation import (
    KITTI_BEST,
    NYU_BEST,
    kitti_validation_frames,
    kitti_validator,
    nyu_validation_files,
    nyu_validator,
)

logger = logging.getLogger(__name__)
MADE_FOR = {"released": ("released", "disparity"), "dmdpp": (None, "depth")}
"""The teacher each released objective was made for: (form, space); None = any form."""


# -- loss ---------------------------------------------------------------------------------
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
def teacher_space(cfg: FinetuneConfig, teacher: TeacherSource | None) -> str:
    """The space of the teacher maps as read (for the ``ours`` SSI): configured, else the
    source's (the released form is a disparity, the aligned form a depth)."""
    if cfg.loss.teacher_space != "auto":
        return cfg.loss.teacher_space
    return teacher.space if teacher is not None else "disparity"


def open_checked_teacher(cfg: FinetuneConfig, frames: Sequence[KittiFrame],
                         is_main: bool) -> TeacherSource | None:
    """The recipe's teacher source, refused before training when any training image lacks a
    map (the count and the first missing one are named); None without a teacher term."""
    if not cfg.loss.uses_teacher:
        return None
    teacher = open_teacher(cfg.teacher_maps, cfg.data.teacher_form)
    teacher.check_covers(frames)
    form, space = MADE_FOR.get(cfg.loss.objective, (None, None))
    if is_main and ((form and teacher.form != form) or (space and teacher.space != space)):
        logger.warning("loss.objective=%s was made for %s %s teacher maps; training with %s %s "
                       "ones", cfg.loss.objective, form or "any", space, teacher.form,
                       teacher.space)
    unaligned = teacher.unaligned(frames) if is_main else []
    if unaligned:
        logger.warning("%d of %d training images have no LiDAR-aligned teacher map (first: %s); "
                       "they train on the GT term alone", len(unaligned), len(frames),
                       unaligned[0])
    return teacher


def _plan(count: int, cfg: FinetuneConfig, ctx: DistContext) -> StreamPlan:
    per_rank = cfg.engine.batch_size // max(ctx.world_size, 1)
    return StreamPlan.for_items(count, per_rank, cfg.engine.seed, ctx.rank, ctx.world_size)


def build_recipe(cfg: FinetuneConfig, ctx: DistContext) -> Recipe[Batch]:
    """Stage-2 KITTI recipe: BP-Net from --init, the KITTI stream with teacher maps, the
    objective, validation on ``data.val_split`` with ``best.pt`` by RMSE."""
    frames = find_frames(cfg.kitti, cfg.data.split)
    teacher = open_checked_teacher(cfg, frames, ctx.is_main)
    data = cfg.data
    dataset = KittiDataset(frames, True, data.crop, data.augment, data.top_min,
                           cfg.teacher_maps if teacher is not None else None, cfg.engine.seed,
                           data.teacher_form, data.flip_teacher)
    plan = _plan(len(frames), cfg, ctx)
    space = teacher_space(cfg, teacher)

    def make_batches(start: int) -> DataLoader[Batch]:
        return plan_loader(dataset, plan, start, collate_items, data.num_workers,
                           ctx.device.type == "cuda")

    val_frames = kitti_validation_frames(cfg)
    validate = kitti_validator(val_frames, data.val_crop) if val_frames else None
    if ctx.is_main:
        logger.info("recipe %s: %d KITTI %s frames (%d batches per epoch), crop %dx%d, "
                    "objective %s, teacher %s (%s); validation %d %s frames; %d rank(s) x %d "
                    "on %s", cfg.recipe, len(frames), data.split, plan.batches_per_epoch,
                    data.crop[0], data.crop[1], cfg.loss.objective,
                    teacher.form if teacher else "none", space, len(val_frames),
                    data.val_split or "no", ctx.world_size, plan.batch_size, ctx.device)
    hint = (f"lower engine.batch_size (now {cfg.engine.batch_size}) or data.crop (now "
            f"{data.crop[0]}x{data.crop[1]})")
    return Recipe(_model_factory(cfg.model), _loss_fn(cfg.loss, space), make_batches, validate,
                  hint, batch_panel, steps_per_epoch=plan.batches_per_epoch,
                  best_metric=KITTI_BEST)


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
        logger.info("%d NYUv2 train files (%dx%d padded to %dx%d), objective %s (GT term); "
                    "validation %d files", len(files), *CROP_HW, *PADDED_HW,
                    cfg.loss.objective, len(val_files))
    return Recipe(_model_factory(cfg.model), _loss_fn(cfg.loss, "depth"), make_batches,
                  validate, f"lower engine.batch_size (now {cfg.engine.batch_size})",
                  batch_panel, steps_per_epoch=plan.batches_per_epoch, best_metric=NYU_BEST)


def finetune(run_dir: Path, cfg: FinetuneConfig, resume: bool = False) -> RunState:
    """Run (or resume) stage-2 fine-tuning into ``run_dir``; returns the final run state."""
    check_inputs(cfg)
    build = build_nyu_recipe if cfg.nyu else build_recipe
    return run_recipe(cfg, run_dir, resume, lambda ctx: build(cfg, ctx))
