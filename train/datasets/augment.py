"""Training augmentations on one sample: random crop, horizontal flip, PCA colour jitter.

Geometric ops act on *every* map (rgb, sparse depth, teacher depth) and on the
intrinsics, so the sample stays a consistent camera; photometric ops act on rgb only.
Every random choice comes from :func:`sample_rng` (global seed, epoch, sample key): the
same sample gets the same augmentation whichever worker, rank or resume reads it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

import numpy as np

from data_schemas.errors import ConfigError


@dataclass(frozen=True)
class SampleView:
    """One sample in camera pixels: rgb uint8 [H,W,3], sparse/target depth float32 [H,W] in m
    (0 = no data), K float32 [3,3] pinhole intrinsics (OpenCV), key the stable sample key."""

    rgb: np.ndarray
    sparse: np.ndarray
    target: np.ndarray
    K: np.ndarray
    key: str

    @property
    def hw(self) -> tuple[int, int]:
        return int(self.rgb.shape[0]), int(self.rgb.shape[1])


@dataclass(frozen=True)
class AugmentConfig:
    """Random augmentation of training samples (validation uses a centre crop only)."""

    flip_prob: float = 0.5
    """Probability of a horizontal flip (of rgb, sparse, target and K)."""
    jitter_std: float = 0.1
    """PCA colour jitter magnitude (std of the principal-component weights, BP-Net); 0 = off."""


def sample_rng(seed: int, epoch: int, key: str) -> np.random.Generator:
    """The generator of every random choice for sample ``key`` in ``epoch``."""
    digest = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little")
    return np.random.default_rng([seed, epoch, digest])


def parse_crop(
    crop: tuple[int, int] | None,
    canvas_hw: tuple[int, int],
    default: tuple[int, int] = (256, 1216),
    multiple: int = 32,
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
    if h % multiple or w % multiple or h < 1 or w < 1:
        raise ConfigError(
            f"crop {h}x{w}: both sides must be positive multiples of {multiple} "
            f"(BP-Net downsamples 5 times)"
        )
    return h, w


def crop(view: SampleView, y0: int, x0: int, h: int, w: int) -> SampleView:
    """The ``h x w`` window at (y0, x0); the principal point moves with the window."""
    H, W = view.hw
    if not (0 <= y0 <= H - h and 0 <= x0 <= W - w):
        raise ConfigError(f"crop {h}x{w} at ({y0}, {x0}) outside the {H}x{W} canvas")
    K = view.K.astype(np.float32).copy()
    K[0, 2] -= x0
    K[1, 2] -= y0
    window = np.s_[y0 : y0 + h, x0 : x0 + w]
    return SampleView(view.rgb[window], view.sparse[window], view.target[window], K, view.key)


def random_crop(view: SampleView, size: tuple[int, int], rng: np.random.Generator) -> SampleView:
    H, W = view.hw
    y0 = int(rng.integers(0, H - size[0] + 1))
    x0 = int(rng.integers(0, W - size[1] + 1))
    return crop(view, y0, x0, *size)


def center_crop(view: SampleView, size: tuple[int, int]) -> SampleView:
    H, W = view.hw
    return crop(view, (H - size[0]) // 2, (W - size[1]) // 2, *size)


def hflip(view: SampleView) -> SampleView:
    """Mirror every map left-right; K becomes the mirrored camera (cx -> W-1-cx, skew -> -skew)."""
    W = view.hw[1]
    K = view.K.astype(np.float32).copy()
    K[0, 2] = (W - 1) - K[0, 2]
    K[0, 1] = -K[0, 1]
    return SampleView(view.rgb[:, ::-1], view.sparse[:, ::-1], view.target[:, ::-1], K, view.key)


def pca_noise(rgb: np.ndarray, rng: np.random.Generator, std: float) -> np.ndarray:
    """AlexNet/BP-Net PCA colour jitter of a uint8 [H,W,3] image: the per-channel offset
    float32 [3] (in [0, 1] intensity units) to add before clipping to [0, 1]."""
    weights = rng.standard_normal(3) * std
    if std <= 0:
        return np.zeros(3, np.float32)
    flat = rgb.reshape(-1, 3)
    sample = flat[:: max(1, len(flat) // 4096)].astype(np.float64) / 255.0
    e_vals, e_vecs = np.linalg.eigh(np.cov(sample.T))
    return (np.sqrt(np.clip(e_vals, 0.0, None)) * e_vecs * weights).sum(axis=1).astype(np.float32)


def pca_jitter(rgb: np.ndarray, rng: np.random.Generator, std: float) -> np.ndarray:
    """uint8 [H,W,3] -> jittered float32 [H,W,3] in [0, 1] (reference form of the batch path)."""
    noise = pca_noise(rgb, rng, std)
    return np.clip(rgb.astype(np.float32) / 255.0 + noise, 0.0, 1.0)


def augment(view: SampleView, size: tuple[int, int], cfg: AugmentConfig,
            rng: np.random.Generator) -> tuple[SampleView, np.ndarray]:
    """Random crop + flip of all maps, then rgb colour jitter: (view, colour offset [3]).

    The offset is applied (and rgb clipped and normalised) when the batch is assembled
    (:func:`train.data.batch.collate`), in one pass over the pixels.
    """
    view = random_crop(view, size, rng)
    if rng.random() < cfg.flip_prob:
        view = hflip(view)
    return view, pca_noise(view.rgb, rng, cfg.jitter_std)


def contiguous(view: SampleView) -> SampleView:
    """Copies of the (possibly strided) maps, so that torch can wrap them."""
    return replace(
        view,
        rgb=np.ascontiguousarray(view.rgb),
        sparse=np.ascontiguousarray(view.sparse),
        target=np.ascontiguousarray(view.target),
    )
