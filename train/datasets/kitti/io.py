"""KITTI file formats: 16-bit depth PNGs (metres x 256, 0 = none), RGB PNGs, Velodyne .bin."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from data_schemas.errors import InputError, InputNotFoundError

DEPTH_SCALE = 256.0
"""KITTI depth PNG value per metre."""
MAX_DEPTH_PNG_M = 65535 / DEPTH_SCALE
"""The deepest a KITTI depth PNG can hold: 255.996 m (deeper values are clipped to it)."""


def read_depth_png(path: str | os.PathLike[str]) -> np.ndarray:
    """KITTI depth PNG -> float32 [H,W] metres (0 = no data).

    Refuses anything but a single-channel 16-bit PNG, like the devkit.
    """
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"depth map not found: {path}")
    with Image.open(path) as image:
        if image.mode not in ("I;16", "I;16B", "I;16L", "I"):
            raise InputError(f"{path}: depth PNG must be single-channel 16-bit (KITTI: "
                             f"metres x 256), got PIL mode {image.mode!r}")
        values = np.asarray(image)
    if values.ndim != 2 or values.max(initial=0) > 65535 or values.min(initial=0) < 0:
        raise InputError(f"{path}: depth PNG must be single-channel 16-bit")
    return (values.astype(np.float32) / DEPTH_SCALE).astype(np.float32)


def encode_depth_png(depth_m: np.ndarray) -> np.ndarray:
    """float [H,W] metres -> uint16 [H,W] (round(m x 256), clipped to 0..65535; NaN -> 0)."""
    depth = np.nan_to_num(np.asarray(depth_m, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    return np.clip(np.round(depth * DEPTH_SCALE), 0, 65535).astype(np.uint16)


def as_submitted(depth_m: np.ndarray) -> np.ndarray:
    """The depth the benchmark reads back from our uint16 PNG (metres x 256, rounded)."""
    return np.asarray(encode_depth_png(depth_m), np.float32) / np.float32(DEPTH_SCALE)


def write_depth_png(path: str | os.PathLike[str], depth_m: np.ndarray) -> None:
    """Write a KITTI depth PNG (uint16, metres x 256), creating the folder."""
    if np.asarray(depth_m).ndim != 2:
        raise InputError(f"depth must be [H,W], got shape {np.asarray(depth_m).shape}")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(encode_depth_png(depth_m)).save(path)


def read_rgb(path: str | os.PathLike[str]) -> np.ndarray:
    """An image file -> uint8 [H,W,3] RGB."""
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"image not found: {path}")
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()


def read_velodyne_bin(path: str | os.PathLike[str]) -> np.ndarray:
    """KITTI Velodyne scan -> float32 [N,4] (x fwd, y left, z up in m; reflectance), scan order."""
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"Velodyne scan not found: {path}")
    raw = np.fromfile(path, dtype=np.float32)
    if raw.size == 0 or raw.size % 4:
        raise InputError(f"{path}: not a KITTI Velodyne .bin (float32 x, y, z, reflectance "
                         f"records); {raw.size} floats")
    return raw.reshape(-1, 4)


def read_sparse_input(path: str | os.PathLike[str]) -> np.ndarray:
    """Users' sparse depth: a KITTI 16-bit PNG or a float .npy [H,W] in metres -> float32."""
    path = Path(path)
    if path.suffix.lower() == ".npy":
        if not path.is_file():
            raise InputNotFoundError(f"sparse depth not found: {path}")
        depth = np.load(path, allow_pickle=False)
        if depth.ndim == 3 and 1 in (depth.shape[0], depth.shape[-1]):
            depth = depth.squeeze()
        if depth.ndim != 2:
            raise InputError(f"{path}: sparse depth must be [H,W] metres, got shape {depth.shape}")
        return np.nan_to_num(np.asarray(depth, np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    if path.suffix.lower() == ".png":
        return read_depth_png(path)
    raise InputError(f"{path}: sparse depth must be a 16-bit .png (m x 256) or a .npy (m)")
