"""Stage-2 configuration: typed defaults (BP-Net's KITTI recipe + DMD3C's SSI term), written
out in ``configs/finetune.yaml`` (a test keeps the two equal), and their checks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from data_schemas.errors import ConfigError
from data_schemas.geometry import parse_depth_space
from train.datasets.augment import AugmentConfig, check_crop_size
from train.datasets.kitti.dataset import DEFAULT_CROP, DEFAULT_TOP_MIN
from train.datasets.kitti.layout import parse_split
from train.engine import EngineConfig, OptimConfig, ScheduleConfig, load_run_config
from train.losses.pixel import SCALE_WEIGHTS, parse_loss_kind
from train.losses.ssi import SSI_LOSS_NAMES
from train.model.checkpoint import WEIGHTS

SSI_CHOICES: tuple[str, ...] = (*SSI_LOSS_NAMES, "none")


@dataclass(frozen=True)
class KittiDataConfig:
    """KITTI frames for training and validation."""

    split: str = "train"
    """Training split: train, val or raw (maps inside raw/<date>/<drive>/proj_depth)."""
    crop: tuple[int, int] = DEFAULT_CROP
    """Training crop [h, w] (multiples of 32), from the bottom at a random top offset."""
    top_min: int = DEFAULT_TOP_MIN
    """Lowest top offset of the training crop (BP-Net: 50 px; skips LiDAR-free rows)."""
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    """Flip of all maps and K, PCA colour jitter of rgb (NYUv2: the flip only)."""
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
    """SSI variant: paper, rpnl, patch (train.losses.ssi) or none (GT only, BP-Net)."""
    ssi_weight: float = 0.1
    """Weight of the SSI term (the released code's lambda_metric is 0.1; our SSI terms are
    dimensionless, see train.losses.ssi)."""
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
    of KITTI (GT loss only: loss.ssi=none; the 228x304 crop padded to 256x320, flips only:
    data.crop, data.top_min and data.augment.jitter_std do not apply)."""
    teacher_maps: str = ""
    """Teacher maps of the KITTI images from `dmd3c teach` (set by --teacher-maps)."""
    data: KittiDataConfig = field(default_factory=KittiDataConfig)
    loss: Stage2LossConfig = field(default_factory=Stage2LossConfig)
    model: Stage2ModelConfig = field(default_factory=Stage2ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    engine: EngineConfig = field(default_factory=_finetune_engine)


def _check_loss(cfg: FinetuneConfig) -> None:
    loss = cfg.loss
    parse_loss_kind(loss.supervised)
    if loss.ssi not in SSI_CHOICES:
        raise ConfigError(f"loss.ssi must be one of {', '.join(SSI_CHOICES)}; got {loss.ssi!r}")
    if loss.teacher_space != "auto":
        parse_depth_space(loss.teacher_space)
    too_big = [s for s in loss.patch_sizes if s > min(cfg.data.crop)] if loss.ssi == "patch" \
        else []
    if too_big:
        raise ConfigError(f"loss.patch_sizes {too_big} do not fit the training crop "
                          f"{cfg.data.crop[0]}x{cfg.data.crop[1]}")
    if not 0 < loss.rpnl_min_frac <= loss.rpnl_max_frac <= 1:
        raise ConfigError(f"loss.rpnl_min_frac and loss.rpnl_max_frac must satisfy 0 < min <= "
                          f"max <= 1; got {loss.rpnl_min_frac}, {loss.rpnl_max_frac}")
    if cfg.nyu and loss.ssi != "none":
        raise ConfigError("NYUv2 has no teacher maps (`dmd3c teach` reads KITTI): pass "
                          "loss.ssi=none to fine-tune on NYUv2")
    if loss.ssi != "none" and not cfg.teacher_maps:
        raise ConfigError(f"loss.ssi={loss.ssi} needs --teacher-maps (from `dmd3c teach`); "
                          f"pass loss.ssi=none to fine-tune on the GT alone")


def check_config(cfg: FinetuneConfig) -> None:
    """One-line ConfigErrors for invalid or inconsistent settings."""
    parse_split(cfg.data.split)
    _check_loss(cfg)
    if cfg.model.init_weights not in WEIGHTS:
        raise ConfigError(f"model.init_weights must be one of {', '.join(WEIGHTS)}; got "
                          f"{cfg.model.init_weights!r}")
    for crop in [cfg.data.crop] + ([cfg.data.val_crop] if cfg.data.val_crop else []):
        check_crop_size(crop)


def resolve_config(kitti: str, teacher_maps: str, init: str, run_dir: Path,
                   config_file: Path | None, overrides: Sequence[str],
                   resume: bool, nyu: str = "") -> FinetuneConfig:
    """Defaults <- (the run's saved config when resuming) <- ``config_file`` <- overrides
    <- the path options (``--kitti`` etc.; empty = not given)."""
    cfg = load_run_config(FinetuneConfig, run_dir, config_file, overrides, resume)
    cfg = replace(cfg, kitti=kitti or cfg.kitti, nyu=nyu or cfg.nyu,
                  teacher_maps=teacher_maps or cfg.teacher_maps,
                  model=replace(cfg.model, init=init or cfg.model.init))
    check_config(cfg)
    return cfg
