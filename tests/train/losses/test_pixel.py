"""Per-pixel losses against hand computations."""

from __future__ import annotations

import pytest
import torch

from train.losses.pixel import (
    SCALE_WEIGHTS,
    masked_l1,
    masked_l2,
    multiscale_loss,
    pixel_loss,
    sparse_consistency,
    valid_mask,
)


def maps() -> tuple[torch.Tensor, torch.Tensor]:
    target = torch.tensor([[[[2.0, 0.0], [4.0, 8.0]]]])  # one sky pixel
    pred = torch.tensor([[[[3.0, 50.0], [2.0, 8.5]]]])
    return pred, target


def test_masked_l1_and_l2_by_hand() -> None:
    pred, target = maps()
    valid = valid_mask(target)
    # valid diffs: 1, -2, 0.5 -> L1 = 3.5 / 3, L2 = (1 + 4 + 0.25) / 3
    assert float(masked_l1(pred, target, valid)) == pytest.approx(3.5 / 3)
    assert float(masked_l2(pred, target, valid)) == pytest.approx(5.25 / 3)


def test_no_valid_pixel_gives_zero() -> None:
    pred, _ = maps()
    zero = torch.zeros_like(pred)
    assert float(masked_l1(pred, zero, valid_mask(zero))) == 0.0


def test_multiscale_weights_by_hand() -> None:
    pred, target = maps()
    preds = [pred + i for i in range(6)]  # scale i adds i metres everywhere
    total, terms = multiscale_loss(preds, target, valid_mask(target))
    by_hand = []
    for i in range(6):
        diffs = [abs(3 + i - 2), abs(2 + i - 4), abs(8.5 + i - 8)]
        by_hand.append(sum(diffs) / 3)
    assert [float(t) for t in terms] == pytest.approx(by_hand)
    assert float(total) == pytest.approx(sum(w * t for w, t in zip(SCALE_WEIGHTS, by_hand,
                                                                   strict=True)))
    assert SCALE_WEIGHTS == (2**-10, 2**-8, 2**-6, 2**-4, 2**-2, 1.0)


def test_l1_plus_l2_and_sparse_consistency_by_hand() -> None:
    pred, target = maps()
    sparse = torch.tensor([[[[0.0, 49.0], [0.0, 8.0]]]])
    both = pixel_loss(pred, target, valid_mask(target), "l1+l2")
    assert float(both) == pytest.approx(3.5 / 3 + 5.25 / 3)
    assert float(sparse_consistency(pred, sparse)) == pytest.approx((1.0 + 0.5) / 2)


def test_losses_are_float32_for_bf16_predictions_and_differentiable() -> None:
    pred, target = maps()
    pred = pred.to(torch.bfloat16).requires_grad_(True)
    loss = masked_l1(pred, target, valid_mask(target))
    assert loss.dtype == torch.float32
    loss.backward()
    assert pred.grad is not None and float(pred.grad[0, 0, 0, 1]) == 0.0  # sky: no gradient


def test_bad_arguments() -> None:
    pred, target = maps()
    with pytest.raises(ValueError, match="one of l1, l2, l1\\+l2"):
        pixel_loss(pred, target, valid_mask(target), "huber")
    with pytest.raises(ValueError, match="has 6 weights but the model returns 2 predictions"):
        multiscale_loss([pred, pred], target, valid_mask(target))
