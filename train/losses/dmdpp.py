"""The stage-2 objective of DMD3C++ (the authors' follow-up), as its code computes it (issue 11).

Read from ``Sharpiless/DMD3Cpp`` (commit ca5c7fc): ``train.sh`` trains with
``loss=MSMSE_ssil``; ``criteria.py`` ``MSMSE_ssil`` with ``disp_loss.py``
``ScaleAndShiftInvariantLoss`` (MiDaS's loss, defaults ``alpha=0.5, scales=4,
reduction='batch-based'``); ``train_distill.py`` ``train`` asks for the teacher term to be
switched off (``return_dis = False``) once ``epoch >= test_epoch`` (25, 0-based epochs), but
``MSMSE_ssil.forward`` (``criteria.py`` lines 238-258, at ca5c7fc and at 2af8f0f) never reads
``return_dis`` (only ``MSMSE_pssil`` does): as released, the term stays on in every epoch.
``ssi_off_from_epoch`` implements the intended switch; the ``dmd3c++`` recipe leaves it off
(``loss.teacher_off_from_epoch: null``, see ``train.stage2.config``).

For each output s (six, coarsest first; ``models/MBPNet_res_fast.py`` brings all of them to
full resolution, but the loss resizes GT and teacher to each output's size: GT ``nearest``,
teacher ``bilinear, align_corners=False``; here resizing happens only when sizes differ,
which gives the same numbers because a same-size resize is the identity):

* GT term ``sum((pred - gt)^2 [gt > 1e-3]) / max(#valid, 1)``, sums and count over the whole
  batch (a mean over valid pixels, unlike DMD3C's mean over all pixels), weight
  ``d_s = (2^-10, 2^-8, 2^-6, 2^-4, 2^-2, 1)`` x ``lambda_gt = 1``.
* Teacher term, mask ``m = teacher > 1e-3``: per image the least-squares scale and shift of
  the prediction onto the teacher (closed form over the 2 x 2 normal equations; scale = shift
  = 0 where the determinant is 0; **not detached**: ``MSMSE_ssil`` takes a
  ``detach_scale_shift`` argument but never uses it), ``p' = s p + t``;
  ``MSE = sum_b sum m (p' - teacher)^2 / sum_b 2 sum m`` (MiDaS's factor 2);
  gradient matching at 4 scales k = 0..3 on ``[::2^k, ::2^k]`` subsamplings:
  ``sum_b (sum |dx(m (p' - teacher))| m_x + sum |dy(..)| m_y) / sum_b sum m``, where
  ``m_x`` is the product of horizontally adjacent mask pixels (``m_y`` likewise), **summed**
  over the 4 scales; SSI = MSE + 0.5 x gradient term (a zero-valid batch gives 0).
  Weight ``(2^-10, 2^-8, 2^-6, 2^-4, 2^-2, 0.05)`` (the full-resolution output's SSI weight
  is 0.05) x ``lambda_metric = 0.2``.
* total = sum_s d_s GT_s + [epoch < 25] sum_s 0.2 w_s SSI_s.

The teacher in the release is Depth Anything 3's metric **depth** (``DA3METRIC-LARGE`` run
inside the network, in metres), resized to each output; the prediction (depth) is aligned
onto it. This function takes any depth-like teacher map; which map a recipe passes (for a
Depth Anything V2 disparity teacher, e.g. the DMD3C release's ``1 / (t01 + 0.5)``) is the
recipe's choice, not this function's. The issue's "scale-and-shift-invariant loss to the
teacher (per image least-squares scale and shift of the prediction onto the teacher, MSE
plus 0.5 x a 4-scale gradient-matching term)" is read as the code above; its "masked MSE to
GT" as the batch mean over valid GT pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

GT_SCALE_WEIGHTS: tuple[float, ...] = (2**-10, 2**-8, 2**-6, 2**-4, 2**-2, 1.0)
"""``MSMSE_ssil.deltas``: GT-term weight per output, coarsest first."""
SSI_SCALE_WEIGHTS: tuple[float, ...] = (2**-10, 2**-8, 2**-6, 2**-4, 2**-2, 0.05)
"""``MSMSE_ssil.deltas_ssil``: SSI weight per output; 0.05 at full resolution."""
LAMBDA_GT = 1.0
"""``MSMSE_ssil.lambda_gt``."""
LAMBDA_SSI = 0.2
"""``MSMSE_ssil.lambda_metric``: the teacher term's overall weight."""
GRADIENT_WEIGHT = 0.5
"""``ScaleAndShiftInvariantLoss`` ``alpha``: weight of the gradient-matching term."""
GRADIENT_SCALES = 4
"""``GradientLoss`` ``scales``: subsampling steps 1, 2, 4, 8."""
SSI_OFF_FROM_EPOCH = 25
"""``train_distill.train``: no teacher term once ``epoch >= test_epoch`` (0-based)."""
VALID_MIN = 1e-3
"""GT and teacher pixels above this value count."""


@dataclass(frozen=True)
class DmdppLoss:
    """The DMD3C++ objective: ``total`` and its weighted terms (per scale, coarsest first)."""

    total: Tensor
    gt: Tensor
    teacher: Tensor
    gt_per_scale: tuple[Tensor, ...]
    teacher_per_scale: tuple[Tensor, ...]


