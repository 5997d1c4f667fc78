"""Stage-2 recipe: fine-tune BP-Net on KITTI depth completion with GT + SSI-to-teacher losses.

``dmd3c finetune --kitti ROOT --teacher-maps STORE --init CKPT --out RUN_DIR`` resolves a
:class:`FinetuneConfig` (defaults below, mirrored in ``configs/finetune.yaml``), writes it
to ``RUN_DIR/config.yaml`` and trains with :mod:`train.engine` (the same loop, AMP, DDP,
EMA, checkpoints and resume as stage 1). Only the data (KITTI frames + teacher maps) and
the loss differ:

    loss = sum_i w_i * supervised(pred_i, GT)            BP-Net's multi-scale L2 (or L1)
         + ssi_weight * SSI(pred_final, teacher, teacher > 0)     (train.ssi_losses)
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Sampler

from data_schemas.errors import ConfigError, InputNotFoundError
from data_schemas.geometry import parse_depth_space
from train.data.batch import Batch
from train.engine import (
    DistContext,
    EngineConfig,
    OptimConfig,
    Recipe,
    RunState,
    ScheduleConfig,
    load_run_config,
    run_recipe,
)
from train.engine.distributed import all_sum
from train.evaluate import as_submitted
from train.kitti.dataset import KittiAugment, KittiDataset, bottom_center_crop, load_sample
from train.kitti.layout import KittiFrame, find_frames, parse_split
from train.kitti.teacher import TeacherMaps
from train.losses import SCALE_WEIGHTS, LossTerms, multiscale_loss, parse_loss_kind
from train.metrics import kitti_metrics, mean_kitti_metrics
from train.model import BPNet, load_checkpoint
from train.ssi_losses import SSI_LOSS_NAMES, ssi_loss

SSI_CHOICES: tuple[str, ...] = (*SSI_LOSS_NAMES, "none")


@dataclass(frozen=True)
class KittiDataConfig:
    """KITTI frames for training and validation."""

    split: str = "train"
    """Training split: train, val or raw (maps inside raw/<date>/<drive>/proj_depth)."""
    crop: tuple[int, int] = (256, 1216)
    """Training crop [h, w] (multiples of 32), from the bottom at a random top offset."""
    top_min: int = 50
    """Lowest top offset of the training crop (BP-Net: 50 px; skips LiDAR-free rows)."""
    flip_prob: float = 0.5
    """Horizontal flip probability (all maps and K)."""
    jitter_std: float = 0.1
    """PCA colour jitter of rgb (BP-Net); 0 = off."""
    val_split: str = "selval"
    """Validation split (selval, val, raw) when present under the KITTI root; '' = none."""
    val_max_frames: int = 100
    """Validate on at most this many frames (0 = all)."""
    val_crop: tuple[int, int] | None = None
    """Validate on the bottom-centre [h, w] window; null = whole frames (padded to 32)."""
    num_workers: int = 4
    """DataLoader worker processes per rank (0 = read in the training process)."""


@dataclass(frozen=True)
class Stage2LossConfig:
    """Supervised loss to the sparse GT plus the SSI loss to the teacher."""

    supervised: str = "l2"
    """"l2" (BP-Net's multi-scale MSE, the DMD3C release), "l1" or "l1+l2"."""
    scale_weights: tuple[float, ...] = SCALE_WEIGHTS
    """Weights of BP-Net's six outputs, coarsest first (BP-Net: 4^-5 ... 1)."""
    ssi: str = "paper"
    """SSI variant: paper, rpnl, patch (train.ssi_losses) or none (GT only, BP-Net)."""
    ssi_weight: float = 0.1
    """Weight of the SSI term (the released code's lambda_metric is 0.1; our SSI terms are
    dimensionless, see train.ssi_losses)."""
    teacher_space: str = "auto"
    """Space of the teacher maps: auto (the store's teacher.output_kind), disparity, depth."""
    grad_weight: float = 0.5
    """Gradient-matching weight inside paper/patch (MiDaS: 0.5)."""
    patch_sizes: tuple[int, ...] = (32, 64)
    """Patch sizes of the patch variant (stride = half a patch)."""
    rpnl_crops: int = 32
    """Random crops per image of the rpnl variant (released code: 32)."""
    rpnl_min_frac: float = 0.125
    """Smallest crop side of rpnl, as a fraction of the image side."""
    rpnl_max_frac: float = 0.5
    """Largest crop side of rpnl, as a fraction of the image side."""


@dataclass(frozen=True)
class Stage2ModelConfig:
    """BP-Net construction and initial weights."""

    drop_path: float = 0.1
    """Stochastic depth rate of BP-Net's blocks."""
    init: str = ""
    """Stage-1 (or released) checkpoint to start from (set by --init)."""
    init_weights: str = "auto"
    """Which weights of --init: auto (EMA when the file has them), ema or net."""


def _finetune_engine() -> EngineConfig:
    return EngineConfig(steps=160_000, batch_size=16, ema_decay=0.9999, checkpoint_every=5000,
                        val_every=5000)


@dataclass(frozen=True)
class FinetuneConfig:
    """Stage-2 fine-tuning on KITTI (defaults: BP-Net's KITTI recipe + DMD3C's SSI term)."""

    kitti: str = ""
    """KITTI root (set by --kitti)."""
    nyu: str = ""
    """NYUv2 root with train/ and val/ HDF5 files (set by --nyu): fine-tune on NYUv2 instead
    of KITTI (GT loss only: loss.ssi=none; data.crop is fixed to 228x304 padded to 256x320)."""
    teacher_maps: str = ""
    """Teacher maps of the KITTI images from `dmd3c teach` (set by --teacher-maps)."""
    data: KittiDataConfig = field(default_factory=KittiDataConfig)
    loss: Stage2LossConfig = field(default_factory=Stage2LossConfig)
    model: Stage2ModelConfig = field(default_factory=Stage2ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    engine: EngineConfig = field(default_factory=_finetune_engine)


def check_config(cfg: FinetuneConfig) -> None:
    """One-line ValueErrors for inconsistent settings."""
    parse_split(cfg.data.split)
    parse_loss_kind(cfg.loss.supervised)
    if cfg.loss.ssi not in SSI_CHOICES:
        raise ConfigError(f"loss.ssi must be one of {', '.join(SSI_CHOICES)}; got {cfg.loss.ssi!r}")
    if cfg.loss.teacher_space != "auto":
        parse_depth_space(cfg.loss.teacher_space)
    if cfg.nyu and cfg.loss.ssi != "none":
        raise ConfigError("NYUv2 has no teacher maps (`dmd3c teach` reads KITTI): pass "
                         "loss.ssi=none to fine-tune on NYUv2")
    if cfg.loss.ssi != "none" and not cfg.teacher_maps:
        raise ConfigError(f"loss.ssi={cfg.loss.ssi} needs --teacher-maps (from `dmd3c teach`); "
                         f"pass loss.ssi=none to fine-tune on the GT alone")
    if cfg.model.init_weights not in ("auto", "ema", "net"):
        raise ConfigError(f"model.init_weights must be auto, ema or net; got "
                         f"{cfg.model.init_weights!r}")
    for h, w in [cfg.data.crop] + ([cfg.data.val_crop] if cfg.data.val_crop else []):
        if h % 32 or w % 32 or h < 32 or w < 32:
            raise ConfigError(f"crop {h}x{w}: both sides must be positive multiples of 32")


def resolve_config(kitti: str, teacher_maps: str, init: str, run_dir: Path,
                   config_file: Path | None, overrides: Sequence[str],
                   resume: bool, nyu: str = "") -> FinetuneConfig:
    """Defaults <- (the run's saved config when resuming) <- ``config_file`` <- overrides."""
    cfg = load_run_config(FinetuneConfig, run_dir, config_file, overrides, resume)
    cfg = replace(cfg, kitti=kitti or cfg.kitti, nyu=nyu or cfg.nyu,
                  teacher_maps=teacher_maps or cfg.teacher_maps,
                  model=replace(cfg.model, init=init or cfg.model.init))
    check_config(cfg)
    return cfg


# -- batches ----------------------------------------------------------------------------
@dataclass(frozen=True)
class KittiBatch(Batch):
    """A :class:`Batch` whose ``target`` is the sparse GT, plus ``teacher`` [B,1,h,w]
    (teacher output in its own space, 0 = invalid)."""

    teacher: Tensor | None = None


class _EpochDataset(torch.utils.data.Dataset):
    """KittiDataset indexed by (epoch, frame, batch index) so workers know the epoch."""

    def __init__(self, dataset: KittiDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item: tuple[int, int, int]) -> tuple[dict[str, object], int, int]:
        epoch, index, batch_index = item
        self.dataset.set_epoch(epoch)
        return self.dataset[index], epoch, batch_index


class StreamSampler(Sampler):
    """Infinite batches from ``start``: epoch e is a seeded permutation of the frames, each
    rank takes its share of every global batch (incomplete last batches are dropped)."""

    def __init__(self, num_frames: int, per_rank: int, seed: int, rank: int, world: int,
                 start: int) -> None:
        self.num_frames, self.per_rank, self.seed = num_frames, per_rank, seed
        self.rank, self.world, self.start = rank, world, start
        self.per_epoch = num_frames // (per_rank * world)
        if self.per_epoch == 0:
            raise ConfigError(f"{num_frames} training frames are fewer than one global batch "
                             f"({per_rank * world}); lower engine.batch_size")

    def __iter__(self) -> Iterator[list[tuple[int, int, int]]]:
        batch = self.start
        while True:
            epoch, within = divmod(batch, self.per_epoch)
            order = np.random.default_rng([self.seed, epoch]).permutation(self.num_frames)
            first = (within * self.world + self.rank) * self.per_rank
            yield [(epoch, int(i), batch) for i in order[first:first + self.per_rank]]
            batch += 1


def collate_kitti(items: Sequence[tuple[dict[str, object], int, int]]) -> KittiBatch:
    samples = [s for s, _, _ in items]

    def stack(name: str) -> Tensor:
        return torch.stack([s[name] for s in samples])  # type: ignore[misc]

    for s in samples:
        s.setdefault("teacher", torch.zeros_like(s["sparse"]))  # type: ignore[arg-type]
    return KittiBatch(rgb=stack("rgb"), sparse=stack("sparse"), target=stack("gt"),
                      K=stack("K"), keys=tuple(str(s["name"]) for s in samples),
                      epoch=items[0][1], index=items[0][2], teacher=stack("teacher"))


def kitti_loader(dataset: KittiDataset, sampler: StreamSampler, num_workers: int,
                 pin_memory: bool) -> DataLoader:
    """The training stream (spawned workers; each opens the teacher store itself)."""
    extra = {"multiprocessing_context": "spawn", "persistent_workers": True} if num_workers else {}
    return DataLoader(_EpochDataset(dataset), batch_sampler=sampler, num_workers=num_workers,
                      collate_fn=collate_kitti, pin_memory=pin_memory, **extra)


# -- loss ---------------------------------------------------------------------------------
def _ssi_kwargs(cfg: Stage2LossConfig) -> dict[str, object]:
    if cfg.ssi == "paper":
        return {"grad_weight": cfg.grad_weight}
    if cfg.ssi == "patch":
        return {"grad_weight": cfg.grad_weight, "patch_sizes": tuple(cfg.patch_sizes)}
    return {"num_crops": cfg.rpnl_crops, "min_frac": cfg.rpnl_min_frac,
            "max_frac": cfg.rpnl_max_frac}


def stage2_loss(preds: Sequence[Tensor], batch: KittiBatch, cfg: Stage2LossConfig,
                space: str) -> LossTerms:
    """Multi-scale supervised loss on GT pixels + weighted SSI of the final prediction."""
    total, terms = multiscale_loss(preds, batch.target, batch.target > 0, cfg.scale_weights,
                                   cfg.supervised)
    scalars = {f"gt_scale{i}": t.detach() for i, t in enumerate(terms)}
    if cfg.ssi != "none":
        ssi = ssi_loss(cfg.ssi)(preds[-1].float(), batch.teacher, batch.teacher > 0,
                                space=space, **_ssi_kwargs(cfg))
        total = total + cfg.ssi_weight * ssi
        scalars[f"ssi_{cfg.ssi}"] = ssi.detach()
    scalars["total"] = total.detach()
    return LossTerms(total, scalars)


def _nyu_validator(files: Sequence[Path]):
    from train.nyu import evaluate_nyu

    def validate(model: nn.Module, ctx: DistContext) -> dict[str, float]:
        shard = list(files[ctx.rank::ctx.world_size])
        metrics = evaluate_nyu(model, shard, ctx.device)["metrics"] if shard else None
        sums = torch.tensor([metrics["rmse"] * len(shard), metrics["rel"] * len(shard),  # type: ignore[index]
                             len(shard)] if metrics else [0.0, 0.0, 0.0], dtype=torch.float64)
        total = all_sum(ctx, sums.to(ctx.device)).cpu()
        count = max(float(total[2]), 1.0)
        return {"val/rmse_m": float(total[0]) / count, "val/rel": float(total[1]) / count}
    return validate


def build_nyu_recipe(cfg: FinetuneConfig, ctx: DistContext) -> Recipe:
    """NYUv2 recipe: the same model/engine, GT-supervised, 500 sparse points per sample."""
    from train.nyu import NyuDataset, find_nyu_files

    files = find_nyu_files(cfg.nyu, "train")
    dataset = NyuDataset(files, train=True, seed=cfg.engine.seed)
    per_rank = cfg.engine.batch_size // max(ctx.world_size, 1)

    def make_batches(start: int) -> DataLoader:
        sampler = StreamSampler(len(files), per_rank, cfg.engine.seed, ctx.rank,
                                ctx.world_size, start)
        return kitti_loader(dataset, sampler, cfg.data.num_workers,  # type: ignore[arg-type]
                            ctx.device.type == "cuda")

    try:
        val_files = find_nyu_files(cfg.nyu, "val")
    except FileNotFoundError:
        val_files = []
    limit = cfg.data.val_max_frames
    val_files = val_files[:limit] if limit else val_files
    validate = _nyu_validator(val_files) if val_files and cfg.data.val_split else None
    if ctx.is_main:
        print(f"dmd3c finetune: {len(files)} NYUv2 train files, loss {cfg.loss.supervised}; "
              f"validation {len(val_files)} files", file=sys.stderr)
    return Recipe(_model_factory(cfg.model), _loss_fn(cfg.loss, "depth"), make_batches,
                  validate, f"lower engine.batch_size (now {cfg.engine.batch_size})")


def _loss_fn(cfg: Stage2LossConfig, space: str):
    def loss_fn(model: nn.Module, batch: KittiBatch) -> tuple[LossTerms, Tensor]:
        preds = model(batch.rgb, batch.sparse, batch.K)
        return stage2_loss(preds, batch, cfg, space), preds[-1]
    return loss_fn


def _model_factory(cfg: Stage2ModelConfig):
    def build() -> nn.Module:
        model = BPNet(drop_path=cfg.drop_path)
        if cfg.init:
            if not Path(cfg.init).is_file():
                raise InputNotFoundError(f"--init checkpoint not found: {cfg.init}")
            load_checkpoint(cfg.init, model, key=_init_key(cfg))
        return model
    return build


def _init_key(cfg: Stage2ModelConfig) -> str:
    if cfg.init_weights != "auto":
        return cfg.init_weights
    from train.evaluate import checkpoint_keys

    return "ema" if "ema" in checkpoint_keys(cfg.init) else "net"


# -- validation -----------------------------------------------------------------------------
def _validator(frames: Sequence[KittiFrame], crop: tuple[int, int] | None):
    from train.evaluate import predict_depth

    def validate(model: nn.Module, ctx: DistContext) -> dict[str, float]:
        sums = torch.zeros(5, dtype=torch.float64)
        for frame in frames[ctx.rank::ctx.world_size]:
            sample = load_sample(frame)
            if crop is not None:
                sample = bottom_center_crop(sample, *crop)
            if not (sample.gt > 0).any() or not (sample.sparse > 0).any():
                continue
            pred = predict_depth(model, sample.rgb, sample.sparse, sample.K,  # type: ignore[arg-type]
                                 ctx.device)
            m = mean_kitti_metrics([kitti_metrics(as_submitted(pred), sample.gt)]).leaderboard()
            sums += torch.tensor([m["rmse_mm"], m["mae_mm"], m["irmse_1_per_km"],
                                  m["imae_1_per_km"], 1.0], dtype=torch.float64)
        total = all_sum(ctx, sums.to(ctx.device)).cpu()
        count = max(float(total[4]), 1.0)
        names = ("rmse_mm", "mae_mm", "irmse_1_per_km", "imae_1_per_km")
        return {f"val/{n}": float(total[i]) / count for i, n in enumerate(names)}
    return validate


def _validation_frames(cfg: FinetuneConfig) -> list[KittiFrame]:
    split = cfg.data.val_split
    if not split:
        return []
    try:
        frames = find_frames(cfg.kitti, parse_split(split))
    except FileNotFoundError:
        return []  # no validation data under this root: train without validation
    limit = cfg.data.val_max_frames
    return frames[:limit] if limit else frames


# -- recipe and run -------------------------------------------------------------------------
def teacher_space(cfg: FinetuneConfig) -> str:
    """The SSI space: configured, or from the teacher store's output kind."""
    if cfg.loss.ssi == "none" or cfg.loss.teacher_space != "auto":
        return cfg.loss.teacher_space if cfg.loss.teacher_space != "auto" else "disparity"
    return TeacherMaps(cfg.teacher_maps).space


def build_recipe(cfg: FinetuneConfig, ctx: DistContext) -> Recipe:
    """Stage-2 recipe: BP-Net from --init, the KITTI stream with teacher maps, the loss."""
    frames = find_frames(cfg.kitti, cfg.data.split)
    teacher_url = cfg.teacher_maps if cfg.loss.ssi != "none" else None
    if teacher_url:
        TeacherMaps(teacher_url).check_covers(frames)
    augment = KittiAugment(tuple(cfg.data.crop), cfg.data.top_min,  # type: ignore[arg-type]
                           cfg.data.flip_prob, cfg.data.jitter_std)
    dataset = KittiDataset(frames, True, augment, teacher_url, cfg.engine.seed)
    per_rank = cfg.engine.batch_size // max(ctx.world_size, 1)
    space = teacher_space(cfg)

    def make_batches(start: int) -> DataLoader:
        sampler = StreamSampler(len(frames), per_rank, cfg.engine.seed, ctx.rank,
                                ctx.world_size, start)
        return kitti_loader(dataset, sampler, cfg.data.num_workers, ctx.device.type == "cuda")

    val_frames = _validation_frames(cfg)
    validate = _validator(val_frames, cfg.data.val_crop) if val_frames else None
    if ctx.is_main:
        print(f"dmd3c finetune: {len(frames)} KITTI {cfg.data.split} frames, crop "
              f"{cfg.data.crop[0]}x{cfg.data.crop[1]}, loss {cfg.loss.supervised} + "
              f"{cfg.loss.ssi_weight} x SSI {cfg.loss.ssi} ({space}); validation "
              f"{len(val_frames)} {cfg.data.val_split or 'no'} frames; {ctx.world_size} "
              f"rank(s) x {per_rank} on {ctx.device}", file=sys.stderr)
    hint = (f"lower engine.batch_size (now {cfg.engine.batch_size}) or data.crop (now "
            f"{cfg.data.crop[0]}x{cfg.data.crop[1]})")
    return Recipe(_model_factory(cfg.model), _loss_fn(cfg.loss, space), make_batches, validate,
                  hint)


def finetune(run_dir: Path, cfg: FinetuneConfig, resume: bool = False) -> RunState:
    """Run (or resume) stage-2 fine-tuning into ``run_dir``; returns the final run state."""
    build = build_nyu_recipe if cfg.nyu else build_recipe
    return run_recipe(cfg, run_dir, resume, lambda ctx: build(cfg, ctx))
