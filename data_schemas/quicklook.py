"""Quick-look pictures of samples: rgb | sparse depth (dilated) | teacher depth, colourised."""

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
    top = max_depth_m or (float(np.percentile(depth[valid], 99)) if valid.any() else 1.0)
    scaled = np.clip(1.0 - depth / max(top, 1e-6), 0.0, 1.0)
    colour = cv2.applyColorMap((scaled * 255).astype(np.uint8), cv2.COLORMAP_TURBO)
    colour[~valid] = 0
    return np.ascontiguousarray(colour[..., ::-1])


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
    top = max_depth_m or (float(np.percentile(teacher[teacher > 0], 99))
                          if (teacher > 0).any() else None)
    sparse = dilate_sparse(np.asarray(sample["sparse_depth"], dtype=np.float32))
    return np.concatenate([np.asarray(sample["rgb"], dtype=np.uint8),
                           colorize_depth(sparse, top), colorize_depth(teacher, top)], axis=1)


def montage(samples: Sequence[Sample]) -> np.ndarray:
    """Panels of several samples stacked vertically."""
    if not samples:
        raise ValueError("no samples to show")
    return np.concatenate([sample_panel(s) for s in samples], axis=0)


def write_png(path: str | os.PathLike[str], image_rgb: np.ndarray) -> None:
    """Write an RGB uint8 image as PNG, creating the folder."""
    folder = os.path.dirname(os.fspath(path))
    if folder:
        os.makedirs(folder, exist_ok=True)
    if not cv2.imwrite(os.fspath(path), np.ascontiguousarray(image_rgb[..., ::-1])):
        raise OSError(f"could not write PNG {path}")
