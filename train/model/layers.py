"""Building blocks of BP-Net (convolution units, residual layers, the fusion U-Net).

Module attribute names follow the released BP-Net code exactly, because they are the
state-dict keys of the official checkpoints (see ``bpnet_state_dict.json``).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

ActFactory = Callable[[], nn.Module]


def relu() -> nn.Module:
    """In-place ReLU (as the released model, whose ReLUs are all switched to in-place)."""
    return nn.ReLU(inplace=True)


def conv1x1(in_ch: int, out_ch: int, stride: int = 1, bias: bool = False) -> nn.Conv2d:
    """1x1 convolution."""
    return nn.Conv2d(in_ch, out_ch, kernel_size=1, stride=stride, bias=bias)


def conv3x3(in_ch: int, out_ch: int, stride: int = 1, bias: bool = False) -> nn.Conv2d:
    """3x3 convolution, zero padding 1."""
    return nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=stride, padding=1, bias=bias)


class DropPath(nn.Module):
    """Stochastic depth per sample (timm semantics, kept samples scaled by 1 / keep)."""

    def __init__(self, drop_prob: float) -> None:
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: Tensor) -> Tensor:
        """x [B, ...] -> same shape."""
        if not self.training or self.drop_prob == 0.0:
            return x
        keep = 1.0 - self.drop_prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask.div_(keep)


class Basic2d(nn.Module):
    """conv -> (BN) -> act; the conv has a bias only when there is no BN."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        norm: bool = True,
        kernel_size: int = 3,
        padding: int = 1,
        act: ActFactory = relu,
    ) -> None:
        super().__init__()
        conv = nn.Conv2d(in_ch, out_ch, kernel_size, padding=padding, bias=not norm)
        self.conv = nn.Sequential(OrderedDict([("conv", conv)]))
        if norm:
            self.conv.add_module("bn", nn.BatchNorm2d(out_ch))
        self.conv.add_module("relu", act())

    def forward(self, x: Tensor) -> Tensor:
        """x [B, in_ch, H, W] -> [B, out_ch, H, W]."""
        out: Tensor = self.conv(x)
        return out


class BasicBlock(nn.Module):
    """ResNet basic block with optional projection shortcut and stochastic depth."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_ch, out_ch, stride)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.relu1 = relu()
        self.conv2 = conv3x3(out_ch, out_ch)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.downsample = downsample
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.relu2 = relu()

    def forward(self, x: Tensor) -> Tensor:
        """x [B, in_ch, H, W] -> [B, out_ch, H / stride, W / stride]."""
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        identity = x if self.downsample is None else self.downsample(x)
        result: Tensor = self.relu2(self.drop_path(out) + identity)
        return result


def res_layer(
    in_ch: int, out_ch: int, drop_rates: Sequence[float], stride: int = 1
) -> nn.Sequential:
    """len(drop_rates) basic blocks; the first one strides and projects when shapes change."""
    downsample = None
    if stride != 1 or in_ch != out_ch:
        downsample = nn.Sequential(conv1x1(in_ch, out_ch, stride), nn.BatchNorm2d(out_ch))
    blocks = [BasicBlock(in_ch, out_ch, stride, downsample, drop_path=float(drop_rates[0]))]
    blocks += [BasicBlock(out_ch, out_ch, drop_path=float(rate)) for rate in drop_rates[1:]]
    return nn.Sequential(*blocks)


class Basic2dTrans(nn.Module):
    """x2 up-sampling: 4x4 stride-2 transposed conv -> BN -> ReLU."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv = nn.ConvTranspose2d(
            in_ch, out_ch, kernel_size=4, stride=2, padding=1, bias=False
        )
        self.bn = nn.BatchNorm2d(out_ch)
        self.relu = relu()

    def forward(self, x: Tensor) -> Tensor:
        """x [B, in_ch, H, W] -> [B, out_ch, 2H, 2W]."""
        out: Tensor = self.relu(self.bn(self.conv(x.contiguous())))
        return out


class UpCC(nn.Module):
    """Decoder step: up-sample the coarse features, concatenate the skip, fuse with a 3x3 conv."""

    def __init__(self, in_ch: int, skip_ch: int, out_ch: int) -> None:
        super().__init__()
        self.upf = Basic2dTrans(in_ch, out_ch)
        self.conv = Basic2d(skip_ch + out_ch, out_ch)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        """x [B, in_ch, H, W], skip [B, skip_ch, 2H, 2W] -> [B, out_ch, 2H, 2W]."""
        out: Tensor = self.conv(torch.cat([self.upf(x), skip], dim=1))
        return out


class UBNet(nn.Module):
    """Multi-modal fusion U-Net (MF): features + 3-D point map -> fused features, same size.

    ``depth`` down-sampling stages (channels doubling, capped at 256), ``blocknum`` blocks each.
    """

    def __init__(self, channels: int, point_ch: int = 3, depth: int = 1, drop_path: float = 0.0):
        super().__init__()
        blocknum = 2
        rates = np.linspace(0, drop_path, blocknum * (1 + depth)).tolist()
        stem = Basic2d(channels + point_ch, channels)
        encoder = [nn.Sequential(stem, res_layer(channels, channels, rates[:blocknum]))]
        decoder = []
        width = channels
        for stage in range(1, depth + 1):
            wider = min(width * 2, 256)
            stage_rates = rates[stage * blocknum : (stage + 1) * blocknum]
            encoder.append(res_layer(width, wider, stage_rates, stride=2))
            decoder.append(UpCC(wider, width, width))
            width = wider
        self.encoder = nn.ModuleList(encoder)
        self.decoder = nn.ModuleList(decoder)

    def forward(self, feat: Tensor, points: Tensor) -> Tensor:
        """feat [B, C, H, W], points [B, 3, H, W] -> [B, C, H, W] (H, W divisible by 2^depth)."""
        skips = []
        x = torch.cat([feat, points], dim=1)
        for layer in self.encoder:
            x = layer(x)
            skips.append(x)
        out: Tensor = skips[-1]
        for idx in range(len(skips) - 2, -1, -1):
            out = self.decoder[idx](out, skips[idx])
        return out


def init_conv_weights(module: nn.Module) -> None:
    """Released init: Conv2d weights truncated normal, std sqrt(2 / (fan_in + fan_out)), bias 0.

    (Transposed convolutions keep PyTorch's default, as in the released code.)
    """
    if isinstance(module, nn.Conv2d):
        fan_out = module.weight.shape[0] * module.weight[0, 0].numel()
        fan_in = module.weight.shape[1] * module.weight[0, 0].numel()
        nn.init.trunc_normal_(module.weight, mean=0.0, std=math.sqrt(2.0 / (fan_in + fan_out)))
        if module.bias is not None:
            nn.init.zeros_(module.bias)
