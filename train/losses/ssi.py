"""Scale-and-shift-invariant (SSI) losses of stage 2: the prediction against the teacher.

Every loss is a pure function ``loss(pred_depth, teacher, valid_mask, *, space, ...)``:

* ``pred_depth`` [B,1,H,W] or [B,H,W], metres (the network's final prediction);
* ``teacher`` same shape, the raw teacher output in ``space``: ``"disparity"`` for Depth
  Anything V2 relative (affine-invariant disparity; the default), ``"depth"`` for a metric
  teacher. The prediction is moved into that space (``1 / depth`` for disparity) and all
  alignment happens there (DESIGN section 4);
* ``valid_mask`` same shape, bool: pixels where the teacher output is meaningful.

The teacher is always detached: gradients reach the prediction only. Scale/shift fits are
solved with the prediction detached too (the fitted teacher is a fixed target). Residuals
are divided by the prediction's own mean absolute deviation from its median in that space
(per image, detached), so every loss is dimensionless: weights do not depend on the depth
range of the scene. Each returns a scalar tensor, the mean over images that have enough
valid pixels (0 with a graph to ``pred_depth`` when none has).

Variants (``parse_ssi_loss`` names them):

* ``paper``: one global least-squares scale and shift per image fitting the teacher to
  the prediction, L1 of the aligned residual plus ``grad_weight`` x a 4-scale
  gradient-matching term on that residual (MiDaS, Ranftl et al. 2020; DMD3C section 3.3).
* ``rpnl``: the released DMD3C code's variant: 32 random crops per image of 0.125-0.5 of
  the image size; prediction and target normalised in each crop by median and mean
  absolute deviation; L1. Invariant to a positive scale and any shift of the teacher.
* ``patch``: least-squares scale and shift per square patch (sizes configurable, stride
  half a patch), L1 of the aligned residual plus a gradient term inside each patch
  (DMD3C++ ``PatchScaleAndShiftInvariantLoss``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from data_schemas.errors import ConfigError
from data_schemas.geometry import DepthSpace, parse_depth_space

SSI_LOSS_NAMES: tuple[str, ...] = ("paper", "rpnl", "patch")
MIN_DEPTH_M = 1e-3
MIN_VALID_PIXELS = 16


def parse_ssi_loss(name: str) -> str:
    """``name`` if it is an SSI loss variant, else a ConfigError naming the allowed values."""
    if name not in SSI_LOSS_NAMES:
        raise ConfigError(f"unknown SSI loss {name!r}; choose one of {', '.join(SSI_LOSS_NAMES)}")
    return name


def _as_bhw(x: torch.Tensor, name: str) -> torch.Tensor:
    if x.dim() == 4 and x.shape[1] == 1:
        return x[:, 0]
    if x.dim() == 3:
        return x
    raise ValueError(f"{name} must be [B,1,H,W] or [B,H,W], got {tuple(x.shape)}")


def _prepare(
    pred_depth: torch.Tensor, teacher: torch.Tensor, valid_mask: torch.Tensor, space: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """-> (prediction in ``space`` [B,H,W], detached teacher [B,H,W], float mask [B,H,W])."""
    pred = _as_bhw(pred_depth, "pred_depth")
    target = _as_bhw(teacher, "teacher").detach().to(pred.dtype)
    mask = _as_bhw(valid_mask, "valid_mask")
    if not pred.shape == target.shape == mask.shape:
        raise ValueError(
            f"shapes differ: pred {tuple(pred.shape)}, teacher "
            f"{tuple(target.shape)}, mask {tuple(mask.shape)}"
        )
    mask = (mask.bool() & torch.isfinite(target)).to(pred.dtype)
    target = torch.where(mask > 0, target, torch.zeros_like(target))
    return to_space(pred, parse_depth_space(space)), target, mask


def to_space(depth: torch.Tensor, space: DepthSpace) -> torch.Tensor:
    """Depth in m -> disparity in 1/m (``1 / max(depth, 1 mm)``) or depth unchanged."""
    if space == "disparity":
        return 1.0 / depth.clamp(min=MIN_DEPTH_M)
    return depth


def fit_scale_shift(
    source: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, dims: tuple[int, ...] = (-2, -1)
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Least squares ``min_{s,t} sum mask (s*source + t - target)^2`` over ``dims``.

    Returns (scale, shift, ok); ``ok`` is False where the 2x2 system is singular.
    """
    a00 = (mask * source * source).sum(dims)
    a01 = (mask * source).sum(dims)
    a11 = mask.sum(dims)
    b0 = (mask * source * target).sum(dims)
    b1 = (mask * target).sum(dims)
    det = a00 * a11 - a01 * a01
    ok = det.abs() > 1e-12 * (a00 * a11).abs().clamp(min=1e-30)
    safe = torch.where(ok, det, torch.ones_like(det))
    scale = torch.where(ok, (a11 * b0 - a01 * b1) / safe, torch.zeros_like(det))
    shift = torch.where(ok, (a00 * b1 - a01 * b0) / safe, torch.zeros_like(det))
    return scale, shift, ok


