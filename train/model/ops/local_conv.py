"""Pixel-adaptive local convolution: every output pixel has its own K x K kernel (zero padding).

Layout as in the official BP-Net extension: input x [B, C, H, W], weight [B, C*K*K, H, W] where
channel ``c*K*K + i*K + j`` is the tap at row offset ``i - K//2`` and column offset ``j - K//2``
of output pixel (y, x) for input channel c:

    out[b, c, y, x] = sum_ij weight[b, c*K*K + i*K + j, y, x] * x[b, c, y + i - K//2, x + j - K//2]

Forward and backward loop over the K*K taps with one fused multiply-add on shifted views, so the
peak extra memory is one padded copy of x (never a B x C x K^2 x H x W unfold).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import FunctionCtx


def kernel_size_of(x: Tensor, weight: Tensor) -> int:
    """Check shapes and return K, or raise ValueError naming the problem.

    x [B, C, H, W], weight [B, C*K*K, H, W] with K odd.
    """
    if x.dim() != 4 or weight.dim() != 4:
        raise ValueError(
            f"local_conv2d expects 4-D x and weight, got {tuple(x.shape)} and {tuple(weight.shape)}"
        )
    batch, channels, height, width = x.shape
    if (weight.shape[0], weight.shape[2], weight.shape[3]) != (batch, height, width):
        raise ValueError(
            f"weight {tuple(weight.shape)} must match x {tuple(x.shape)} in batch, height, width"
        )
    taps = weight.shape[1] // max(channels, 1)
    size = math.isqrt(taps)
    if channels == 0 or weight.shape[1] != channels * size * size or size % 2 == 0:
        raise ValueError(
            f"weight has {weight.shape[1]} channels; expected C*K*K with C={channels}, K odd"
        )
    if x.dtype != weight.dtype:
        raise TypeError(f"x and weight dtypes differ: {x.dtype} vs {weight.dtype}")
    return size


def _taps(size: int) -> list[tuple[int, int, int]]:
    """(tap index, row start, col start) into the padded input for each of the K*K taps."""
    return [(i * size + j, i, j) for i in range(size) for j in range(size)]


def _forward(x: Tensor, weight: Tensor, size: int) -> Tensor:
    """x [B, C, H, W], weight [B, C*K*K, H, W] -> out [B, C, H, W]."""
    batch, channels, height, width = x.shape
    pad = size // 2
    padded = F.pad(x, (pad, pad, pad, pad))
    taps = weight.view(batch, channels, size * size, height, width)
    out = torch.zeros_like(x)
    for tap, i, j in _taps(size):
        out.addcmul_(padded[:, :, i : i + height, j : j + width], taps[:, :, tap])
    return out


def _backward(x: Tensor, weight: Tensor, grad_out: Tensor, size: int) -> tuple[Tensor, Tensor]:
    """Gradients (d x [B, C, H, W], d weight [B, C*K*K, H, W]) of the forward for grad_out."""
    batch, channels, height, width = x.shape
    pad = size // 2
    padded = F.pad(x, (pad, pad, pad, pad))
    taps = weight.view(batch, channels, size * size, height, width)
    grad_padded = torch.zeros_like(padded)
    grad_weight = torch.empty_like(weight).view(batch, channels, size * size, height, width)
    for tap, i, j in _taps(size):
        torch.mul(grad_out, padded[:, :, i : i + height, j : j + width], out=grad_weight[:, :, tap])
        grad_padded[:, :, i : i + height, j : j + width].addcmul_(grad_out, taps[:, :, tap])
    grad_x = grad_padded[:, :, pad : pad + height, pad : pad + width]
    return grad_x.contiguous(), grad_weight.view_as(weight)


class _LocalConv2d(torch.autograd.Function):
    """Autograd wrapper; saves only x and weight."""

    @staticmethod
    def forward(ctx: FunctionCtx, x: Tensor, weight: Tensor, size: int) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.size = size  # type: ignore[attr-defined]
        return _forward(x, weight, size)

    @staticmethod
    def backward(ctx: FunctionCtx, grad_out: Tensor) -> tuple[Tensor | None, Tensor | None, None]:
        x, weight = ctx.saved_tensors  # type: ignore[attr-defined]
        grad_x, grad_weight = _backward(x, weight, grad_out.contiguous(), ctx.size)  # type: ignore[attr-defined]
        return grad_x, grad_weight, None


def local_conv2d(x: Tensor, weight: Tensor) -> Tensor:
    """Per-pixel K x K convolution: x [B, C, H, W], weight [B, C*K*K, H, W] -> [B, C, H, W].

    Differentiable in x and weight. K is inferred (odd); shapes/dtypes are checked.
    """
    size = kernel_size_of(x, weight)
    apply = cast(Callable[[Tensor, Tensor, int], Tensor], _LocalConv2d.apply)
    return apply(x.contiguous(), weight.contiguous(), size)
