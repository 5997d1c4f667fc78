"""Input conventions of BP-Net: RGB normalisation (KITTI statistics) and input checks."""

from __future__ import annotations

import torch
from torch import Tensor

RGB_MEAN: tuple[float, float, float] = (90.9950, 96.2278, 94.3213)  # on 0-255
RGB_STD: tuple[float, float, float] = (79.2382, 80.5267, 82.1483)  # on 0-255
SIZE_MULTIPLE = 32  # H and W must be multiples of 2^5 (six scales)


def normalize_rgb(rgb_255: Tensor) -> Tensor:
    """rgb [..., 3, H, W] in 0-255 (any real dtype) -> float32 normalised with RGB_MEAN/RGB_STD."""
    if rgb_255.dim() < 3 or rgb_255.shape[-3] != 3:
        raise ValueError(f"rgb must have shape [..., 3, H, W], got {tuple(rgb_255.shape)}")
    mean = torch.tensor(RGB_MEAN, device=rgb_255.device).view(3, 1, 1)
    std = torch.tensor(RGB_STD, device=rgb_255.device).view(3, 1, 1)
    return (rgb_255.float() - mean) / std


def _check_tensor(name: str, value: object, shape: str) -> Tensor:
    """Raise TypeError unless ``value`` is a floating-point tensor."""
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor {shape}, got {type(value).__name__}")
    if not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor {shape}, got {value.dtype}")
    return value


def _check_finite(name: str, value: Tensor) -> None:
    """Raise ValueError if ``value`` holds NaN or Inf."""
    if not bool(torch.isfinite(value).all()):
        raise ValueError(f"{name} contains non-finite values (NaN/Inf); mark missing depth with 0")


def check_inputs(rgb: Tensor, sparse: Tensor, K: Tensor) -> None:
    """Validate BP-Net inputs: rgb [B, 3, H, W], sparse [B, 1, H, W] metres, K [B, 3, 3]; floats,
    finite, same batch and device, H and W positive multiples of 32. Raises TypeError/ValueError."""
    _check_tensor("rgb", rgb, "[B, 3, H, W]")
    _check_tensor("sparse", sparse, "[B, 1, H, W]")
    _check_tensor("K", K, "[B, 3, 3]")
    if rgb.dim() != 4 or rgb.shape[1] != 3:
        raise ValueError(f"rgb must have shape [B, 3, H, W], got {tuple(rgb.shape)}")
    batch, _, height, width = rgb.shape
    if tuple(sparse.shape) != (batch, 1, height, width):
        raise ValueError(
            f"sparse must have shape {(batch, 1, height, width)}, got {tuple(sparse.shape)}"
        )
    if tuple(K.shape) != (batch, 3, 3):
        raise ValueError(f"K must have shape {(batch, 3, 3)}, got {tuple(K.shape)}")
    if height % SIZE_MULTIPLE or width % SIZE_MULTIPLE or height == 0 or width == 0:
        raise ValueError(
            f"H and W must be positive multiples of {SIZE_MULTIPLE}, got H={height}, W={width}"
        )
    if len({rgb.device, sparse.device, K.device}) != 1:
        raise ValueError(f"inputs on different devices: {rgb.device}, {sparse.device}, {K.device}")
    for name, value in (("rgb", rgb), ("sparse", sparse), ("K", K)):
        _check_finite(name, value)
    if bool((K[:, 0, 0] == 0).any() | (K[:, 1, 1] == 0).any()):
        raise ValueError("K has a zero focal length (K[:, 0, 0] or K[:, 1, 1])")