def _masked_median(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-image median of ``x`` [B,N] over ``mask`` [B,N] (lower median; 0 if empty)."""
    big = torch.finfo(x.dtype).max
    count = mask.sum(-1).long()
    ordered = torch.where(mask > 0, x, torch.full_like(x, big)).sort(-1).values
    index = ((count - 1).clamp(min=0) // 2).unsqueeze(-1)
    return torch.where(count > 0, ordered.gather(-1, index).squeeze(-1), torch.zeros_like(x[:, 0]))


def _median_mad(x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row median and mean absolute deviation from it, ``x``, ``mask``: [B,N] -> [B]."""
    median = _masked_median(x, mask)
    mad = (mask * (x - median.unsqueeze(-1)).abs()).sum(-1) / mask.sum(-1).clamp(min=1)
    return median, mad


def _image_scale(pred: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Detached per-image spread of the prediction [B] used to make residuals dimensionless."""
    _, mad = _median_mad(pred.detach().flatten(1), mask.flatten(1))
    return mad.clamp(min=1e-6)


def gradient_matching(residual: torch.Tensor, mask: torch.Tensor, scales: int = 4) -> torch.Tensor:
    """MiDaS multi-scale gradient loss of ``residual`` [B,H,W] over ``mask`` -> [B]."""
    total = residual.new_zeros(residual.shape[0])
    for level in range(scales):
        step = 2**level
        r, m = residual[:, ::step, ::step], mask[:, ::step, ::step]
        total = total + _gradient_l1(r * m, m).sum((-2, -1)) / m.sum((-2, -1)).clamp(min=1)
    return total


def _gradient_l1(r: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """|dx r| + |dy r| on neighbour pairs both valid, padded back to r's shape."""
    gx = (r[..., :, 1:] - r[..., :, :-1]).abs() * m[..., :, 1:] * m[..., :, :-1]
    gy = (r[..., 1:, :] - r[..., :-1, :]).abs() * m[..., 1:, :] * m[..., :-1, :]
    return F.pad(gx, (0, 1)) + F.pad(gy, (0, 0, 0, 1))


def _mean_over_usable(
    per_image: torch.Tensor, usable: torch.Tensor, pred: torch.Tensor
) -> torch.Tensor:
    if not bool(usable.any()):
        return pred.sum() * 0.0
    return per_image[usable].mean()


def paper_ssi_loss(
    pred_depth: torch.Tensor,
    teacher: torch.Tensor,
    valid_mask: torch.Tensor,
    *,
    space: DepthSpace = "disparity",
    grad_weight: float = 0.5,
    scales: int = 4,
) -> torch.Tensor:
    """Global LS scale/shift of the teacher onto the prediction in ``space``; L1 + gradient."""
    pred, target, mask = _prepare(pred_depth, teacher, valid_mask, space)
    scale, shift, ok = fit_scale_shift(target, pred.detach(), mask)
    aligned = scale[:, None, None] * target + shift[:, None, None]
    residual = (pred - aligned) / _image_scale(pred, mask)[:, None, None]
    count = mask.sum((-2, -1))
    data = (mask * residual.abs()).sum((-2, -1)) / count.clamp(min=1)
    per_image = data + grad_weight * gradient_matching(residual, mask, scales)
    return _mean_over_usable(per_image, ok & (count >= MIN_VALID_PIXELS), pred)


def random_crops(
    height: int,
    width: int,
    num: int,
    min_frac: float,
    max_frac: float,
    generator: torch.Generator | None = None,
) -> list[tuple[int, int, int, int]]:
    """``num`` crops (top, left, h, w), each side a uniform fraction in [min_frac, max_frac]."""
    if not 0 < min_frac <= max_frac <= 1:
        raise ValueError(
            f"crop fractions must satisfy 0 < min <= max <= 1, got {min_frac}, {max_frac}"
        )
    fracs = min_frac + (max_frac - min_frac) * torch.rand(num, 2, generator=generator)
    corner = torch.rand(num, 2, generator=generator)
    crops = []
    for (fh, fw), (ch, cw) in zip(fracs.tolist(), corner.tolist(), strict=True):
        h, w = max(1, round(fh * height)), max(1, round(fw * width))
        crops.append((int(ch * (height - h + 1)), int(cw * (width - w + 1)), h, w))
    return crops


def _normalise(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(x - median) / mean|x - median| per row over mask; x, mask: [N,P]."""
    median, mad = _median_mad(x, mask)
    return (x - median.unsqueeze(-1)) / mad.clamp(min=1e-6).unsqueeze(-1)


def rpnl_ssi_loss(
    pred_depth: torch.Tensor,
    teacher: torch.Tensor,
    valid_mask: torch.Tensor,
    *,
    space: DepthSpace = "disparity",
    num_crops: int = 32,
    min_frac: float = 0.125,
    max_frac: float = 0.5,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Random-patch normalised L1: median/MAD-normalised prediction vs teacher in crops."""
    pred, target, mask = _prepare(pred_depth, teacher, valid_mask, space)
    losses: list[torch.Tensor] = []
    for b in range(pred.shape[0]):
        height, width = pred.shape[-2:]
        for top, left, h, w in random_crops(height, width, num_crops, min_frac, max_frac,
                                            generator):
            window = (b, slice(top, top + h), slice(left, left + w))
            m = mask[window].reshape(1, -1)
            if m.sum() < MIN_VALID_PIXELS:
                continue
            p = _normalise(pred[window].reshape(1, -1), m)
            t = _normalise(target[window].reshape(1, -1), m)
            losses.append((m * (p - t).abs()).sum() / m.sum())
    return torch.stack(losses).mean() if losses else pred.sum() * 0.0


def _patches(x: torch.Tensor, size: int, stride: int) -> torch.Tensor:
    """[B,H,W] -> [B,L,size,size] patches (``F.unfold``)."""
    cols = F.unfold(x.unsqueeze(1), kernel_size=size, stride=stride)
    return cols.transpose(1, 2).reshape(x.shape[0], -1, size, size)


def _patch_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    size: int,
    stride: int,
    grad_weight: float,
    norm: torch.Tensor,
) -> torch.Tensor | None:
    p, t, m = (_patches(x, size, stride) for x in (pred, target, mask))
    scale, shift, ok = fit_scale_shift(t, p.detach(), m)
    residual = (p - (scale[..., None, None] * t + shift[..., None, None])) / norm[
        :, None, None, None
    ]
    count = m.sum((-2, -1))
    per_patch = (m * residual.abs()).sum((-2, -1)) / count.clamp(min=1)
    grad = _gradient_l1(residual * m, m).sum((-2, -1)) / count.clamp(min=1)
    usable = ok & (count >= MIN_VALID_PIXELS)
    return (per_patch + grad_weight * grad)[usable].mean() if bool(usable.any()) else None


def patch_ssi_loss(
    pred_depth: torch.Tensor,
    teacher: torch.Tensor,
    valid_mask: torch.Tensor,
    *,
    space: DepthSpace = "disparity",
    patch_sizes: Sequence[int] = (32, 64),
    grad_weight: float = 0.5,
) -> torch.Tensor:
    """LS scale/shift per patch (stride = size / 2), L1 + in-patch gradient, mean over sizes."""
    pred, target, mask = _prepare(pred_depth, teacher, valid_mask, space)
    norm = _image_scale(pred, mask)
    losses = []
    for size in patch_sizes:
        if size < 2 or size > min(pred.shape[-2:]):
            raise ValueError(f"patch size {size} does not fit images of {tuple(pred.shape[-2:])}")
        loss = _patch_loss(pred, target, mask, size, max(1, size // 2), grad_weight, norm)
        if loss is not None:
            losses.append(loss)
    return torch.stack(losses).mean() if losses else pred.sum() * 0.0


SsiLoss = Callable[..., torch.Tensor]
SSI_LOSSES: dict[str, SsiLoss] = {
    "paper": paper_ssi_loss,
    "rpnl": rpnl_ssi_loss,
    "patch": patch_ssi_loss,
}


def ssi_loss(name: str) -> SsiLoss:
    """The SSI loss function called ``name`` (see :data:`SSI_LOSS_NAMES`)."""
    return SSI_LOSSES[parse_ssi_loss(name)]
