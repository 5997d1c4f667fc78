"""BP-Net (Bilateral Propagation Network, CVPR 2024), "Pre_MF_Post" as released, pure PyTorch.

Six-scale ResNet image encoder; from the coarsest scale up, one PMP block per scale predicts a
depth map (see ``train.model.pmp``). Parameter and buffer names equal the released checkpoints.
"""

from __future__ import annotations

import numpy as np
import torch.nn.functional as F
from torch import Tensor, nn

from train.model.inputs import check_inputs
from train.model.layers import Basic2d, init_conv_weights, res_layer
from train.model.pmp import PMP, GenKernel

NUM_SCALES = 6


class BPNet(nn.Module):
    """BP-Net. forward(rgb [B, 3, H, W] normalised, sparse [B, 1, H, W] metres (0 = missing),
    K [B, 3, 3]) -> 6 depth maps [B, 1, H, W] in metres, coarsest first; the last is the
    prediction. H and W must be multiples of 32."""

    def __init__(self, drop_path: float = 0.1) -> None:
        super().__init__()
        bc = 16
        rates = np.linspace(0, drop_path, 12).tolist()
        self.conv_img = nn.Sequential(Basic2d(3, bc * 2), res_layer(bc * 2, bc * 2, rates[0:2]))
        self.layer1_img = res_layer(bc * 2, bc * 4, rates[2:4], stride=2)
        self.layer2_img = res_layer(bc * 4, bc * 8, rates[4:6], stride=2)
        self.layer3_img = res_layer(bc * 8, bc * 16, rates[6:8], stride=2)
        self.layer4_img = res_layer(bc * 16, bc * 16, rates[8:10], stride=2)
        self.layer5_img = res_layer(bc * 16, bc * 16, rates[10:12], stride=2)
        self.pred0 = PMP(0, bc * 4, bc * 2, drop_path, pool=False)
        self.pred1 = PMP(1, bc * 8, bc * 4, drop_path)
        self.pred2 = PMP(2, bc * 16, bc * 8, drop_path)
        self.pred3 = PMP(3, bc * 16, bc * 16, drop_path)
        self.pred4 = PMP(4, bc * 16, bc * 16, drop_path)
        self.pred5 = PMP(5, bc * 16, bc * 16, drop_path, up=False)
        self._init_weights()

    def _init_weights(self) -> None:
        """Released init; the last BN of each kernel generator starts at 0 (identity kernels)."""
        self.apply(init_conv_weights)
        for module in self.modules():
            if isinstance(module, GenKernel):
                last = module.conv[1]
                assert isinstance(last, Basic2d) and isinstance(last.conv.bn, nn.BatchNorm2d)
                nn.init.zeros_(last.conv.bn.weight)

    def encode(self, rgb: Tensor) -> list[Tensor]:
        """rgb [B, 3, H, W] -> image features at strides 1, 2, ..., 32."""
        feats = [self.conv_img(rgb)]
        for layer in (self.layer1_img, self.layer2_img, self.layer3_img):
            feats.append(layer(feats[-1]))
        for layer in (self.layer4_img, self.layer5_img):
            feats.append(layer(feats[-1]))
        return feats

    def forward(self, rgb: Tensor, sparse: Tensor, K: Tensor) -> list[Tensor]:
        """See class docstring."""
        check_inputs(rgb, sparse, K)
        image_feats = self.encode(rgb)
        heads = [self.pred0, self.pred1, self.pred2, self.pred3, self.pred4, self.pred5]
        feat, depth, outputs = None, None, []
        for level in range(NUM_SCALES - 1, -1, -1):
            feat, depth = heads[level](feat, depth, image_feats[level], sparse, K)
            outputs.append(_to_full_resolution(depth, level))
        return outputs


def _to_full_resolution(depth: Tensor, level: int) -> Tensor:
    """depth [B, 1, H / 2^level, W / 2^level] -> [B, 1, H, W] (bilinear, align_corners=True)."""
    if level == 0:
        return depth
    return F.interpolate(depth, scale_factor=2**level, mode="bilinear", align_corners=True)
