"""Typed configuration of the training engine (shared by pre-training and fine-tuning)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar, cast

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from data_schemas.errors import ConfigError, InputNotFoundError

PRECISIONS = ("bf16", "fp16", "fp32")
T = TypeVar("T")


@dataclass(frozen=True)
class OptimConfig:
    """AdamW; the learning rate follows :class:`ScheduleConfig` around the peak ``lr``."""

    lr: float = 1e-3
    """Peak learning rate of the one-cycle schedule (BP-Net: 1e-3)."""
    weight_decay: float = 0.05
    """AdamW decoupled weight decay (DMD3C / BP-Net: 0.05)."""
    no_decay_1d: bool = True
    """No weight decay on 1-D parameters (biases, norm weights), as the release's
    ``utils.config_param`` decides (``train.engine.param_groups``); false = decay on all."""
    betas: tuple[float, float] = (0.9, 0.999)
    """AdamW betas; beta1 is overridden by the momentum cycle when it is on."""
    eps: float = 1e-8
    """AdamW epsilon."""
    grad_clip: float = 0.1
    """Max global L2 norm of the gradients (DMD3C: 0.1); 0 = no clipping."""


@dataclass(frozen=True)
class ScheduleConfig:
    """One-cycle schedule over ``engine.steps``: torch ``OneCycleLR`` semantics, BP-Net's values."""

    pct_start: float = 0.1
    """Fraction of the steps spent warming up to the peak lr."""
    div_factor: float = 40.0
    """Initial lr = peak / div_factor."""
    final_div_factor: float = 0.1
    """Final lr = initial lr / final_div_factor (BP-Net ends at 10x the initial lr)."""
    anneal: str = "cos"
    """"cos" or "linear" annealing inside each phase."""
    cycle_momentum: bool = True
    """Cycle AdamW's beta1 inversely to the lr between the two momenta below."""
    base_momentum: float = 0.85
    """beta1 at the peak lr."""
    max_momentum: float = 0.95
    """beta1 at the start and the end."""
    noise_pct: float = 0.1
    """lr noise (BP-Net's ``schedulers.NoiseLR``): lr * (1 + noise_pct * n), n in [-1, 1)
    drawn per step from a generator seeded with the step number; 0 = off."""


@dataclass(frozen=True)
class EngineConfig:
    """The training loop: length, batch, precision, EMA, logging, checkpoints, validation."""

    steps: int = 600_000
    """Optimizer steps of the whole run (DMD3C stage 1: 600k); 0 = ``epochs`` epochs."""
    epochs: int = 0
    """Run length in epochs of the training stream, used when ``steps`` is 0 (steps =
    epochs x batches per epoch, as the release's ``nepoch``)."""
    batch_size: int = 16
    """Global batch size, split evenly over the DDP ranks (DMD3C: 16 on 4 GPUs)."""
    precision: str = "bf16"
    """Autocast on CUDA: "bf16", "fp16" (with a GradScaler) or "fp32". CPU always runs fp32."""
    device: str = "auto"
    """"auto" (CUDA when available), "cpu", "cuda" or "cuda:N" (under torchrun each rank
    uses its local GPU)."""
    ema_decay: float = 0.9999
    """Decay of the exponential moving average of the weights (0 = no EMA)."""
    sync_bn: bool = False
    """Convert BatchNorm to SyncBatchNorm under multi-GPU DDP (one process: plain BatchNorm
    over the whole batch, which SyncBN over the ranks' shares equals)."""
    find_unused_parameters: bool = False
    """Passed to DistributedDataParallel."""
    seed: int = 0
    """Seed of model init, data order, augmentation and lr noise."""
    log_every: int = 20
    """Steps between TensorBoard scalar logs (and tqdm postfix updates)."""
    image_every: int = 1000
    """Steps between TensorBoard image panels (rgb | sparse | prediction | target); 0 = off."""
    checkpoint_every: int = 5000
    """Steps between checkpoints (``last.pt``, always also written at the end); 0 = end only."""
    keep_every: int = 0
    """Also keep ``checkpoints/step-NNNNNNN.pt`` every this many steps (0 = only ``last.pt``)."""
    save_weights: bool = True
    """With every checkpoint also write ``weights.pt``: the weights alone (the EMA when there
    is one) in the released ``{'net': ...}`` format, ~0.36 GB for BP-Net beside ``last.pt``'s
    ~1.4 GB resume state."""
    val_every: int = 5000
    """Steps between validations on the held-out data (also run at the end); 0 = end only."""
    val_from_epoch: int = 0
    """Validate every ``val_every`` steps only from this (0-based) epoch on (the release:
    ``test_iter`` from ``test_epoch`` 25)."""
    val_each_epoch: bool = False
    """Also validate at the end of every epoch (the release)."""
    progress: bool = True
    """Show a tqdm progress bar (rank 0)."""


def load_structured(schema: type[T], files: Sequence[Path], overrides: Sequence[str],
                    base: str = "", preset: T | None = None) -> T:
    """``schema`` defaults (or the ``preset`` instance of it) <- ``base`` YAML text <- each YAML
    file <- ``key=value`` overrides.

    Unknown keys and ill-typed values are a one-line :class:`ConfigError` naming the key.
    """
    try:
        merged = OmegaConf.structured(preset if preset is not None else schema)
        layers = [OmegaConf.create(base)] if base else []
        layers += [OmegaConf.load(_existing(path)) for path in files]
        layers.append(OmegaConf.from_dotlist(list(overrides)))
        for layer in layers:
            merged = OmegaConf.merge(merged, layer)
        return cast(T, OmegaConf.to_object(merged))
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None)
        first = str(err).splitlines()[0]
        raise ConfigError(f"config: {first}" + (f" (key {key})" if key else "")) from None


def _existing(path: Path) -> Path:
    if not Path(path).is_file():
        raise InputNotFoundError(f"{path}: no such config file")
    return Path(path)


def to_yaml(cfg: object) -> str:
    """The resolved config as plain YAML (no OmegaConf tags)."""
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))
