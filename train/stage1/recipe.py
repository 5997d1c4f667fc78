"""Stage-1 recipe: distil the teacher's dense depth into BP-Net on a Zarr sample store.

``dmd3c pretrain --store STORE --out RUN_DIR [--config FILE] [key=value ...]`` resolves a
:class:`PretrainConfig` (defaults = the DMD3C paper recipe, see ``configs/pretrain.yaml``),
writes it to ``RUN_DIR/config.yaml`` and trains with :mod:`train.engine`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import Tensor, nn

from data_schemas.errors import ConfigError
from train.data import (
    AugmentConfig,
    Batch,
    StoreIndex,
    StoreStream,
    StreamConfig,
    StreamPlan,
    parse_crop,
    train_loader,
    val_batches,
)
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
from train.losses import LossConfig, LossTerms, distillation_loss
from train.model import BPNet, load_checkpoint


@dataclass(frozen=True)
class DataConfig:
    """Reading and augmenting the store."""

    crop: tuple[int, int] | None = None
    """Training crop [h, w], multiples of 32; null = 256x1216 clipped to the canvas."""
    val_shards: int = 1
    """The last N committed shards are held out for validation (0 = no validation)."""
    val_max_samples: int = 256
    """Validate on at most this many held-out samples (0 = all)."""
    shuffle_shards: int = 4
    """Shuffle buffer: samples are mixed across this many consecutive (shuffled) shards;
    each DataLoader worker keeps this many decoded shards in memory."""
    num_workers: int = 4
    """DataLoader worker processes per rank (spawned; 0 = read in the training process).
    Part of the data order: keep it when resuming for an exact continuation."""
    prefetch_factor: int = 2
    """Batches each worker prepares ahead."""
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass(frozen=True)
class ModelConfig:
    """BP-Net construction."""

    drop_path: float = 0.1
    """Stochastic depth rate of BP-Net's blocks."""
    init: str = ""
    """Optional checkpoint (released BP-Net/DMD3C or ours) to start from; '' = from scratch."""


@dataclass(frozen=True)
class PretrainConfig:
    """Stage-1 distillation pre-training (defaults: DMD3C's recipe)."""

    store: str = ""
    """Sample store URL (set by --store)."""
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)


def resolve_config(store: str, run_dir: Path, config_file: Path | None,
                   overrides: Sequence[str], resume: bool) -> PretrainConfig:
    """Defaults <- (the run's saved config when resuming) <- ``config_file`` <- overrides."""
    cfg = load_run_config(PretrainConfig, run_dir, config_file, overrides, resume)
    if resume and cfg.store and StoreIndex.open(store).url != StoreIndex.open(cfg.store).url:
        raise ConfigError(f"{run_dir} was trained on {cfg.store}, not {store}: resume with the "
                         f"same --store")
    return replace(cfg, store=store)


def _loss_fn(cfg: LossConfig):
    def loss_fn(model: nn.Module, batch: Batch) -> tuple[LossTerms, Tensor]:
        preds = model(batch.rgb, batch.sparse, batch.K)
        return distillation_loss(preds, batch.target, batch.sparse, cfg), preds[-1]
    return loss_fn


def _model_factory(cfg: ModelConfig):
    def build() -> nn.Module:
        model = BPNet(drop_path=cfg.drop_path)
        if cfg.init:
            load_checkpoint(cfg.init, model)
        return model
    return build


def _validator(index: StoreIndex, crop: tuple[int, int], batch_size: int, max_samples: int):
    def validate(model: nn.Module, ctx: DistContext) -> dict[str, float]:
        sums = torch.zeros(3, dtype=torch.float64, device=ctx.device)
        for batch in val_batches(index, crop, batch_size, ctx.rank, ctx.world_size,
                                 max_samples):
            batch = batch.to(ctx.device)
            pred = model(batch.rgb, batch.sparse, batch.K)[-1].float()
            sums += per_image_errors(pred, batch.target)
        total = all_sum(ctx, sums)
        count = max(float(total[2]), 1.0)
        return {"val/rmse_mm": float(total[0]) / count * 1000.0,
                "val/mae_mm": float(total[1]) / count * 1000.0}
    return validate


def per_image_errors(pred: Tensor, target: Tensor) -> Tensor:
    """[sum of per-image RMSE (m), sum of per-image MAE (m), images] over valid target pixels."""
    valid = (target > 0).flatten(1)
    diff = (pred - target).flatten(1).double() * valid
    count = valid.sum(1).clamp(min=1)
    rmse = (diff.square().sum(1) / count).sqrt()
    mae = diff.abs().sum(1) / count
    has = valid.any(1)
    return torch.stack([rmse[has].sum(), mae[has].sum(), has.sum().double()])


def build_recipe(cfg: PretrainConfig, index: StoreIndex, ctx: DistContext,
                 build_model: Callable[[], nn.Module] | None = None) -> Recipe:
    """The stage-1 recipe for the engine: BP-Net (or ``build_model``, e.g. a test network
    with BP-Net's interface), the store stream, the loss, validation."""
    crop = parse_crop(cfg.data.crop, (index.height, index.width))
    per_rank = cfg.engine.batch_size // max(ctx.world_size, 1)
    train_index, val_index = index.split(cfg.data.val_shards)
    plan = StreamPlan(train_index.shards, train_index.counts, per_rank, cfg.engine.seed,
                      cfg.data.shuffle_shards, ctx.rank, ctx.world_size,
                      max(1, cfg.data.num_workers))
    stream_cfg = StreamConfig(crop, cfg.data.augment, cfg.engine.seed)

    def make_batches(start: int) -> torch.utils.data.DataLoader:
        stream = StoreStream(train_index, plan, stream_cfg, start)
        return train_loader(stream, cfg.data.num_workers, ctx.device.type == "cuda",
                            cfg.data.prefetch_factor)

    validate = (_validator(val_index, crop, per_rank, cfg.data.val_max_samples)
                if val_index is not None else None)
    hint = (f"lower engine.batch_size (now {cfg.engine.batch_size}) or data.crop (now "
            f"{crop[0]}x{crop[1]}), e.g. data.crop=[{max(32, crop[0] // 2 // 32 * 32)},"
            f"{crop[1]}]")
    _describe(ctx, index, train_index, val_index, crop, plan)
    return Recipe(build_model or _model_factory(cfg.model), _loss_fn(cfg.loss), make_batches,
                  validate, hint)


def _describe(ctx: DistContext, index: StoreIndex, train_index: StoreIndex,
              val_index: StoreIndex | None, crop: tuple[int, int], plan: StreamPlan) -> None:
    if not ctx.is_main:
        return
    val = f"{val_index.num_samples} samples in {len(val_index.shards)} shards" if val_index \
        else "none (single shard or data.val_shards=0)"
    print(f"dmd3c pretrain: store {index.url} ({index.height}x{index.width}); train "
          f"{train_index.num_samples} samples in {len(train_index.shards)} shards; validation "
          f"{val}; crop {crop[0]}x{crop[1]}; {ctx.world_size} rank(s) x {plan.batch_size} "
          f"samples on {ctx.device}; {plan.batches_per_epoch} steps per epoch", file=sys.stderr)


def pretrain(store: str, run_dir: Path, cfg: PretrainConfig, resume: bool = False,
             build_model: Callable[[], nn.Module] | None = None) -> RunState:
    """Run (or resume) stage-1 training into ``run_dir``; returns the final run state."""
    index = StoreIndex.open(store)
    return run_recipe(cfg, run_dir, resume,
                      lambda ctx: build_recipe(cfg, index, ctx, build_model))