def ssi_active(epoch: int, off_from_epoch: int = SSI_OFF_FROM_EPOCH) -> bool:
    """Whether the teacher (SSI) term is on in 0-based ``epoch``: off from ``off_from_epoch``."""
    return epoch < off_from_epoch


def _safe_ratio(num: Tensor, den: Tensor) -> Tensor:
    """num / den where den != 0, else 0 (gradients stay finite)."""
    nonzero = den != 0
    return torch.where(nonzero, num / torch.where(nonzero, den, torch.ones_like(den)),
                       torch.zeros_like(num))


def fit_scale_shift(pred: Tensor, target: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Per image least squares ``s * pred + t ~ target`` on ``mask`` ([B, H, W] float):
    (scale [B], shift [B]); both 0 where the normal equations are singular."""
    dims = (1, 2)
    a00 = (mask * pred * pred).sum(dims)
    a01 = (mask * pred).sum(dims)
    a11 = mask.sum(dims)
    b0 = (mask * pred * target).sum(dims)
    b1 = (mask * target).sum(dims)
    det = a00 * a11 - a01 * a01
    return _safe_ratio(a11 * b0 - a01 * b1, det), _safe_ratio(a00 * b1 - a01 * b0, det)


def _gradient_matching(residual: Tensor, mask: Tensor) -> Tensor:
    """MiDaS gradient term at one scale: masked |d residual| along x and y / valid count."""
    diff = mask * residual
    grad_x = (diff[:, :, 1:] - diff[:, :, :-1]).abs() * mask[:, :, 1:] * mask[:, :, :-1]
    grad_y = (diff[:, 1:, :] - diff[:, :-1, :]).abs() * mask[:, 1:, :] * mask[:, :-1, :]
    return _safe_ratio(grad_x.sum() + grad_y.sum(), mask.sum())


def ssi_loss(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Scale-and-shift-invariant loss of ``pred`` vs ``target`` on ``mask`` ([B, H, W]):
    aligned MSE (over 2 x valid count) + 0.5 x 4-scale gradient matching, batch-based."""
    scale, shift = fit_scale_shift(pred, target, mask)
    residual = scale[:, None, None] * pred + shift[:, None, None] - target
    mse = _safe_ratio((mask * residual * residual).sum(), 2 * mask.sum())
    gradient = sum((_gradient_matching(residual[:, ::2**k, ::2**k], mask[:, ::2**k, ::2**k])
                    for k in range(GRADIENT_SCALES)), torch.zeros_like(mse))
    return mse + GRADIENT_WEIGHT * gradient


def masked_gt_mse(pred: Tensor, gt: Tensor) -> Tensor:
    """sum over the batch of (pred - gt)^2 on gt > 1e-3, over the valid count (at least 1)."""
    valid = (gt > VALID_MIN).to(pred.dtype)
    return ((pred - gt) ** 2 * valid).sum() / valid.sum().clamp(min=1.0)


def _at_size(x: Tensor, size: tuple[int, int], mode: str) -> Tensor:
    if tuple(x.shape[-2:]) == size:
        return x
    if mode == "nearest":
        return F.interpolate(x, size=size, mode="nearest")
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def dmdpp_stage2_loss(outputs: Sequence[Tensor], gt: Tensor, teacher: Tensor,
                      epoch: int, ssi_off_from_epoch: int = SSI_OFF_FROM_EPOCH,
                      gt_weights: Sequence[float] = GT_SCALE_WEIGHTS,
                      ssi_weights: Sequence[float] = SSI_SCALE_WEIGHTS,
                      lambda_ssi: float = LAMBDA_SSI) -> DmdppLoss:
    """The DMD3C++ stage-2 loss.

    outputs: six depth maps [B, 1, h_s, w_s] m, coarsest first; gt [B, 1, H, W] m (0 = none);
    teacher: depth-like teacher map [B, 1, H, W] (<= 1e-3 = invalid); epoch: 0-based, the
    teacher term is off from ``ssi_off_from_epoch``. ``gt_weights``, ``ssi_weights``,
    ``lambda_ssi``: the per-output weights and the teacher term's weight (defaults: the
    release's ``deltas``, ``deltas_ssil``, ``lambda_metric``).
    """
    if len(outputs) != len(GT_SCALE_WEIGHTS):
        raise ValueError(f"the DMD3C++ objective takes {len(GT_SCALE_WEIGHTS)} outputs, "
                         f"got {len(outputs)}")
    use_ssi = ssi_active(epoch, ssi_off_from_epoch)
    gt_terms, ssi_terms = [], []
    for pred, d_gt, d_ssi in zip(outputs, gt_weights, ssi_weights, strict=True):
        size = (int(pred.shape[-2]), int(pred.shape[-1]))
        gt_terms.append(d_gt * LAMBDA_GT * masked_gt_mse(pred, _at_size(gt, size, "nearest")))
        if use_ssi:
            target = _at_size(teacher, size, "bilinear")[:, 0]
            mask = (target > VALID_MIN).to(pred.dtype)
            ssi_terms.append(d_ssi * lambda_ssi * ssi_loss(pred[:, 0], target, mask))
    gt_sum = torch.stack(gt_terms).sum()
    ssi_sum = torch.stack(ssi_terms).sum() if ssi_terms else torch.zeros_like(gt_sum)
    return DmdppLoss(total=gt_sum + ssi_sum, gt=gt_sum, teacher=ssi_sum,
                     gt_per_scale=tuple(gt_terms), teacher_per_scale=tuple(ssi_terms))
