"""The TensorBoard picture of a training batch: rgb | sparse | prediction | target.

Depth maps are colourised like every other quick look of the project
(:func:`data_schemas.quicklook.colorize_depth`, one depth range for the three maps).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from data_schemas.quicklook import colorize_depth, dilate_sparse
from train.datasets.sample import Batch
from train.model.inputs import RGB_MEAN, RGB_STD


def _depth(x: Tensor) -> np.ndarray:
    return np.asarray(x.detach().float().cpu().numpy(), np.float32)


def batch_panel(batch: Batch, pred: Tensor) -> Tensor:
    """First sample of ``batch`` and its prediction [B,1,H,W] as uint8 [3, 4H, W]."""
    mean = torch.tensor(RGB_MEAN).view(3, 1, 1)
    std = torch.tensor(RGB_STD).view(3, 1, 1)
    rgb = (batch.rgb[0].detach().float().cpu() * std + mean).clamp(0, 255).to(torch.uint8)
    target = _depth(batch.target[0, 0])
    top = max(float(target.max(initial=0.0)), 1.0)
    maps = [dilate_sparse(_depth(batch.sparse[0, 0]), 1), _depth(pred[0, 0]), target]
    colour = [torch.from_numpy(colorize_depth(m, top)).permute(2, 0, 1) for m in maps]
    return torch.cat([rgb, *colour], dim=1)
