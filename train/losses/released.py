"""The stage-2 objective of the released DMD3C training code, exactly (issue 11).

What the release computes, read from ``Sharpiless/DMD3C`` (commit ed8804c):

* ``train_distill.py`` ``train``: ``output = net(rgb, disp, lidar, K)`` gives six depth maps,
  coarsest first; ``loss = criterion(output, depth)`` (a list of six weighted terms),
  ``disp = 1 / (disp01 + 0.5)``, ``loss += RandomProposalNormalizationLoss()(output, disp)``
  (list concatenation: twelve terms), then ``sum(loss).backward()``. So
  total = sum_s d_s * GT_s + sum_s d_s * RPNL_s.
* ``models/BPNet.py`` ``Net.forward``: every output is brought to the full input resolution
  inside the network (``F.interpolate(dout, scale_factor=2**level, mode='bilinear',
  align_corners=True)``; the last one is native), so all six outputs, the GT and the teacher map
  share one H x W. No resizing happens in the loss; here a size mismatch is an error.
* ``criteria.py`` ``MSMSE`` (``configs/loss/MSMSE.yaml``), weights
  ``d = (2**-10, 2**-8, 2**-6, 2**-4, 2**-2, 1)``: ``valid = (gt > 1e-3).float()``,
  ``((est * valid - gt * valid) ** 2).mean()`` -- the mean over **all** B*1*H*W pixels, not
  over the valid ones.
* ``rpnloss.py`` ``RandomProposalNormalizationLoss`` (defaults: the same weights ``d``,
  ``num_proposals=32``, ``min_crop_ratio=0.125``, ``max_crop_ratio=0.5``). ``forward`` runs
  ``compute_loss`` once per output, coarsest first, so **each scale draws its own 32 crops**,
  one scale after the other, from torch's global CPU generator (``torch.rand(1)`` and
  ``torch.randint`` without a device or generator argument; on a GPU run the crops still come
  from the CPU generator). Per proposal, in this order:
  ``ratio = torch.rand(1).item() * (0.5 - 0.125) + 0.125`` (Python float arithmetic);
  ``h, w = int(H * ratio), int(W * ratio)`` (truncation; one ratio for both sides);
  ``top = torch.randint(0, H - h + 1, (1,)).item()``;
  ``left = torch.randint(0, W - w + 1, (1,)).item()``. The same crop for every image in the
  batch. Each image's crop of the prediction and of the target is flattened and normalised
  as ``(x - med) / (mad + 1e-6)``, ``med = x.median(dim=1)`` (torch: the lower of the two
  middle values for an even count), ``mad = median(|x - med|)``; no mask, nothing detached.
  The proposal's term is ``mean(|x_pred - x_target|)`` over batch and crop pixels; the
  scale's RPNL is the sum over the 32 proposals divided by 32.
* ``datasets/kitti.py`` + ``augs.py``: the teacher map ``disp01`` is the 8-bit grey PNG
  ``raw/<date>/<drive>/image_0x/disp/<frame>.png`` read with ``Image.open(..).convert('L')``,
  as float32, divided by 255 in ``augs.Norm`` (see :mod:`train.datasets.kitti.released_teacher`).

This module computes the same numbers. On CUDA the 32 crops of a scale are evaluated at once
(one padded gather and sort per statistic instead of 128 ``median`` calls), which changes only
the order of floating-point summation; with tied prediction values the gradient of a median
may then go to another one of the tied pixels than torch.median picks (as it already differs
between torch's CPU and CUDA medians). Elsewhere the crops are evaluated one by one with
``torch.median``, the release's own operations.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

RELEASED_SCALE_WEIGHTS: tuple[float, ...] = (2**-10, 2**-8, 2**-6, 2**-4, 2**-2, 1.0)
"""Per-output weights, coarsest first (``criteria.MSMSE`` and ``rpnloss`` ``deltas``)."""
NUM_PROPOSALS = 32
"""Random crops per output (``rpnloss`` ``num_proposals``)."""
MIN_CROP_RATIO = 0.125
"""Smallest crop side as a fraction of the map side (``rpnloss`` ``min_crop_ratio``)."""
MAX_CROP_RATIO = 0.5
"""Largest crop side fraction (``rpnloss`` ``max_crop_ratio``)."""
MAD_EPS = 1e-6
"""Added to the median absolute deviation before dividing (``rpnloss``)."""
GT_VALID_MIN_M = 1e-3
"""GT pixels above this depth count (``criteria.MSMSE.mse``)."""
TEACHER_OFFSET = 0.5
"""The RPNL target is ``1 / (teacher01 + 0.5)`` (``train_distill.train``)."""


@dataclass(frozen=True)
class Crop:
    """One RPNL proposal: pixel rows ``top:top+height``, columns ``left:left+width``."""

    top: int
    left: int
    height: int
    width: int


@dataclass(frozen=True)
class ReleasedLoss:
    """The released objective: ``total`` (scalar tensor to back-propagate) and its terms.

    Per-scale terms are already weighted (as the release logs them), coarsest first.
    """

    total: Tensor
    gt: Tensor
    teacher: Tensor
    gt_per_scale: tuple[Tensor, ...]
    teacher_per_scale: tuple[Tensor, ...]


def draw_crops(height: int, width: int, count: int = NUM_PROPOSALS,
               generator: torch.Generator | None = None) -> list[Crop]:
    """``count`` crops of an ``height`` x ``width`` map, drawn as ``rpnloss.compute_loss`` does
    (from torch's global generator unless ``generator`` is given)."""
    if min(height, width) * MIN_CROP_RATIO < 1:
        raise ValueError(f"RPNL needs maps of at least 8 x 8 pixels, got {height} x {width}")
    crops = []
    for _ in range(count):
        ratio = torch.rand(1, generator=generator).item() * (MAX_CROP_RATIO - MIN_CROP_RATIO)
        ratio += MIN_CROP_RATIO
        h, w = int(height * ratio), int(width * ratio)
        top = int(torch.randint(0, height - h + 1, (1,), generator=generator).item())
        left = int(torch.randint(0, width - w + 1, (1,), generator=generator).item())
        crops.append(Crop(top, left, h, w))
    return crops


def _crop_indices(crops: Sequence[Crop], width: int, device: torch.device
                  ) -> tuple[Tensor, Tensor, Tensor]:
    """Flat pixel indices [K, N] of each crop (row-major, padded with 0), valid mask [K, N]
    and pixel counts [K]."""
    spec = torch.tensor([[c.top, c.left, c.height, c.width] for c in crops], device=device)
    top, left, h, w = spec.unbind(dim=1)
    counts = h * w
    j = torch.arange(int(counts.max()), device=device)[None, :]
    valid = j < counts[:, None]
    rows = top[:, None] + torch.div(j, w[:, None], rounding_mode="floor")
    cols = left[:, None] + j % w[:, None]
    return torch.where(valid, rows * width + cols, 0), valid, counts


def _kth_smallest(values: Tensor, valid: Tensor, k: Tensor) -> Tensor:
    """values [B, K, N] -> [B, K, 1]: the k[K]-th smallest (0-based) among the valid entries."""
    padded = torch.where(valid, values, torch.full_like(values, float("inf")))
    ordered = padded.sort(dim=-1).values
    return ordered.gather(-1, k.view(1, -1, 1).expand(values.shape[0], -1, 1))


def _median_normalise(values: Tensor, valid: Tensor, counts: Tensor) -> Tensor:
    """(x - median) / (MAD + 1e-6) per image and crop, torch's lower median for even counts."""
    middle = torch.div(counts - 1, 2, rounding_mode="floor")
    med = _kth_smallest(values, valid, middle)
    centred = values - med
    mad = _kth_smallest(centred.abs(), valid, middle)
    return centred / (mad + MAD_EPS)


def _rpnl_batched(pred: Tensor, target: Tensor, crops: Sequence[Crop]) -> Tensor:
    """All crops at once: one padded gather and one sort per statistic."""
    batch, _, _, width = pred.shape
    index, valid, counts = _crop_indices(crops, width, pred.device)
    norm_pred = _median_normalise(pred.reshape(batch, -1)[:, index], valid, counts)
    norm_target = _median_normalise(target.reshape(batch, -1)[:, index], valid, counts)
    diff = torch.where(valid, (norm_pred - norm_target).abs(), torch.zeros_like(norm_pred))
    per_crop = diff.sum(dim=(0, 2)) / (batch * counts).to(diff.dtype)
    return per_crop.sum() / len(crops)


def _normalise_rows(x: Tensor) -> Tensor:
    med = x.median(dim=1, keepdim=True).values
    mad = (x - med).abs().median(dim=1, keepdim=True).values
    return (x - med) / (mad + MAD_EPS)


def _rpnl_loop(pred: Tensor, target: Tensor, crops: Sequence[Crop]) -> Tensor:
    """One crop at a time with torch.median, as ``rpnloss.compute_loss`` does."""
    batch = pred.shape[0]
    terms = []
    for c in crops:
        rows, cols = slice(c.top, c.top + c.height), slice(c.left, c.left + c.width)
        norm_pred = _normalise_rows(pred[:, :, rows, cols].reshape(batch, -1))
        norm_target = _normalise_rows(target[:, :, rows, cols].reshape(batch, -1))
        terms.append((norm_pred - norm_target).abs().mean())
    return torch.stack(terms).sum() / len(crops)


def rpnl(pred: Tensor, target: Tensor, crops: Sequence[Crop],
         batched: bool | None = None) -> Tensor:
    """Random-proposal normalisation loss of ``pred`` vs ``target`` ([B, 1, H, W]) over the
    given crops: mean over crops of mean |normalised pred - normalised target|.

    ``batched`` evaluates all crops at once with sorts: 8x slower than the per-crop
    ``torch.median`` loop on one CPU thread at 2 x 256 x 1216, meant for GPUs, where the loop
    is bound by ~9k kernel launches per step (not measured here; ``benchmarks/bench_rpnl.py``
    compares both on the machine at hand). None = batched on CUDA tensors only. Both give the
    same value.
    """
    if pred.shape != target.shape or pred.dim() != 4 or pred.shape[1] != 1:
        raise ValueError(f"pred and target must be [B, 1, H, W] alike, got {tuple(pred.shape)} "
                         f"and {tuple(target.shape)}")
    use_batched = pred.is_cuda if batched is None else batched
    return (_rpnl_batched if use_batched else _rpnl_loop)(pred, target, crops)


def released_gt_term(pred: Tensor, gt: Tensor) -> Tensor:
    """``criteria.MSMSE.mse``: mean over all pixels of ((pred - gt) * [gt > 1e-3])^2."""
    valid = (gt > GT_VALID_MIN_M).to(pred.dtype)
    return ((pred * valid - gt * valid) ** 2).mean()


def released_teacher_target(teacher01: Tensor) -> Tensor:
    """The RPNL target ``1 / (teacher01 + 0.5)`` of a teacher map in the released [0, 1] form."""
    return 1.0 / (teacher01 + TEACHER_OFFSET)


def _check_shapes(outputs: Sequence[Tensor], gt: Tensor, teacher01: Tensor) -> None:
    if len(outputs) != len(RELEASED_SCALE_WEIGHTS):
        raise ValueError(f"the released objective takes {len(RELEASED_SCALE_WEIGHTS)} outputs "
                         f"(coarsest first), got {len(outputs)}")
    for tensor in (*outputs, teacher01):
        if tensor.shape != gt.shape:
            raise ValueError(f"every output and the teacher map must have the GT's shape "
                             f"{tuple(gt.shape)} (full resolution), got {tuple(tensor.shape)}")


def released_stage2_loss(outputs: Sequence[Tensor], gt: Tensor, teacher01: Tensor,
                         generator: torch.Generator | None = None,
                         batched: bool | None = None,
                         gt_weights: Sequence[float] = RELEASED_SCALE_WEIGHTS,
                         teacher_weights: Sequence[float] = RELEASED_SCALE_WEIGHTS,
                         ) -> ReleasedLoss:
    """The released DMD3C stage-2 loss.

    outputs: six depth maps [B, 1, H, W] in metres, coarsest first, all at full resolution;
    gt: GT depth [B, 1, H, W] m (0 = none); teacher01: teacher map [B, 1, H, W] in the
    released [0, 1] form. Crops come from torch's global generator (or ``generator``), each
    scale drawing its own 32 in order, so the same ``torch.manual_seed`` gives the same value
    as the release. ``batched``: see :func:`rpnl`. ``gt_weights`` / ``teacher_weights``: the
    per-output weights of the two terms (the release: ``RELEASED_SCALE_WEIGHTS`` for both);
    a scale of teacher weight 0 still draws its crops, so the generator advances as in the
    release.
    """
    _check_shapes(outputs, gt, teacher01)
    target = released_teacher_target(teacher01)
    height, width = gt.shape[-2:]
    gt_terms, teacher_terms = [], []
    for pred, weight, t_weight in zip(outputs, gt_weights, teacher_weights, strict=True):
        gt_terms.append(weight * released_gt_term(pred, gt))
        crops = draw_crops(height, width, NUM_PROPOSALS, generator)
        teacher_terms.append(t_weight * rpnl(pred, target, crops, batched))
    gt_sum, teacher_sum = torch.stack(gt_terms).sum(), torch.stack(teacher_terms).sum()
    return ReleasedLoss(total=gt_sum + teacher_sum, gt=gt_sum, teacher=teacher_sum,
                        gt_per_scale=tuple(gt_terms), teacher_per_scale=tuple(teacher_terms))
