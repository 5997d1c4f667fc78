"""Sparse LiDAR as a teacher input: the low-resolution depth prompt, and sparse maps on a canvas.

Prompt Depth Anything was trained with dense low-resolution depth (e.g. 192 x 256 ARKit LiDAR)
as its prompt. A KITTI scan is sparse (~5 % of pixels), so :func:`lidar_prompt` pools it to a
coarse grid (cells of ``cell`` px; each cell keeps its *nearest* return, so points seen through
a foreground edge by the offset LiDAR do not win) and fills empty cells from the nearest filled
one (the sky rows above the scan included).
"""

from __future__ import annotations

import numpy as np

from data_schemas.errors import InputError


def lidar_prompt(sparse: np.ndarray, cell: int) -> np.ndarray:
    """(H, W) sparse depth (m, 0 = none) -> (ceil(H/cell), ceil(W/cell)) float32 dense prompt."""
    if sparse.ndim != 2 or cell < 1:
        raise ValueError(f"expected an (H, W) sparse map and cell >= 1, got {sparse.shape}, {cell}")
    h, w = sparse.shape
    rows, cols = -(-h // cell), -(-w // cell)
    padded = np.full((rows * cell, cols * cell), np.inf, np.float32)
    padded[:h, :w] = np.where(sparse > 0, sparse, np.inf)
    grid = padded.reshape(rows, cell, cols, cell).min(axis=(1, 3))
    filled = np.isfinite(grid)
    if not filled.any():
        raise InputError("the depth prompt has no LiDAR return (all zeros)")
    return fill_nearest(np.where(filled, grid, 0.0).astype(np.float32), filled)


def fill_nearest(values: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Every unknown cell takes the value of its nearest known cell (5x5 L2 distance mask)."""
    if known.all():
        return values
    import cv2

    _, labels = cv2.distanceTransformWithLabels(
        (~known).astype(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
    lut = np.zeros(int(labels.max()) + 1, np.float32)
    lut[labels[known]] = values[known]
    filled: np.ndarray = lut[labels]
    return filled


def sparse_to_canvas(sparse: np.ndarray, box: tuple[int, int, int, int], height: int,
                     width: int) -> np.ndarray:
    """Move the returns of an (h, w) sparse map through a resize to ``box[:2]`` and a crop.

    ``box`` = (new_h, new_w, top, left) as :func:`pipeline.corpus.cover_crop`; pixel centres
    map like an image resize, depth values are unchanged, the nearest return wins a pixel.
    """
    new_h, new_w, top, left = box
    r, c = np.nonzero(sparse > 0)
    z = sparse[r, c]
    rr = np.rint((r + 0.5) * new_h / sparse.shape[0] - 0.5).astype(np.int64) - top
    cc = np.rint((c + 0.5) * new_w / sparse.shape[1] - 0.5).astype(np.int64) - left
    inside = (rr >= 0) & (rr < height) & (cc >= 0) & (cc < width)
    out = np.full(height * width, np.inf, np.float32)
    np.minimum.at(out, rr[inside] * width + cc[inside], z[inside])
    return np.where(np.isfinite(out), out, 0.0).reshape(height, width).astype(np.float32)
