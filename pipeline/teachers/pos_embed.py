"""The official DINOv2 position-embedding interpolation, as an override of transformers' one.

Depth Anything V2 (and Prompt Depth Anything) run DINOv2 whose ``interpolate_pos_encoding``
resizes the (M x M) grid of learned position embeddings by a *scale factor*
``(n + 0.1) / sqrt(N)`` per side (n patches along that side, N positions), bicubic, no
antialias: the 0.1 offset avoids floor errors, and passing a scale factor (not a size) makes
torch place the samples at ``(d + 0.5) * sqrt(N) / (n + 0.1) - 0.5``. Transformers' DINOv2
resizes to the target size instead, which samples at ``(d + 0.5) * M / n - 0.5``: the same
embeddings on square inputs, slightly different ones on non-square inputs. The override makes
a transformers model give what the official code gives; transformers' own path stays
selectable (``TeacherConfig.pos_embed = "transformers"``).
"""

from __future__ import annotations

import math
from types import MethodType

import torch
import torch.nn.functional as F

OFFICIAL_OFFSET = 0.1
"""``interpolate_offset`` of the DINOv2 used by Depth Anything V2 and Prompt Depth Anything."""


def official_pos_encoding(position_embeddings: torch.Tensor, num_patches: int, height: int,
                          width: int, patch: int) -> torch.Tensor:
    """(1, 1 + N, D) embeddings -> (1, 1 + h*w, D) for an input of ``height`` x ``width`` px."""
    positions = position_embeddings.shape[1] - 1
    if num_patches == positions and height == width:
        return position_embeddings
    embed = position_embeddings.float()
    dim, side = embed.shape[-1], math.sqrt(positions)
    rows, cols = height // patch, width // patch
    grid = embed[:, 1:].reshape(1, int(side), int(side), dim).permute(0, 3, 1, 2)
    scale = ((rows + OFFICIAL_OFFSET) / side, (cols + OFFICIAL_OFFSET) / side)
    grid = F.interpolate(grid, scale_factor=scale, mode="bicubic", antialias=False)
    if grid.shape[-2:] != (rows, cols):
        raise RuntimeError(f"position grid {tuple(grid.shape[-2:])} != patches {(rows, cols)}")
    grid = grid.permute(0, 2, 3, 1).reshape(1, rows * cols, dim)
    return torch.cat([embed[:, :1], grid], dim=1).to(position_embeddings.dtype)


def _interpolate(self: torch.nn.Module, embeddings: torch.Tensor, height: int,
                 width: int) -> torch.Tensor:
    patch: object = getattr(self.patch_embeddings, "patch_size", None)
    size = patch[0] if isinstance(patch, (tuple, list)) else patch
    if not isinstance(size, int) or not isinstance(self.position_embeddings, torch.Tensor):
        raise TypeError(f"not a DINOv2 embeddings module: {type(self).__name__}")
    return official_pos_encoding(self.position_embeddings, embeddings.shape[1] - 1, height,
                                 width, size)


def use_official_pos_embed(model: torch.nn.Module) -> bool:
    """Install the official interpolation on the model's DINOv2 backbone; False if it has none."""
    backbone = getattr(model, "backbone", None)
    embeddings = getattr(backbone, "embeddings", None)
    config = getattr(backbone, "config", None)
    if embeddings is None or getattr(config, "model_type", None) != "dinov2":
        return False
    embeddings.interpolate_pos_encoding = MethodType(_interpolate, embeddings)
    return True
