"""Quick-look pictures of samples: rgb | sparse depth (dilated) | teacher depth, colourised,
on one depth scale shown by a colour bar in metres under the rows."""

from __future__ import annotations

import os
from collections.abc import Sequence

import cv2
import numpy as np

from data_schemas.sample_store import Sample


def colorize_depth(depth: np.ndarray, max_depth_m: float | None = None) -> np.ndarray:
    """[H,W] metres (0 = none) -> [H,W,3] uint8 RGB, near = warm, invalid = black."""
    if depth.ndim != 2:
        raise ValueError(f"depth must be [H,W], got shape {depth.shape}")
    valid = depth > 0
    top = depth_scale(depth, max_depth_m)
    scaled = np.clip(1.0 - depth / max(top, 1e-6), 0.0, 1.0)
    colour = cv2.applyColorMap((scaled * 255).astype(np.uint8), cv2.COLORMAP_TURBO)
    colour[~valid] = 0
    return np.ascontiguousarray(colour[..., ::-1])


def depth_scale(depth: np.ndarray, max_depth_m: float | None = None) -> float:
    """The depth (m) :func:`colorize_depth` shows in its coldest colour: ``max_depth_m``, or
    the 99th percentile of the valid (> 0) pixels (1 m when there are none)."""
    if max_depth_m:
        return float(max_depth_m)
    valid = depth[depth > 0]
    return float(np.percentile(valid, 99)) if valid.size else 1.0


def colorize_with_bar(depth: np.ndarray, max_depth_m: float | None = None) -> np.ndarray:
    """:func:`colorize_depth` of ``depth`` with its :func:`colour_bar` (metres) under it:
    [H + BAR_HEIGHT_PX, W, 3] uint8."""
    top = depth_scale(depth, max_depth_m)
    return np.concatenate([colorize_depth(depth, top), colour_bar(depth.shape[1], top)], axis=0)


def dilate_sparse(depth: np.ndarray, radius_px: int = 2) -> np.ndarray:
    """Grow each sparse point to a square of side 2*radius+1 (nearest point keeps its value)."""
    if radius_px <= 0:
        return depth
    inverse = np.where(depth > 0, 1.0 / np.maximum(depth, 1e-6), 0.0).astype(np.float32)
    kernel = np.ones((2 * radius_px + 1,) * 2, np.uint8)
    grown = cv2.dilate(inverse, kernel)
    return np.where(grown > 0, 1.0 / np.maximum(grown, 1e-12), 0.0).astype(np.float32)


def sample_panel(sample: Sample, max_depth_m: float | None = None) -> np.ndarray:
    """One row ``rgb | sparse (dilated) | teacher depth`` as [H, 3W, 3] uint8."""
    teacher = np.asarray(sample["teacher_depth"], dtype=np.float32)
    top = max_depth_m or _far_depth(teacher)
    sparse = dilate_sparse(np.asarray(sample["sparse_depth"], dtype=np.float32))
    return np.concatenate([np.asarray(sample["rgb"], dtype=np.uint8),
                           colorize_depth(sparse, top), colorize_depth(teacher, top)], axis=1)


def _far_depth(teacher: np.ndarray) -> float:
    """The depth shown in the farthest colour: the 99th percentile of the valid pixels."""
    valid = teacher[teacher > 0]
    return float(np.percentile(valid, 99)) if valid.size else 1.0


BAR_HEIGHT_PX = 36
"""Height of the colour bar under a montage: a gradient strip and its labels."""


def colour_bar(width: int, max_depth_m: float) -> np.ndarray:
    """[BAR_HEIGHT_PX, width, 3] uint8: the :func:`colorize_depth` colours from 0 (left) to
    ``max_depth_m`` (right), labelled in metres."""
    depths = np.linspace(max_depth_m / width, max_depth_m, width, dtype=np.float32)
    bar = np.zeros((BAR_HEIGHT_PX, width, 3), np.uint8)
    bar[2:14] = colorize_depth(np.repeat(depths[None], 12, axis=0), max_depth_m)
    for value in (0.0, max_depth_m / 2, max_depth_m):
        text = f"{value:.3g} m"
        (w, _), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)
        x = int(np.clip(round(value / max_depth_m * (width - 1)) - w // 2, 2,
                        max(width - w - 2, 2)))
        cv2.putText(bar, text, (x, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1,
                    cv2.LINE_AA)
    return bar


def montage(samples: Sequence[Sample], max_depth_m: float | None = None) -> np.ndarray:
    """Panels of several samples stacked vertically, on one depth scale (default: the
    largest of their teacher depths' 99th percentiles), and the colour bar of that scale."""
    if not samples:
        raise ValueError("no samples to show")
    top = max_depth_m or max(_far_depth(np.asarray(s["teacher_depth"], np.float32))
                             for s in samples)
    rows = np.concatenate([sample_panel(s, top) for s in samples], axis=0)
    return np.concatenate([rows, colour_bar(rows.shape[1], top)], axis=0)


def write_png(path: str | os.PathLike[str], image_rgb: np.ndarray) -> None:
    """Write an RGB uint8 image as PNG, creating the folder."""
    folder = os.path.dirname(os.fspath(path))
    if folder:
        os.makedirs(folder, exist_ok=True)
    if not cv2.imwrite(os.fspath(path), np.ascontiguousarray(image_rgb[..., ::-1])):
        raise OSError(f"could not write PNG {path}")
