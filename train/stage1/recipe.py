"""Stage-1 recipe: distil the teacher's dense depth into BP-Net on a Zarr sample store.

``dmd3c pretrain --store STORE --out RUN_DIR [--config FILE] [key=value ...]`` resolves a
:class:`~train.stage1.config.PretrainConfig` (defaults = the DMD3C paper recipe, see
``configs/pretrain.yaml``), writes it to ``RUN_DIR/config.yaml`` and trains with
:mod:`train.engine`. The data is the store stream of :mod:`train.datasets.store`; the loss
is BP-Net's multi-scale loss to the teacher depth (:mod:`train.losses.pixel`):

    loss = sum_i w_i * kind(pred_i, teacher depth, teacher depth > 0)
         + sparse_weight * L1(pred_final, sparse input, sparse > 0)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import torch
from torch import Tensor, nn

from data_schemas.errors import ConfigError
from train.datasets import (
    Batch,
    StoreIndex,
    StoreStream,
    StreamConfig,
    StreamPlan,
    parse_crop,
    train_loader,
    val_batches,
)
from train.datasets.panel import batch_panel
from train.engine import DistContext, LossTerms, Recipe, RunState, load_run_config, run_recipe
from train.engine.distributed import all_sum
from train.engine.recipe import LossFn, ValidateFn
from train.losses.pixel import multiscale_loss, sparse_consistency, valid_mask
from train.model import BPNet, load_checkpoint
from train.stage1.config import LossConfig, ModelConfig, PretrainConfig

logger = logging.getLogger(__name__)


def resolve_config(store: str, run_dir: Path, config_file: Path | None,
                   overrides: Sequence[str], resume: bool) -> PretrainConfig:
    """Defaults <- (the run's saved config when resuming) <- ``config_file`` <- overrides."""
    cfg = load_run_config(PretrainConfig, run_dir, config_file, overrides, resume)
    if resume and cfg.store and StoreIndex.open(store).url != StoreIndex.open(cfg.store).url:
        raise ConfigError(f"{run_dir} was trained on {cfg.store}, not {store}: resume with the "
                          f"same --store")
    return replace(cfg, store=store)


def distillation_loss(
    preds: Sequence[Tensor], target: Tensor, sparse: Tensor, cfg: LossConfig
) -> LossTerms:
    """Stage-1 loss of BP-Net's outputs against the teacher depth ``target``."""
    valid = valid_mask(target)
    total, terms = multiscale_loss(preds, target, valid, cfg.scale_weights, cfg.kind)
    scalars = {f"scale{i}": t.detach() for i, t in enumerate(terms)}
    if cfg.sparse_weight > 0:
        consistency = sparse_consistency(preds[-1], sparse)
        total = total + cfg.sparse_weight * consistency
        scalars["sparse_consistency"] = consistency.detach()
    scalars["total"] = total.detach()
    return LossTerms(total, scalars)


def _loss_fn(cfg: LossConfig) -> LossFn[Batch]:
    def loss_fn(model: nn.Module, batch: Batch) -> tuple[LossTerms, Tensor]:
        preds = model(batch.rgb, batch.sparse, batch.K)
        return distillation_loss(preds, batch.target, batch.sparse, cfg), preds[-1]
    return loss_fn


def _model_factory(cfg: ModelConfig) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        model = BPNet(drop_path=cfg.drop_path)
        if cfg.init:
            load_checkpoint(cfg.init, model)
        return model
    return build


def _validator(index: StoreIndex, crop: tuple[int, int], batch_size: int,
               max_samples: int) -> ValidateFn:
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
                 build_model: Callable[[], nn.Module] | None = None) -> Recipe[Batch]:
    """The stage-1 recipe for the engine: BP-Net (or ``build_model``, e.g. a test network
    with BP-Net's interface), the store stream, the loss, validation."""
    crop = parse_crop(cfg.data.crop, (index.height, index.width))
    per_rank = cfg.engine.batch_size // max(ctx.world_size, 1)
    train_index, val_index = index.split(cfg.data.val_shards)
    plan = StreamPlan(train_index.shards, train_index.counts, per_rank, cfg.engine.seed,
                      cfg.data.shuffle_shards, ctx.rank, ctx.world_size,
                      max(1, cfg.data.num_workers))
    stream_cfg = StreamConfig(crop, cfg.data.augment, cfg.engine.seed)

    def make_batches(start: int) -> torch.utils.data.DataLoader[Batch]:
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
                  validate, hint, batch_panel)


def _describe(ctx: DistContext, index: StoreIndex, train_index: StoreIndex,
              val_index: StoreIndex | None, crop: tuple[int, int], plan: StreamPlan) -> None:
    if not ctx.is_main:
        return
    val = f"{val_index.num_samples} samples in {len(val_index.shards)} shards" if val_index \
        else "none (single shard or data.val_shards=0)"
    logger.info("store %s (%dx%d); train %d samples in %d shards; validation %s; crop %dx%d; "
                "%d rank(s) x %d samples on %s; %d steps per epoch", index.url, index.height,
                index.width, train_index.num_samples, len(train_index.shards), val, crop[0],
                crop[1], ctx.world_size, plan.batch_size, ctx.device, plan.batches_per_epoch)


def pretrain(store: str, run_dir: Path, cfg: PretrainConfig, resume: bool = False,
             build_model: Callable[[], nn.Module] | None = None) -> RunState:
    """Run (or resume) stage-1 training into ``run_dir``; returns the final run state."""
    index = StoreIndex.open(store)
    return run_recipe(cfg, run_dir, resume,
                      lambda ctx: build_recipe(cfg, index, ctx, build_model))
