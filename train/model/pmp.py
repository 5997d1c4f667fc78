"""One BP-Net scale: the PMP block (weighted sparse pooling, Pre, MF, Post).

Pre: bilateral propagation of the 4 nearest valid sparse points (``Prop``). MF: multi-modal
fusion U-Net with the back-projected point map (``UBNet``). Post: CSPN++-style refinement with
3x3 / 5x5 / 7x7 pixel-adaptive kernels and sparse re-injection (``CSPN``). Pre and Post run in
float32 even inside an autocast region.
"""

from __future__ import annotations

import functools
import operator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from train.model.layers import ActFactory, Basic2d, Basic2dTrans, UBNet, conv1x1, conv3x3
from train.model.ops import local_conv2d, sparse_knn

VALID_DEPTH = 1e-3  # metres; sparse depth above this is a measurement
NUM_NEIGHBOURS = 4


class Ident(nn.Module):
    """Placeholder with no parameters: returns its first argument."""

    def forward(self, *args: Tensor | None) -> Tensor | None:
        return args[0]


class UpCat(nn.Module):
    """Up-sample the coarser (features, depth) and fuse them with this scale's image features."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.upf = Basic2dTrans(in_ch + 1, out_ch)
        self.conv = Basic2d(out_ch * 2, out_ch)

    def forward(self, image_feat: Tensor, feat: Tensor, depth: Tensor) -> Tensor:
        """image_feat [B, out_ch, 2h, 2w], feat [B, in_ch, h, w], depth [B, 1, h, w]."""
        up = self.upf(torch.cat([feat, depth], dim=1))
        out: Tensor = self.conv(torch.cat([up, image_feat], dim=1))
        return out


class Permute(nn.Module):
    """Per-pixel logits at `stride` x finer resolution: [B, C, h, w] -> [B, 1, h*s, w*s]."""

    def __init__(self, in_ch: int, stride: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            Basic2d(in_ch, in_ch, kernel_size=1, padding=0),
            Basic2d(in_ch, in_ch, kernel_size=1, padding=0),
            conv1x1(in_ch, stride**2, bias=True),
            nn.PixelShuffle(stride),
        )

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.conv(x)
        return out


class WPool(nn.Module):
    """Learned soft-max weighted average of the valid sparse depths inside each 2^level cell."""

    def __init__(self, in_ch: int, level: int, drift: float = 1e6) -> None:
        super().__init__()
        self.level = level
        self.drift = drift
        self.permute = Permute(in_ch, stride=2**level)

    def forward(self, sparse: Tensor, feat: Tensor) -> Tensor:
        """sparse [B, 1, H, W] metres, feat [B, C, H/s, W/s] -> pooled depth [B, 1, H/s, W/s]."""
        size = 2**self.level
        logits = self.permute(feat).float()  # float32: the drift would overflow half precision
        valid = (sparse > VALID_DEPTH).float()
        with torch.no_grad():
            peak = F.max_pool2d((logits + self.drift) * valid, size, stride=size) - self.drift
            peak = F.interpolate(peak, scale_factor=size, mode="nearest") * valid
        weight = torch.exp(logits * valid - peak) * valid
        pooled = F.avg_pool2d(sparse * weight, size, stride=size)
        return pooled / (F.avg_pool2d(weight, size, stride=size) + 1e-6)


class Coef(nn.Module):
    """1x1 conv to three maps (alpha, beta, omega)."""

    def __init__(self, in_ch: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, 3, kernel_size=1, bias=True)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        alpha, beta, omega = torch.split(self.conv(x), 1, dim=1)
        return alpha, beta, omega


class Prop(nn.Module):
    """Bilateral propagation: depth of each pixel from its 4 nearest valid points."""

    def __init__(self, channels: int, point_ch: int = 3, offset_ch: int = 2) -> None:
        super().__init__()
        total = offset_ch + 2 * channels + point_ch
        gelu = nn.GELU
        self.convXF = nn.Sequential(
            Basic2d(total, channels, act=gelu, kernel_size=1, padding=0),
            Basic2d(channels, channels, act=gelu, kernel_size=1, padding=0),
        )
        self.convXL = nn.Sequential(
            Basic2d(channels, channels, act=gelu, kernel_size=1, padding=0),
            Basic2d(channels, channels, act=nn.Identity, kernel_size=1, padding=0),
        )
        self.act = gelu()
        self.coef = Coef(channels)

    def forward(self, feat: Tensor, points: Tensor, offsets: Tensor, indices: Tensor) -> Tensor:
        """feat [B, C, H, W], points [B, 3, N] (x, y, z metres), offsets [B, 2, k, N],
        indices [B, k, N] (N = H*W) -> depth [B, 1, H, W]."""
        batch, channels, height, width = feat.shape
        k, num = indices.shape[1:]
        own = feat.reshape(batch, channels, 1, num).expand(-1, -1, k, -1)
        flat_idx = indices.reshape(batch, 1, k * num)
        nbr_feat = torch.gather(
            feat.reshape(batch, channels, num), 2, flat_idx.expand(-1, channels, -1)
        )
        nbr_pts = torch.gather(points, 2, flat_idx.expand(-1, points.shape[1], -1))
        nbr_feat = nbr_feat.view(batch, channels, k, num)
        nbr_pts = nbr_pts.view(batch, points.shape[1], k, num)
        x = self.convXF(torch.cat([own, nbr_feat, nbr_pts, offsets], dim=1))
        x = self.act(x + self.convXL(x))
        alpha, beta, omega = self.coef(x)
        depth = ((alpha + 1) * nbr_pts[:, -1:] + beta) * torch.softmax(omega, dim=2)
        out: Tensor = depth.sum(dim=2).view(batch, 1, height, width)
        return out


class GenKernel(nn.Module):
    """Per-pixel K x K propagation kernel whose taps sum to one (centre = 1 - others)."""

    def __init__(self, in_ch: int, size: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.conv = nn.Sequential(
            Basic2d(in_ch, in_ch), Basic2d(in_ch, size * size - 1, act=nn.Identity)
        )

    def forward(self, feat: Tensor) -> Tensor:
        """feat [B, C, H, W] -> kernel [B, K*K, H, W]."""
        weight = self.conv(feat)
        weight = weight / (weight.abs().sum(dim=1, keepdim=True) + self.eps)
        centre = 1 - weight.sum(dim=1, keepdim=True)
        half = weight.shape[1] // 2
        return torch.cat([weight[:, :half], centre, weight[:, half:]], dim=1).contiguous()


def _head(in_ch: int, mid_ch: int, act: ActFactory) -> nn.Sequential:
    """3x3 conv-BN-ReLU then 3x3 conv (bias) to 3 maps with the given activation."""
    return nn.Sequential(Basic2d(in_ch, mid_ch), Basic2d(mid_ch, 3, norm=False, act=act))


class CSPN(nn.Module):
    """CSPN++ refinement with 3 kernel sizes, `iterations` steps, sparse re-injection."""

    def __init__(self, in_ch: int, iterations: int) -> None:
        super().__init__()
        self.pt = iterations
        self.weight3x3 = GenKernel(in_ch, 3)
        self.weight5x5 = GenKernel(in_ch, 5)
        self.weight7x7 = GenKernel(in_ch, 7)
        softmax = functools.partial(nn.Softmax, dim=1)
        self.convmask = _head(in_ch, in_ch, nn.Sigmoid)
        self.convck = _head(in_ch, in_ch, softmax)
        self.convct = _head(in_ch + 3, in_ch, softmax)

    def forward(self, feat: Tensor, depth: Tensor, sparse: Tensor) -> Tensor:
        """feat [B, C, H, W], depth [B, 1, H, W], sparse [B, 1, H, W] -> refined depth."""
        kernels = [self.weight3x3(feat), self.weight5x5(feat), self.weight7x7(feat)]
        masks = torch.split(self.convmask(feat) * (sparse > VALID_DEPTH).float(), 1, dim=1)
        confs = torch.split(self.convck(feat), 1, dim=1)
        states = [depth, depth, depth]
        stages = [depth]
        for step in range(self.pt):
            states = [
                (1.0 - m) * local_conv2d(h, w) + m * sparse
                for h, w, m in zip(states, kernels, masks, strict=True)
            ]
            if step == self.pt // 2 - 1 or step == self.pt - 1:
                first, *rest = [c * h for c, h in zip(confs, states, strict=True)]
                stages.append(functools.reduce(operator.add, rest, first))
        stacked = torch.cat(stages, dim=1)
        mix = self.convct(torch.cat([feat, stacked], dim=1))
        return torch.sum(mix * stacked, dim=1, keepdim=True)


def back_project(depth: Tensor, intrinsics: Tensor) -> Tensor:
    """depth [B, 1, H, W] metres, intrinsics [B, 3, 3] of this resolution -> points [B, 3, H*W]
    (camera frame, metres)."""
    batch, _, height, width = depth.shape
    ys, xs = torch.meshgrid(
        torch.arange(height, device=depth.device, dtype=depth.dtype),
        torch.arange(width, device=depth.device, dtype=depth.dtype),
        indexing="ij",
    )
    fx, fy = intrinsics[:, 0, 0, None, None], intrinsics[:, 1, 1, None, None]
    cx, cy = intrinsics[:, 0, 2, None, None], intrinsics[:, 1, 2, None, None]
    z = depth.reshape(batch, 1, -1)
    px = z * (xs.reshape(1, 1, -1) - cx) / fx
    py = z * (ys.reshape(1, 1, -1) - cy) / fy
    return torch.cat([px, py, z], dim=1).contiguous()


def _fp32_region(device: torch.device) -> torch.autocast:
    """Context where autocast is off (inputs must be cast to float32 by the caller)."""
    return torch.autocast(device_type=device.type, enabled=False)


class PMP(nn.Module):
    """One scale: (UpCat) -> (WPool) -> Pre -> MF -> Post. Returns (features, depth)."""

    def __init__(
        self,
        level: int,
        in_ch: int,
        out_ch: int,
        drop_path: float,
        up: bool = True,
        pool: bool = True,
    ) -> None:
        super().__init__()
        self.level = level
        self.upcat = UpCat(in_ch, out_ch) if up else Ident()
        self.wpool = WPool(out_ch, level=level) if pool else Ident()
        self.prop = Prop(out_ch)
        self.fuse = UBNet(out_ch, point_ch=3, depth=5 - level, drop_path=drop_path)
        self.conv = conv3x3(out_ch, 1, bias=True)
        self.cspn = CSPN(out_ch, iterations=2 * (6 - level))

    def forward(
        self,
        feat: Tensor | None,
        depth: Tensor | None,
        image_feat: Tensor,
        sparse: Tensor,
        K: Tensor,
    ) -> tuple[Tensor, Tensor]:
        """Coarser (feat, depth) (None at the coarsest), image_feat [B, C, h, w], sparse
        [B, 1, H, W] and K [B, 3, 3] at full resolution -> (feat [B, C, h, w], depth [B, 1, h, w]).
        """
        feat = self.upcat(image_feat, feat, depth)
        pooled = self.wpool(sparse, feat).float()
        scaled_k = K.float().clone()
        scaled_k[:, :2] = scaled_k[:, :2] / 2**self.level
        with _fp32_region(feat.device):
            depth = self._pre(feat.float(), pooled, scaled_k)
        points = back_project(depth, scaled_k).view(depth.shape[0], 3, *depth.shape[2:])
        feat = self.fuse(feat, points)
        depth = depth + self.conv(feat)
        with _fp32_region(feat.device):
            depth = self.cspn(feat.float(), depth.float(), pooled)
        return feat, depth

    def _pre(self, feat: Tensor, pooled: Tensor, scaled_k: Tensor) -> Tensor:
        """Bilateral propagation from the pooled sparse depth (float32)."""
        points = back_project(pooled, scaled_k)
        offsets, indices = sparse_knn(pooled > VALID_DEPTH, NUM_NEIGHBOURS)
        out: Tensor = self.prop(feat, points, offsets, indices)
        return out
