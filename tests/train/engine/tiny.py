"""A tiny network with BP-Net's interface (6 depth maps) for fast engine tests.

It has BatchNorm (buffers, SyncBN conversion) and Dropout (the torch RNG must be restored
for an exact resume), like BP-Net's BN and DropPath.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(4, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.drop = nn.Dropout(0.3)
        self.conv2 = nn.Conv2d(8, 6, 3, padding=1)

    def forward(self, rgb: Tensor, sparse: Tensor, K: Tensor) -> list[Tensor]:
        h = self.drop(torch.relu(self.bn(self.conv1(torch.cat([rgb, sparse / 10], 1)))))
        depth = nn.functional.softplus(self.conv2(h)) * 10 + K[:, :1, :1, None] * 0
        return [depth[:, i:i + 1] for i in range(6)]
