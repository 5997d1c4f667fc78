"""The precomputed one-cycle table equals torch's OneCycleLR."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from train.engine.config import ScheduleConfig
from train.engine.schedule import one_cycle, one_cycle_curve


def torch_one_cycle(total: int, peak: float, pct: float, div: float, final_div: float,
                    anneal: str) -> tuple[list[float], list[float]]:
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([param], lr=peak)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=peak, total_steps=total, pct_start=pct, div_factor=div,
        final_div_factor=final_div, anneal_strategy=anneal, base_momentum=0.85,
        max_momentum=0.95)
    return run_schedule(opt, sched, total)


def run_schedule(opt: torch.optim.Optimizer, sched: torch.optim.lr_scheduler.LRScheduler,
                 total: int) -> tuple[list[float], list[float]]:
    """The lr and beta1 torch's scheduler gives at each of ``total`` optimizer steps."""
    lrs, betas = [], []
    for step in range(total):
        lrs.append(opt.param_groups[0]["lr"])
        betas.append(opt.param_groups[0]["betas"][0])
        opt.step()
        if step < total - 1:
            sched.step()
    return lrs, betas


@pytest.mark.parametrize(("total", "anneal", "pct"), [(1000, "cos", 0.1), (37, "linear", 0.3),
                                                      (3, "cos", 0.1), (1, "cos", 0.5)])
def test_matches_torch_one_cycle(total: int, anneal: str, pct: float) -> None:
    cfg = ScheduleConfig(pct_start=pct, anneal=anneal, noise_pct=0.0)
    table = one_cycle(total, 1e-3, cfg)
    lrs, betas = torch_one_cycle(total, 1e-3, pct, cfg.div_factor, cfg.final_div_factor, anneal)
    np.testing.assert_allclose(table.lr, lrs, rtol=1e-12, atol=0)
    np.testing.assert_allclose(table.beta1, betas, rtol=1e-12, atol=0)


def test_paper_recipe_shape() -> None:
    table = one_cycle(600_000, 1e-3, ScheduleConfig(noise_pct=0.0))
    assert table.lr[0] == pytest.approx(1e-3 / 40)
    assert table.lr.max() == pytest.approx(1e-3)
    assert int(table.lr.argmax()) == 60_000 - 1
    assert table.lr[-1] == pytest.approx(1e-3 / 40 / 0.1)
    assert table.beta1[0] == pytest.approx(0.95) and table.beta1.min() == pytest.approx(0.85)


class NoisyOneCycle(torch.optim.lr_scheduler.OneCycleLR):
    """The release's ``schedulers.NoiseLR`` around OneCycleLR, transcribed: each get_lr
    multiplies torch's lr by 1 + pct * (2 u - 1), u the first torch.rand of a generator seeded
    with the scheduler's step count (noise seed 0)."""

    def __init__(self, *args: object, noise_pct: float, **kwargs: object) -> None:
        self.noise_pct = noise_pct
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def get_lr(self) -> list[float]:
        gen = torch.Generator()
        gen.manual_seed(0 + self.last_epoch)
        noise = 2 * torch.rand(1, generator=gen).item() - 1
        return [lr * (1 + self.noise_pct * noise) for lr in super().get_lr()]


def test_noise_equals_the_released_noise_lr() -> None:
    total, peak = 300, 5e-4
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([param], lr=peak)
    sched = NoisyOneCycle(opt, max_lr=peak, total_steps=total, pct_start=0.1, div_factor=40.0,
                          final_div_factor=0.1, anneal_strategy="cos", base_momentum=0.85,
                          max_momentum=0.9, noise_pct=0.1)
    lrs, betas = run_schedule(opt, sched, total)
    table = one_cycle(total, peak, ScheduleConfig(max_momentum=0.9, noise_pct=0.1))
    np.testing.assert_allclose(table.lr, lrs, rtol=1e-12, atol=0)
    np.testing.assert_allclose(table.beta1, betas, rtol=1e-12, atol=0)  # noise: lr only
    clean = one_cycle(total, peak, ScheduleConfig(noise_pct=0.0)).lr
    ratio = table.lr / clean
    assert ratio.min() >= 0.9 and ratio.max() < 1.1 and ratio.std() > 0.03


def test_momentum_off_and_bad_values() -> None:
    table = one_cycle(10, 1e-3, ScheduleConfig(cycle_momentum=False))
    assert np.isnan(table.beta1).all()
    with pytest.raises(ValueError, match="cos, linear"):
        one_cycle_curve(10, 1, 2, 1, 0.1, "step")
    with pytest.raises(ValueError, match="pct_start"):
        one_cycle_curve(10, 1, 2, 1, 1.5, "cos")
