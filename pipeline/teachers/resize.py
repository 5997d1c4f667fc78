"""The official Depth Anything V2 input/output resampling, written for torch tensors.

The official inference (``depth_anything_v2/dpt.py`` ``image2tensor`` / ``infer_image`` with
``util/transform.py`` ``Resize``) resizes the image with OpenCV ``INTER_CUBIC`` to a size whose
shorter side is at least ``input_size`` and both sides multiples of 14 (``lower_bound``;
:func:`pipeline.teachers.input_size.official_network_size`), and resizes the network
output back with bilinear ``align_corners=True``.

Torch's own ``bicubic`` uses the same kernel (a = -0.75, clamped border) but computes source
coordinates in float64; OpenCV computes them in float32, which moves the taps by up to 1e-4 px
on wide images. :func:`cubic_resize` reproduces OpenCV's arithmetic (float32 coordinates and
coefficients), so it equals ``cv2.resize(..., interpolation=cv2.INTER_CUBIC)`` of the same image
(bit-exact in float64, ~3e-7 in float32) and runs on any torch device.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

CUBIC_A = np.float32(-0.75)
"""OpenCV's cubic convolution constant (``INTER_CUBIC``)."""


def cubic_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV ``INTER_CUBIC`` taps of a 1-D resize: (n_out, 4) source indices and weights.

    Source coordinate ``(d + 0.5) * n_in / n_out - 0.5`` rounded to float32 as OpenCV does,
    cubic convolution weights in float32, indices clamped to the border (replicate).
    """
    scale = 1.0 / (n_out / n_in)
    coord = ((np.arange(n_out) + 0.5) * scale - 0.5).astype(np.float32)
    start = np.floor(coord)
    x = (coord - start).astype(np.float32)
    a, one = CUBIC_A, np.float32(1.0)
    w0 = ((a * (x + one) - 5 * a) * (x + one) + 8 * a) * (x + one) - 4 * a
    w1 = ((a + 2) * x - (a + 3)) * x * x + one
    w2 = ((a + 2) * (one - x) - (a + 3)) * (one - x) * (one - x) + one
    w3 = one - w0 - w1 - w2
    index = np.clip(start.astype(np.int64)[:, None] + np.arange(-1, 3), 0, n_in - 1)
    return index, np.stack([w0, w1, w2, w3], axis=1).astype(np.float32)


def cubic_matrix(n_in: int, n_out: int, device: torch.device,
                 dtype: torch.dtype) -> torch.Tensor:
    """(n_out, n_in) sparse resampling matrix of :func:`cubic_taps` (border taps summed)."""
    index, weight = cubic_taps(n_in, n_out)
    rows = np.repeat(np.arange(n_out), 4)
    coords = torch.from_numpy(np.stack([rows, index.ravel()]))
    values = torch.from_numpy(weight.ravel()).to(dtype)
    matrix = torch.sparse_coo_tensor(coords, values, (n_out, n_in), check_invariants=False)
    return matrix.coalesce().to(device)


def _resize_axis(x: torch.Tensor, n_out: int, dim: int) -> torch.Tensor:
    moved = x.movedim(dim, 0)
    matrix = cubic_matrix(moved.shape[0], n_out, x.device, x.dtype)
    out: torch.Tensor = torch.sparse.mm(matrix, moved.reshape(moved.shape[0], -1))
    return out.reshape(n_out, *moved.shape[1:]).movedim(0, dim)


def cubic_resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(..., H, W) float -> (..., h, w) as OpenCV ``INTER_CUBIC`` (horizontal pass first)."""
    if x.shape[-2:] == tuple(size):
        return x
    return _resize_axis(_resize_axis(x, size[1], x.dim() - 1), size[0], x.dim() - 2)


def bilinear_corners(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, h, w) -> (B, H, W): bilinear with ``align_corners=True`` (official output resize)."""
    return F.interpolate(x[:, None], size, mode="bilinear", align_corners=True)[:, 0]
