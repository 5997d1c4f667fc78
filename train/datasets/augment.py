"""The one augmentation module of every dataset: crops, horizontal flip, PCA colour jitter.

Geometric ops act on *every* map of a :class:`Sample` (rgb, sparse depth, target, teacher
output) and on the intrinsics, so the sample stays a consistent camera; photometric ops
act on rgb only. Every random choice comes from one generator per sample
(:func:`train.datasets.sampling.sample_rng` of (seed, epoch, sample key)): the same sample
gets the same augmentation whichever worker, rank or resume reads it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from data_schemas.errors import ConfigError
from train.datasets.sample import Sample

SIZE_MULTIPLE = 32
"""Crops are multiples of 32 pixels: BP-Net downsamples 5 times."""


@dataclass(frozen=True)
class AugmentConfig:
    """Random augmentation of training samples (validation uses a fixed crop only)."""

    flip_prob: float = 0.5
    """Probability of a horizontal flip (of rgb, every depth map and K)."""
    jitter_std: float = 0.1
    """PCA colour jitter magnitude (std of the principal-component weights, BP-Net); 0 = off."""


def check_crop_size(hw: tuple[int, int], multiple: int = SIZE_MULTIPLE) -> tuple[int, int]:
    """``(h, w)`` if both are positive multiples of ``multiple``, else a ConfigError."""
    h, w = (int(v) for v in hw)
    if h % multiple or w % multiple or h < 1 or w < 1:
        raise ConfigError(f"crop {h}x{w}: both sides must be positive multiples of {multiple} "
                          f"(BP-Net downsamples 5 times)")
    return h, w


def parse_crop(
    crop: tuple[int, int] | None,
    canvas_hw: tuple[int, int],
    default: tuple[int, int] = (256, 1216),
    multiple: int = SIZE_MULTIPLE,
) -> tuple[int, int]:
    """Training crop (h, w): ``crop`` if given (must fit the canvas), else ``default``
    clipped to the canvas; both rounded down to / checked against ``multiple`` pixels."""
    ch, cw = canvas_hw
    if crop is None:
        h, w = (min(d, c) // multiple * multiple for d, c in zip(default, canvas_hw, strict=True))
        if h < multiple or w < multiple:
            raise ConfigError(
                f"store canvas {ch}x{cw} is smaller than the network's "
                f"minimum input {multiple}x{multiple}"
            )
        return h, w
    h, w = (int(v) for v in crop)
    if h > ch or w > cw:
        raise ConfigError(
            f"crop {h}x{w} is larger than the store canvas {ch}x{cw}: "
            f"set data.crop=[{min(h, ch) // multiple * multiple},"
            f"{min(w, cw) // multiple * multiple}] or leave it unset"
        )
    return check_crop_size((h, w), multiple)


def crop(sample: Sample, y0: int, x0: int, h: int, w: int) -> Sample:
    """The ``h x w`` window at (y0, x0); the principal point moves with the window."""
    H, W = sample.hw
    if not (0 <= y0 <= H - h and 0 <= x0 <= W - w):
        raise ConfigError(f"crop {h}x{w} at ({y0}, {x0}) does not fit sample {sample.key} of "
                          f"{H}x{W}")
    K = sample.K.astype(np.float32).copy()
    K[0, 2] -= x0
    K[1, 2] -= y0
    return sample.with_pixels(lambda a: a[y0 : y0 + h, x0 : x0 + w], K)


def random_crop(sample: Sample, size: tuple[int, int], rng: np.random.Generator,
                top_min: int = 0) -> Sample:
    """A random ``size`` window: top uniform in [min(top_min, H-h), H-h], left uniform.

    ``top_min`` > 0 keeps the window away from the top rows (KITTI: LiDAR-free sky).
    """
    H, W = sample.hw
    y0 = int(rng.integers(min(top_min, H - size[0]), H - size[0] + 1))
    x0 = int(rng.integers(0, W - size[1] + 1))
    return crop(sample, y0, x0, *size)


def center_crop(sample: Sample, size: tuple[int, int]) -> Sample:
    H, W = sample.hw
    return crop(sample, (H - size[0]) // 2, (W - size[1]) // 2, *size)


def bottom_center_crop(sample: Sample, size: tuple[int, int]) -> Sample:
    """The bottom rows, centred columns (KITTI's evaluation window, val_selection_cropped)."""
    H, W = sample.hw
    return crop(sample, H - size[0], (W - size[1]) // 2, *size)


def hflip(sample: Sample) -> Sample:
    """Mirror every map left-right; K becomes the mirrored camera (cx -> W-1-cx, skew -> -skew)."""
    W = sample.hw[1]
    K = sample.K.astype(np.float32).copy()
    K[0, 2] = (W - 1) - K[0, 2]
    K[0, 1] = -K[0, 1]
    return sample.with_pixels(lambda a: a[:, ::-1], K)


def pca_noise(rgb: np.ndarray, rng: np.random.Generator, std: float) -> np.ndarray:
    """AlexNet/BP-Net PCA colour jitter of a uint8 [H,W,3] image: the per-channel offset
    float32 [3] (in [0, 1] intensity units) to add before clipping to [0, 1]."""
    weights = rng.standard_normal(3) * std
    if std <= 0:
        return np.zeros(3, np.float32)
    flat = rgb.reshape(-1, 3)
    sample = flat[:: max(1, len(flat) // 4096)].astype(np.float64) / 255.0
    e_vals, e_vecs = np.linalg.eigh(np.cov(sample.T))
    offset = (np.sqrt(np.clip(e_vals, 0.0, None)) * e_vecs * weights).sum(axis=1)
    return np.asarray(offset, np.float32)


def pca_jitter(rgb: np.ndarray, rng: np.random.Generator, std: float) -> np.ndarray:
    """uint8 [H,W,3] -> jittered float32 [H,W,3] in [0, 1] (reference form of the batch path)."""
    noise = pca_noise(rgb, rng, std)
    return np.asarray(np.clip(rgb.astype(np.float32) / 255.0 + noise, 0.0, 1.0), np.float32)


def augment(sample: Sample, size: tuple[int, int], cfg: AugmentConfig,
            rng: np.random.Generator, top_min: int = 0) -> tuple[Sample, np.ndarray]:
    """Random crop (see :func:`random_crop`) + flip of all maps, then rgb colour jitter:
    (sample, colour offset [3]).

    The offset is applied (and rgb clipped and normalised) when the batch is assembled
    (:func:`train.datasets.sample.collate`), in one pass over the pixels.
    """
    sample = random_crop(sample, size, rng, top_min)
    if rng.random() < cfg.flip_prob:
        sample = hflip(sample)
    return sample, pca_noise(sample.rgb, rng, cfg.jitter_std)
