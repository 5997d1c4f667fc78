"""Per-pixel depth losses: pure functions of (pred, target, valid_mask).

All maps are ``[B, 1, H, W]`` depth in metres; ``valid`` is a bool mask of the same shape
(e.g. teacher depth > 0: not sky; or GT > 0). Means are over valid pixels of the whole
batch and are computed in float32 whatever the autocast dtype of the predictions.
:func:`multiscale_loss` sums them over BP-Net's six outputs (both stages use it).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from data_schemas.errors import ConfigError

SCALE_WEIGHTS: tuple[float, ...] = (2**-10, 2**-8, 2**-6, 2**-4, 2**-2, 1.0)
"""BP-Net's weights of its six full-resolution outputs, coarsest first, prediction last."""
LOSS_KINDS = ("l1", "l2", "l1+l2")


def valid_mask(target: Tensor) -> Tensor:
    """Pixels with a target (depth > 0)."""
    return target > 0


def masked_l1(pred: Tensor, target: Tensor, valid: Tensor) -> Tensor:
    """Mean |pred - target| over valid pixels (0 when none is valid)."""
    diff = (pred.float() - target.float()).abs() * valid
    return diff.sum() / valid.sum().clamp(min=1)


def masked_l2(pred: Tensor, target: Tensor, valid: Tensor) -> Tensor:
    """Mean (pred - target)^2 over valid pixels (0 when none is valid)."""
    diff = (pred.float() - target.float()).square() * valid
    return diff.sum() / valid.sum().clamp(min=1)


def parse_loss_kind(kind: str) -> str:
    if kind not in LOSS_KINDS:
        raise ConfigError(f"loss.kind must be one of {', '.join(LOSS_KINDS)}; got {kind!r}")
    return kind


def pixel_loss(pred: Tensor, target: Tensor, valid: Tensor, kind: str = "l1") -> Tensor:
    """The ``kind`` loss ("l1", "l2" or their sum "l1+l2") over valid pixels."""
    kind = parse_loss_kind(kind)
    loss = pred.new_zeros((), dtype=torch.float32)
    if "l1" in kind:
        loss = loss + masked_l1(pred, target, valid)
    if "l2" in kind:
        loss = loss + masked_l2(pred, target, valid)
    return loss


def multiscale_loss(
    preds: Sequence[Tensor],
    target: Tensor,
    valid: Tensor,
    weights: Sequence[float] = SCALE_WEIGHTS,
    kind: str = "l1",
) -> tuple[Tensor, list[Tensor]]:
    """(sum_i weights[i] * loss(preds[i]), unweighted per-scale losses)."""
    if len(preds) != len(weights):
        raise ConfigError(f"loss.scale_weights has {len(weights)} weights but the model returns "
                          f"{len(preds)} predictions")
    terms = [pixel_loss(p, target, valid, kind) for p in preds]
    total = sum((w * t for w, t in zip(weights, terms, strict=True)), torch.zeros(()))
    return total.to(terms[0].device) if terms else total, terms


def sparse_consistency(pred: Tensor, sparse: Tensor) -> Tensor:
    """L1 between the prediction and the input LiDAR where it has returns."""
    return masked_l1(pred, sparse, sparse > 0)
