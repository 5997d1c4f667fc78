"""Precomputed one-cycle schedule of the learning rate and AdamW's beta1.

The table is a pure function of the config and the number of steps, so a resumed run
uses exactly the values of an uninterrupted one and the schedule is unit-testable
against ``torch.optim.lr_scheduler.OneCycleLR``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from data_schemas.errors import ConfigError
from train.engine.config import ScheduleConfig

ANNEALS = ("cos", "linear")


@dataclass(frozen=True)
class ScheduleTable:
    """``lr[s]`` and ``beta1[s]`` (NaN when momentum is not cycled) used by optimizer step s."""

    lr: np.ndarray
    beta1: np.ndarray

    def __len__(self) -> int:
        return len(self.lr)


def _anneal(kind: str, start: float, end: float, pct: np.ndarray) -> np.ndarray:
    if kind == "cos":
        return end + (start - end) / 2.0 * (np.cos(np.pi * pct) + 1)
    return (end - start) * pct + start


def _progress(steps: np.ndarray, begin: float, end: float) -> np.ndarray:
    span = end - begin
    return (steps - begin) / span if span > 0 else np.ones_like(steps)


def one_cycle_curve(total_steps: int, start: float, peak: float, end: float,
                    pct_start: float, anneal: str) -> np.ndarray:
    """torch ``OneCycleLR``'s two-phase curve start -> peak -> end over ``total_steps``."""
    if anneal not in ANNEALS:
        raise ConfigError(f"schedule.anneal must be one of {', '.join(ANNEALS)}; got {anneal!r}")
    if total_steps < 1 or not 0.0 < pct_start < 1.0:
        raise ConfigError(f"need total_steps >= 1 and 0 < pct_start < 1, got {total_steps}, "
                         f"{pct_start}")
    steps = np.arange(total_steps, dtype=np.float64)
    up_end, down_end = float(pct_start * total_steps) - 1, float(total_steps - 1)
    up = _anneal(anneal, start, peak, _progress(steps, 0.0, up_end))
    down = _anneal(anneal, peak, end, _progress(steps, up_end, down_end))
    return np.where(steps <= up_end, up, down)


def lr_noise(total_steps: int, noise_seed: int = 0) -> np.ndarray:
    """BP-Net's lr noise in [-1, 1) of steps 0 .. total_steps-1, as ``schedulers.NoiseLR``
    (``Sharpiless/DMD3C``) draws it: for step s, a fresh ``torch.Generator`` seeded with
    ``noise_seed + s`` gives ``2 * torch.rand(1) - 1`` (the release never sets ``noise_seed``:
    0). The same sequence in every run, whatever the training seed."""
    generator = torch.Generator()
    noise = np.empty(total_steps, dtype=np.float64)
    for step in range(total_steps):
        generator.manual_seed(noise_seed + step)
        noise[step] = 2 * torch.rand(1, generator=generator).item() - 1
    return noise


def one_cycle(total_steps: int, peak_lr: float, cfg: ScheduleConfig,
              noise_seed: int = 0) -> ScheduleTable:
    """The run's lr (with BP-Net's multiplicative noise, ``lr * (1 + noise_pct * noise)``,
    see :func:`lr_noise`) and beta1 tables (the noise touches the lr only, as in the
    release)."""
    initial = peak_lr / cfg.div_factor
    lr = one_cycle_curve(total_steps, initial, peak_lr, initial / cfg.final_div_factor,
                         cfg.pct_start, cfg.anneal)
    if cfg.noise_pct > 0:
        lr = lr * (1 + cfg.noise_pct * lr_noise(total_steps, noise_seed))
    beta1 = np.full(total_steps, np.nan)
    if cfg.cycle_momentum:
        beta1 = one_cycle_curve(total_steps, cfg.max_momentum, cfg.base_momentum,
                                cfg.max_momentum, cfg.pct_start, cfg.anneal)
    return ScheduleTable(lr, beta1)
