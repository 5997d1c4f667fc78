"""Stage-1 configuration: typed defaults (DMD3C's recipe), written out in
``configs/pretrain.yaml`` (a test keeps the two equal)."""

from __future__ import annotations

from dataclasses import dataclass, field

from train.datasets.augment import AugmentConfig
from train.engine import EngineConfig, OptimConfig, ScheduleConfig
from train.losses.pixel import SCALE_WEIGHTS


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
    """Optional checkpoint (released BP-Net/DMD3C or ours, its ``net`` weights) to start
    from; '' = from scratch."""


@dataclass(frozen=True)
class LossConfig:
    """Stage-1 loss: multi-scale ``kind`` loss to the teacher depth (+ sparse consistency)."""

    kind: str = "l1"
    """Pixel loss: "l1" (the paper's), "l2" (BP-Net's MSE) or "l1+l2"."""
    scale_weights: tuple[float, ...] = SCALE_WEIGHTS
    """Weights of BP-Net's six outputs, coarsest first."""
    sparse_weight: float = 0.0
    """Weight of the L1 between the final prediction and the sparse input (0 = off)."""


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
