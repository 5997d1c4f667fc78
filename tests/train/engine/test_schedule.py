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


def test_noise_is_bounded_seeded_and_multiplicative() -> None:
    clean = one_cycle(500, 1e-3, ScheduleConfig(noise_pct=0.0)).lr
    noisy = one_cycle(500, 1e-3, ScheduleConfig(noise_pct=0.1), seed=4).lr
    ratio = noisy / clean
    assert ratio.min() >= 0.9 and ratio.max() <= 1.1 and ratio.std() > 0.03
    np.testing.assert_array_equal(noisy, one_cycle(500, 1e-3, ScheduleConfig(), seed=4).lr)


def test_momentum_off_and_bad_values() -> None:
    table = one_cycle(10, 1e-3, ScheduleConfig(cycle_momentum=False))
    assert np.isnan(table.beta1).all()
    with pytest.raises(ValueError, match="cos, linear"):
        one_cycle_curve(10, 1, 2, 1, 0.1, "step")
    with pytest.raises(ValueError, match="pct_start"):
        one_cycle_curve(10, 1, 2, 1, 1.5, "cos")
