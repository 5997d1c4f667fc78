"""local_conv2d against an unfold reference and a scalar loop; gradcheck in float64."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from train.model.ops import local_conv2d


def unfold_reference(x: Tensor, weight: Tensor, size: int) -> Tensor:
    """x [B, C, H, W], weight [B, C*K*K, H, W] -> [B, C, H, W] via F.unfold."""
    batch, channels, height, width = x.shape
    patches = F.unfold(x, size, padding=size // 2)  # [B, C*K*K, H*W], order (c, i, j)
    prod = patches * weight.reshape(batch, channels * size * size, height * width)
    return prod.view(batch, channels, size * size, height, width).sum(2)


def loop_reference(x: Tensor, weight: Tensor, size: int) -> Tensor:
    """Scalar loops straight from the definition (tiny inputs only)."""
    batch, channels, height, width = x.shape
    out = torch.zeros_like(x)
    half = size // 2
    for b, c, y, u in torch.cartesian_prod(*(torch.arange(n) for n in x.shape)).tolist():
        for i in range(size):
            for j in range(size):
                yy, xx = y + i - half, u + j - half
                if 0 <= yy < height and 0 <= xx < width:
                    tap = weight[b, c * size * size + i * size + j, y, u]
                    out[b, c, y, u] += tap * x[b, c, yy, xx]
    return out


@pytest.mark.parametrize("size", [1, 3, 5, 7])
def test_forward_matches_unfold(size: int) -> None:
    gen = torch.Generator().manual_seed(size)
    x = torch.randn(2, 3, 11, 13, generator=gen)
    weight = torch.randn(2, 3 * size * size, 11, 13, generator=gen)
    torch.testing.assert_close(local_conv2d(x, weight), unfold_reference(x, weight, size))


def test_forward_matches_scalar_loop() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 2, 4, 5, generator=gen, dtype=torch.float64)
    weight = torch.randn(1, 2 * 9, 4, 5, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(local_conv2d(x, weight), loop_reference(x, weight, 3))


@pytest.mark.parametrize("size", [3, 5, 7])
def test_gradcheck_float64(size: int) -> None:
    gen = torch.Generator().manual_seed(size)
    x = torch.randn(1, 2, 4, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    w = torch.randn(1, 2 * size * size, 4, 5, generator=gen, dtype=torch.float64)
    assert torch.autograd.gradcheck(local_conv2d, (x, w.requires_grad_()))


def test_backward_matches_unfold_reference() -> None:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(1, 1, 9, 10, generator=gen, requires_grad=True)
    w = torch.randn(1, 25, 9, 10, generator=gen, requires_grad=True)
    grad = torch.randn(1, 1, 9, 10, generator=gen)
    ours = torch.autograd.grad(local_conv2d(x, w), (x, w), grad)
    ref = torch.autograd.grad(unfold_reference(x, w, 5), (x, w), grad)
    for a, b in zip(ours, ref, strict=True):
        torch.testing.assert_close(a, b)


def test_full_resolution_7x7_runs() -> None:
    """256 x 1216, the size of the finest CSPN step; forward and backward."""
    x = torch.randn(1, 1, 256, 1216, requires_grad=True)
    w = torch.randn(1, 49, 256, 1216, requires_grad=True)
    local_conv2d(x, w).sum().backward()
    assert x.grad is not None and w.grad is not None
    assert torch.isfinite(x.grad).all() and torch.isfinite(w.grad).all()


@pytest.mark.parametrize(
    ("x_shape", "w_shape"),
    [
        ((1, 1, 4, 4), (1, 4, 4, 4)),  # K even
        ((1, 2, 4, 4), (1, 9, 4, 4)),  # not C*K*K
        ((1, 1, 4, 4), (1, 9, 4, 5)),  # spatial mismatch
        ((2, 1, 4, 4), (1, 9, 4, 4)),  # batch mismatch
        ((1, 4, 4), (1, 9, 4, 4)),  # not 4-D
    ],
)
def test_bad_shapes_raise(x_shape: tuple[int, ...], w_shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError):
        local_conv2d(torch.zeros(x_shape), torch.zeros(w_shape))


def test_dtype_mismatch_raises() -> None:
    with pytest.raises(TypeError, match="dtypes differ"):
        local_conv2d(torch.zeros(1, 1, 4, 4), torch.zeros(1, 9, 4, 4, dtype=torch.float64))
