"""End to end: BP-Net overfits one small synthetic sample (the whole graph learns)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from train.model import BPNet

STEPS = 25
SCALE_WEIGHTS = (2.0**-10, 2.0**-8, 2.0**-6, 2.0**-4, 2.0**-2, 1.0)  # released multi-scale MSE


def _sample(height: int, width: int) -> tuple[torch.Tensor, ...]:
    """rgb, sparse (10 % of a smooth depth map), K, dense target depth [1, 1, H, W]."""
    gen = torch.Generator().manual_seed(0)
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    target = (5.0 + 20.0 * ys / height + 5.0 * torch.sin(xs / 7.0))[None, None]
    rgb = torch.randn(1, 3, height, width, generator=gen)
    keep = torch.rand(1, 1, height, width, generator=gen) < 0.1
    sparse = torch.where(keep, target, torch.zeros(()))
    K = torch.tensor([[[60.0, 0.0, width / 2], [0.0, 60.0, height / 2], [0.0, 0.0, 1.0]]])
    return rgb, sparse, K, target


def _loss(outputs: list[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
    return sum(w * ((o - target) ** 2).mean() for w, o in zip(SCALE_WEIGHTS, outputs, strict=True))


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Tiny tensors gain nothing from intra-op threads, and on a shared 2-core box OpenMP
    spinning made each step ~20x slower; the previous setting is restored."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.mark.usefixtures("one_thread")
def test_overfits_one_sample() -> None:
    torch.manual_seed(0)
    # BN frozen (eval mode): at 32 x 64 the deepest maps hold 2 pixels, and batch statistics
    # over 2 values make gradients explode; train-mode BN is covered at 256 x 1216.
    net = BPNet(drop_path=0.0).eval()
    rgb, sparse, K, target = _sample(32, 64)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    losses = []
    for _ in range(STEPS):
        loss = _loss(net(rgb, sparse, K), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), max_norm=0.1)  # as the released config
        optimizer.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert min(losses[-3:]) < losses[0] / 50, losses
