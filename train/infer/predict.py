"""Inference on whole frames of any size: load a checkpoint, pad to multiples of 32, predict.

Used by ``dmd3c evaluate``, ``export`` and ``complete`` and by stage-2 validation.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from data_schemas.errors import InputError
from train.model import BPNet, load_checkpoint, normalize_rgb
from train.model.inputs import SIZE_MULTIPLE


def load_model(ckpt: str | os.PathLike[str], device: torch.device,
               prefer_ema: bool = True) -> BPNet:
    """BP-Net with the weights of ``ckpt`` (official ``{'net': ...}`` or ours; our EMA
    weights when present and ``prefer_ema``), in eval mode on ``device``."""
    model = load_checkpoint(ckpt, key="auto" if prefer_ema else "net").model
    assert isinstance(model, BPNet)
    return model.to(device).eval()


@dataclass(frozen=True)
class Padding:
    """Rows added on top, columns added left/right to reach multiples of 32."""

    top: int
    left: int
    right: int

    @staticmethod
    def for_size(h: int, w: int, multiple: int = SIZE_MULTIPLE) -> Padding:
        extra_w = -w % multiple
        return Padding(-h % multiple, extra_w // 2, extra_w - extra_w // 2)


def predict_depth(model: nn.Module, rgb: np.ndarray, sparse: np.ndarray, K: np.ndarray,
                  device: torch.device, amp: bool = False) -> np.ndarray:
    """One frame of any size -> dense depth float32 [H,W] m.

    rgb uint8 [H,W,3], sparse float [H,W] m (0 = none), K [3,3]. The frame is zero-padded
    (top rows, left/right columns; K shifted accordingly) to multiples of 32 and the
    prediction cropped back. An empty sparse input is an InputError.
    """
    if not (sparse > 0).any():
        raise InputError("sparse input is empty: no LiDAR point with depth > 0")
    h, w = sparse.shape
    pad = Padding.for_size(h, w)
    rgb_t = normalize_rgb(torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None])
    sparse_t = torch.from_numpy(np.ascontiguousarray(sparse, dtype=np.float32))[None, None]
    sides = (pad.left, pad.right, pad.top, 0)
    K_t = torch.tensor(K, dtype=torch.float32)[None].clone()
    K_t[0, 0, 2] += pad.left
    K_t[0, 1, 2] += pad.top
    with torch.no_grad(), torch.autocast(device.type, enabled=amp and device.type == "cuda"):
        out = model(F.pad(rgb_t, sides).to(device), F.pad(sparse_t, sides).to(device),
                    K_t.to(device))[-1]
    depth = out[0, 0, pad.top:, pad.left:pad.left + w].float().cpu().numpy()
    return np.asarray(np.clip(depth, 0.0, None), np.float32)
