"""The stage-1 loss (multi-scale loss to the teacher depth + sparse consistency) by hand."""

from __future__ import annotations

import pytest
import torch

from train.losses.pixel import sparse_consistency
from train.stage1.config import LossConfig
from train.stage1.recipe import distillation_loss


def maps() -> tuple[torch.Tensor, torch.Tensor]:
    target = torch.tensor([[[[2.0, 0.0], [4.0, 8.0]]]])  # one sky pixel
    pred = torch.tensor([[[[3.0, 50.0], [2.0, 8.5]]]])
    return pred, target


def test_l1_plus_l2_and_sparse_consistency() -> None:
    pred, target = maps()
    sparse = torch.tensor([[[[0.0, 49.0], [0.0, 8.0]]]])
    cfg = LossConfig(kind="l1+l2", scale_weights=(1.0,), sparse_weight=0.5)
    terms = distillation_loss([pred], target, sparse, cfg)
    consistency = (1.0 + 0.5) / 2
    assert float(sparse_consistency(pred, sparse)) == pytest.approx(consistency)
    assert float(terms.total) == pytest.approx(3.5 / 3 + 5.25 / 3 + 0.5 * consistency)
    assert set(terms.scalars) == {"scale0", "sparse_consistency", "total"}


def test_unknown_loss_kind_is_named() -> None:
    pred, target = maps()
    with pytest.raises(ValueError, match="one of l1, l2, l1\\+l2"):
        distillation_loss([pred], target, target, LossConfig(kind="huber", scale_weights=(1,)))
