"""EMA of parameters and buffers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from train.engine.ema import EMA


def make_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(2, 3, 1), nn.BatchNorm2d(3))


def test_update_averages_parameters_and_buffers() -> None:
    torch.manual_seed(0)
    net = make_net()
    ema = EMA(net, decay=0.9)
    before = {k: v.clone() for k, v in ema.module.state_dict().items()}
    net.train()
    net(torch.randn(4, 2, 5, 5))  # moves BN running stats and num_batches_tracked
    with torch.no_grad():
        net[0].weight.add_(1.0)
    ema.update(net)
    after, current = ema.module.state_dict(), net.state_dict()
    for key, value in after.items():
        if value.is_floating_point():
            torch.testing.assert_close(value, 0.9 * before[key] + 0.1 * current[key])
        else:
            assert torch.equal(value, current[key])
    assert after["1.num_batches_tracked"].item() == 1


def test_default_decay_set_and_frozen_eval_copy() -> None:
    net = make_net()
    ema = EMA(net)
    assert ema.decay == 0.9999
    assert not ema.module.training
    assert not any(p.requires_grad for p in ema.module.parameters())
    ema.train()
    assert not ema.module.training
    with torch.no_grad():
        net[0].weight.mul_(3.0)
    ema.set(net)
    assert torch.equal(ema.module[0].weight, net[0].weight)


def test_bad_decay_raises() -> None:
    with pytest.raises(ValueError, match="decay"):
        EMA(make_net(), decay=1.5)
