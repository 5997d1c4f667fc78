"""Checks of config values when the config is resolved (``--print-config`` included), before
anything is written: each refusal is one :class:`ConfigError` line quoting the value as the
user typed it (``engine.steps=-5``), or as resolved when it came from a file or the defaults.

The engine's sections (``engine``, ``optim``, ``schedule``) are checked here for both stages;
each stage checks its own sections with the same :class:`Checks` (e.g. :func:`check_crop`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

from data_schemas.errors import ConfigError
from train.engine.config import PRECISIONS, EngineConfig, OptimConfig, ScheduleConfig

SIZE_MULTIPLE = 32
"""Crops are multiples of 32 pixels: BP-Net downsamples 5 times."""
MIN_COARSEST_VALUES = 4
"""Fewest values a BatchNorm channel may normalise at BP-Net's coarsest scale (1/32) in
training: per-rank batch x (h / 32) x (w / 32). With 2 values (1 sample of 32x64) the
gradient norm at initialisation is 1e13-1e18 (measured over seeds; 1e7-1e8 with 4 or more
values, the CSPN kernel normalisation's usual level, which the 0.1 clip absorbs) and
training diverges whatever the learning rate: BatchNorm over two values outputs +-1 and
amplifies the gradient by up to 1/sqrt(eps) wherever the two are close, layer after layer."""
ANNEALS = ("cos", "linear")


class Checks:
    """Refuses bad values with one line quoting what the user typed (from the overrides)."""

    def __init__(self, overrides: Sequence[str] = ()) -> None:
        self.typed = typed_values(overrides)

    def shown(self, key: str, value: object) -> str:
        """``key=value`` as typed on the command line, else as resolved."""
        if key in self.typed:
            return f"{key}={self.typed[key]}"
        if isinstance(value, tuple):
            value = list(value)
        return f"{key}={value}"

    def require(self, ok: bool, key: str, value: object, rule: str) -> None:
        if not ok:
            raise ConfigError(f"{self.shown(key, value)}: {rule}")

    def integer(self, key: str, value: int, low: int) -> None:
        self.require(value >= low, key, value, f"must be an integer >= {low}")

    def number(self, key: str, value: float, low: float, high: float = math.inf,
               low_open: bool = False, high_open: bool = False) -> None:
        """A finite number in the interval ``[low, high]`` (ends open when asked)."""
        above = value > low if low_open else value >= low
        below = value < high if high_open else value <= high
        ok = math.isfinite(value) and above and below
        span = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        rule = (f"must be a finite number > {low:g}" if low_open else
                f"must be a finite number >= {low:g}") if math.isinf(high) else \
            f"must be a finite number in {span}"
        self.require(ok, key, value, rule)

    def choice(self, key: str, value: str, choices: Sequence[str]) -> None:
        self.require(value in choices, key, value, f"must be one of {', '.join(choices)}")


def typed_values(overrides: Sequence[str]) -> dict[str, str]:
    """``["optim.lr=-1", ...]`` -> ``{"optim.lr": "-1"}`` (the last one of a key wins)."""
    typed: dict[str, str] = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if sep:
            typed[key.strip().lstrip("+~")] = value.strip()
    return typed


def world_size_from_env() -> int:
    """Ranks of the run as torchrun announces them (1 outside torchrun)."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def check_engine_section(cfg: EngineConfig, checks: Checks, world_size: int = 1) -> None:
    """Every ``engine.*`` value."""
    checks.integer("engine.steps", cfg.steps, 0)
    checks.integer("engine.epochs", cfg.epochs, 0)
    checks.require(cfg.steps > 0 or cfg.epochs > 0, "engine.steps", cfg.steps,
                   f"set engine.steps >= 1, or engine.steps=0 and engine.epochs >= 1 (now "
                   f"engine.epochs={cfg.epochs})")
    checks.integer("engine.batch_size", cfg.batch_size, 1)
    checks.require(cfg.batch_size % world_size == 0, "engine.batch_size", cfg.batch_size,
                   f"must be a multiple of the {world_size} ranks (split evenly over them)")
    checks.choice("engine.precision", cfg.precision, PRECISIONS)
    checks.number("engine.ema_decay", cfg.ema_decay, 0.0, 1.0, high_open=True)
    for name in ("log_every",):
        checks.integer(f"engine.{name}", getattr(cfg, name), 1)
    for name in ("image_every", "checkpoint_every", "keep_every", "val_every", "val_from_epoch",
                 "seed"):
        checks.integer(f"engine.{name}", getattr(cfg, name), 0)


def check_engine(cfg: EngineConfig, world_size: int) -> int:
    """Validate ``cfg`` for ``world_size`` ranks; returns the per-rank batch size."""
    check_engine_section(cfg, Checks(), world_size)
    return cfg.batch_size // world_size


def check_optim_section(cfg: OptimConfig, checks: Checks) -> None:
    """Every ``optim.*`` value."""
    checks.number("optim.lr", cfg.lr, 0.0, low_open=True)
    checks.number("optim.weight_decay", cfg.weight_decay, 0.0)
    for i, beta in enumerate(cfg.betas):
        checks.number(f"optim.betas[{i}]", beta, 0.0, 1.0, high_open=True)
    checks.number("optim.eps", cfg.eps, 0.0, low_open=True)
    checks.number("optim.grad_clip", cfg.grad_clip, 0.0)


def check_schedule_section(cfg: ScheduleConfig, checks: Checks) -> None:
    """Every ``schedule.*`` value."""
    checks.number("schedule.pct_start", cfg.pct_start, 0.0, 1.0, low_open=True, high_open=True)
    checks.number("schedule.div_factor", cfg.div_factor, 0.0, low_open=True)
    checks.number("schedule.final_div_factor", cfg.final_div_factor, 0.0, low_open=True)
    checks.choice("schedule.anneal", cfg.anneal, ANNEALS)
    checks.number("schedule.base_momentum", cfg.base_momentum, 0.0, 1.0, high_open=True)
    checks.number("schedule.max_momentum", cfg.max_momentum, 0.0, 1.0, high_open=True)
    checks.number("schedule.noise_pct", cfg.noise_pct, 0.0, 1.0, high_open=True)


def check_crop(crop: tuple[int, int], checks: Checks, key: str = "data.crop",
               per_rank_batch: int | None = None) -> tuple[int, int]:
    """A training crop: two positive multiples of 32 and, given the per-rank batch, enough
    coarsest-scale values for BatchNorm (:data:`MIN_COARSEST_VALUES`)."""
    checks.require(len(crop) == 2, key, crop, "must be [height, width]")
    h, w = (int(v) for v in crop)
    checks.require(h >= SIZE_MULTIPLE and w >= SIZE_MULTIPLE and not h % SIZE_MULTIPLE
                   and not w % SIZE_MULTIPLE, key, crop,
                   f"both sides must be positive multiples of {SIZE_MULTIPLE} (BP-Net "
                   f"downsamples 5 times)")
    if per_rank_batch is not None:
        checks.require(coarsest_values((h, w), per_rank_batch) >= MIN_COARSEST_VALUES, key,
                       crop, small_crop_rule((h, w), per_rank_batch))
    return h, w


def coarsest_values(crop: tuple[int, int], per_rank_batch: int) -> int:
    """Values each BatchNorm channel normalises at BP-Net's coarsest scale in training."""
    return per_rank_batch * (crop[0] // SIZE_MULTIPLE) * (crop[1] // SIZE_MULTIPLE)


def smallest_crops(per_rank_batch: int, height: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """The smallest crops that train with ``per_rank_batch`` samples: (same height, wider)
    and the smallest square-ish one."""
    cells = math.ceil(MIN_COARSEST_VALUES / per_rank_batch)
    rows = max(1, height // SIZE_MULTIPLE)
    wide = (rows * SIZE_MULTIPLE, math.ceil(cells / rows) * SIZE_MULTIPLE)
    side = math.isqrt(cells - 1) + 1
    square = (math.ceil(cells / side) * SIZE_MULTIPLE, side * SIZE_MULTIPLE)
    return wide, square


def small_crop_rule(crop: tuple[int, int], per_rank_batch: int) -> str:
    h, w = crop[0] // SIZE_MULTIPLE, crop[1] // SIZE_MULTIPLE
    wide, square = smallest_crops(per_rank_batch, crop[0])
    options = sorted({wide, square}, key=lambda hw: (hw[0] * hw[1], hw))
    shown = " or ".join(f"[{a},{b}]" for a, b in options)
    return (f"too small to train: with {per_rank_batch} sample(s) per rank BP-Net's coarsest "
            f"scale (1/32) is {h}x{w} pixels, so its BatchNorm layers normalise "
            f"{per_rank_batch * h * w} value(s) per channel and the gradients explode (norm "
            f"1e13 and more at initialisation, whatever optim.lr); it needs at least "
            f"{MIN_COARSEST_VALUES}: the smallest crops are {shown} (or more samples per rank, "
            f"engine.batch_size)")
