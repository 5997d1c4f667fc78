"""Losses of both stages, pure functions of (prediction, target, valid mask):
``pixel`` (masked L1/L2, BP-Net's multi-scale sum), ``ssi`` (scale-and-shift-invariant
losses against the teacher: paper, rpnl, patch), and the stage-2 objectives exactly as the
authors' code computes them: ``released`` (DMD3C) and ``dmdpp`` (DMD3C++)."""

from train.losses.pixel import (
    LOSS_KINDS,
    SCALE_WEIGHTS,
    masked_l1,
    masked_l2,
    multiscale_loss,
    parse_loss_kind,
    pixel_loss,
    sparse_consistency,
    valid_mask,
)
from train.losses.ssi import SSI_LOSS_NAMES, parse_ssi_loss, ssi_loss

__all__ = [
    "LOSS_KINDS", "SCALE_WEIGHTS", "SSI_LOSS_NAMES", "masked_l1", "masked_l2",
    "multiscale_loss", "parse_loss_kind", "parse_ssi_loss", "pixel_loss",
    "sparse_consistency", "ssi_loss", "valid_mask",
]
