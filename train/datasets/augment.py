"""The one augmentation module of every dataset: crops, horizontal flip, colour and LiDAR
augmentation.

Geometric ops act on *every* map of a :class:`Sample` (rgb, sparse depth, target, teacher
output) and on the intrinsics, so the sample stays a consistent camera (the teacher may be
left unflipped to reproduce the released DMD3C code, see :func:`augment`); photometric ops
act on rgb only, LiDAR ops on the sparse input only. Every random choice comes from one
generator per sample (:func:`train.datasets.sampling.sample_rng` of (seed, epoch, sample
key)): the same sample gets the same augmentation whichever worker, rank or resume reads it.

The order of :func:`augment` is the released code's (``Sharpiless/DMD3C`` ``datasets/kitti.py``
+ ``augs.py``; ``Sharpiless/DMD3Cpp`` adds its steps in the same places): whole-frame colour
ops (PCA jitter when ``jitter_on="frame"``, then DMD3C++'s grey, brightness/contrast,
gamma), LiDAR point dropout and range noise (DMD3C++), the flip of the frame, the crop,
then (``jitter_on="crop"``) our cheaper PCA jitter of the crop.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from data_schemas.errors import ConfigError
from data_schemas.sample_schema import DEPTH_SCALE
from train.datasets.sample import Sample

SIZE_MULTIPLE = 32
"""Crops are multiples of 32 pixels: BP-Net downsamples 5 times."""
JITTER_ON = ("crop", "frame")
GREY_WEIGHTS = (0.299, 0.587, 0.114)
"""ITU-R 601 luma weights of DMD3C++'s ``augs.RandomGray``."""


@dataclass(frozen=True)
class AugmentConfig:
    """Random augmentation of training samples (validation uses a fixed crop only)."""

    flip_prob: float = 0.5
    """Probability of a horizontal flip (of rgb, every depth map and K)."""
    jitter_std: float = 0.1
    """PCA colour jitter magnitude (std of the principal-component weights, BP-Net); 0 = off."""
    jitter_on: str = "crop"
    """"crop": PCA of the training crop (4k pixels), offset applied in the batch pass (fast);
    "frame": the release's ``augs.Jitter``, PCA of the whole frame before the crop, the
    result truncated back to 8 bits."""
    grey_prob: float = 0.0
    """Probability of turning rgb grey, 0.299 R + 0.587 G + 0.114 B (DMD3C++: 0.2)."""
    brightness_contrast_prob: float = 0.0
    """Probability of a brightness then contrast change (DMD3C++: 0.3)."""
    brightness: float = 0.2
    """rgb x (1 + U(-b, b)) (DMD3C++: 0.2)."""
    contrast: float = 0.2
    """(rgb - channel mean) x (1 + U(-c, c)) + channel mean, clipped to 0..255 (DMD3C++: 0.2)."""
    gamma_prob: float = 0.0
    """Probability of a gamma change, 255 (rgb / 255) ^ U(gamma_range) (DMD3C++: 0.3)."""
    gamma_range: tuple[float, float] = (0.8, 1.2)
    """Range of the gamma exponent (DMD3C++: 0.8-1.2)."""
    lidar_dropout_prob: float = 0.0
    """Probability of dropping LiDAR points from a frame (DMD3C++: 0.3)."""
    lidar_dropout_max: float = 0.3
    """A dropping frame loses each point with probability U(0, max) (DMD3C++: 0.3)."""
    lidar_noise_prob: float = 0.0
    """Probability of range noise on a frame, and then of noise on each of its points (DMD3C++
    uses its one value 0.35 for both)."""
    lidar_noise_std_m: float = 0.1
    """Std of the Gaussian noise added to a noisy point's depth, m (DMD3C++: 0.1)."""
    lidar_noise_max_m: float = 200.0
    """Noisy depths are clipped to [0, max] m (DMD3C++: 200; a point clipped to 0 is lost)."""


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


def draw_crop(hw: tuple[int, int], size: tuple[int, int], rng: np.random.Generator,
              top_min: int = 0) -> tuple[int, int]:
    """Top-left (y0, x0) of a random ``size`` window: top uniform in [min(top_min, H-h), H-h],
    left uniform in [0, W-w] (the release: ``random.randint(tp_min, H-h)``,
    ``random.randint(0, W-w)``)."""
    H, W = hw
    y0 = int(rng.integers(min(top_min, H - size[0]), H - size[0] + 1))
    x0 = int(rng.integers(0, W - size[1] + 1))
    return y0, x0


def random_crop(sample: Sample, size: tuple[int, int], rng: np.random.Generator,
                top_min: int = 0) -> Sample:
    """A random ``size`` window (see :func:`draw_crop`).

    ``top_min`` > 0 keeps the window away from the top rows (KITTI: LiDAR-free sky).
    """
    return crop(sample, *draw_crop(sample.hw, size, rng, top_min), *size)


def center_crop(sample: Sample, size: tuple[int, int]) -> Sample:
    H, W = sample.hw
    return crop(sample, (H - size[0]) // 2, (W - size[1]) // 2, *size)


def bottom_center_crop(sample: Sample, size: tuple[int, int]) -> Sample:
    """The bottom rows, centred columns (KITTI's evaluation window, val_selection_cropped)."""
    H, W = sample.hw
    return crop(sample, H - size[0], (W - size[1]) // 2, *size)


def hflip(sample: Sample, flip_teacher: bool = True) -> Sample:
    """Mirror every map left-right; K becomes the mirrored camera (cx -> W-1-cx, skew -> -skew).

    ``flip_teacher=False`` leaves the teacher map as it is (the released DMD3C code's
    ``augs.Flip``, which mirrors rgb, LiDAR, GT and K only).
    """
    W = sample.hw[1]
    K = sample.K.astype(np.float32).copy()
    K[0, 2] = (W - 1) - K[0, 2]
    K[0, 1] = -K[0, 1]
    flipped = sample.with_pixels(lambda a: a[:, ::-1], K)
    return flipped if flip_teacher else replace(flipped, teacher=sample.teacher)


def pca_noise(rgb: np.ndarray, rng: np.random.Generator, std: float) -> np.ndarray:
    """AlexNet/BP-Net PCA colour jitter of a uint8 [H,W,3] image: the per-channel offset
    float32 [3] (in [0, 1] intensity units) to add before clipping to [0, 1]."""
    weights = rng.standard_normal(3) * std
    if std <= 0:
        return np.zeros(3, np.float32)
    sample = pixel_subsample(rgb).astype(np.float64) / 255.0
    e_vals, e_vecs = np.linalg.eigh(np.cov(sample.T))
    offset = (np.sqrt(np.clip(e_vals, 0.0, None)) * e_vecs * weights).sum(axis=1)
    return np.asarray(offset, np.float32)


def pixel_subsample(rgb: np.ndarray, count: int = 4096) -> np.ndarray:
    """Every ``len // count``-th pixel of [H,W,3] in row-major order: ``[n, 3]``, the rows of
    ``rgb.reshape(-1, 3)[::step]``, gathered without copying the image (a crop or flipped
    view would be copied whole by the reshape)."""
    h, w = rgb.shape[:2]
    flat = np.arange(0, h * w, max(1, h * w // count))
    return np.asarray(rgb[flat // w, flat % w])


def pca_jitter(rgb: np.ndarray, rng: np.random.Generator, std: float) -> np.ndarray:
    """uint8 [H,W,3] -> jittered float32 [H,W,3] in [0, 1] (reference form of the batch path)."""
    noise = pca_noise(rgb, rng, std)
    return np.asarray(np.clip(rgb.astype(np.float32) / 255.0 + noise, 0.0, 1.0), np.float32)


def released_pca_jitter(rgb: np.ndarray, rng: np.random.Generator, std: float) -> np.ndarray:
    """The release's ``augs.Jitter`` of a whole frame (rgb 0..255, [H,W,3]) -> uint8 [H,W,3].

    PCA of every pixel (float32 / 255, ``np.cov`` in float64), offset = sum of the principal
    components x N(0, std) weights, added in float64, clipped to [0, 1], x 255 and truncated
    to 8 bits. A zero-variance direction (eigenvalue <= 0, where the release takes the square
    root of a negative rounding residue) contributes nothing here.
    """
    data = rgb.astype(np.float32) / np.float32(255.0)
    e_vals, e_vecs = np.linalg.eigh(np.cov(data.reshape(-1, 3).T))
    pca = np.sqrt(np.clip(e_vals, 0.0, None)) * e_vecs
    noise = (pca * (rng.standard_normal(3) * std)).sum(axis=1)
    jittered = np.clip(data + noise, 0.0, 1.0)
    return np.asarray(jittered * 255, dtype=np.float64).astype(np.uint8)


def grey(rgb: np.ndarray) -> np.ndarray:
    """DMD3C++'s ``RandomGray``: luma in float64, cast back to rgb's dtype, on 3 channels."""
    r, g, b = GREY_WEIGHTS
    luma = (r * rgb[:, :, 0] + g * rgb[:, :, 1] + b * rgb[:, :, 2]).astype(rgb.dtype)
    return np.stack([luma, luma, luma], axis=2)


def brightness_contrast(rgb: np.ndarray, b: float, c: float) -> np.ndarray:
    """DMD3C++'s ``RandomBrightnessContrast`` with factors ``b``, ``c``: float32 [H,W,3]."""
    out = rgb.astype(np.float32) * b
    mean = np.mean(out, axis=(0, 1), keepdims=True)
    out = (out - mean) * c + mean
    return np.clip(out, 0, 255, out=out)


def gamma(rgb: np.ndarray, exponent: float) -> np.ndarray:
    """DMD3C++'s ``RandomGamma`` with ``exponent``: float32 [H,W,3] in 0..255."""
    out = (np.power(rgb.astype(np.float32) / 255.0, exponent) * 255.0).astype(np.float32)
    return np.clip(out, 0, 255, out=out)


def frame_colour(rgb: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """The whole-frame colour ops in the released order: PCA jitter (``jitter_on="frame"``),
    grey, brightness/contrast, gamma. Unchanged rgb when all are off."""
    if cfg.jitter_on == "frame" and cfg.jitter_std > 0:
        rgb = released_pca_jitter(rgb, rng, cfg.jitter_std)
    if cfg.grey_prob > 0 and rng.random() < cfg.grey_prob:
        rgb = grey(rgb)
    if cfg.brightness_contrast_prob > 0 and rng.random() < cfg.brightness_contrast_prob:
        b = 1.0 + rng.uniform(-cfg.brightness, cfg.brightness)
        rgb = brightness_contrast(rgb, b, 1.0 + rng.uniform(-cfg.contrast, cfg.contrast))
    if cfg.gamma_prob > 0 and rng.random() < cfg.gamma_prob:
        rgb = gamma(rgb, float(rng.uniform(*cfg.gamma_range)))
    return rgb


def lidar_dropout(sparse: np.ndarray, rng: np.random.Generator, max_ratio: float) -> np.ndarray:
    """Each valid point lost with probability U(0, ``max_ratio``) (one draw per frame)."""
    ratio = rng.random() * max_ratio
    points = np.flatnonzero(sparse > 0)
    out = sparse.copy()
    out.flat[points[rng.random(len(points)) < ratio]] = 0.0
    return out


def lidar_noise(sparse: np.ndarray, rng: np.random.Generator, prob: float, std_m: float,
                max_m: float) -> np.ndarray:
    """Each valid point, with probability ``prob``, gets N(0, std_m) m added (float32) and
    clipped to [0, max_m]; invalid pixels stay 0."""
    points = np.flatnonzero(sparse > 0)
    noisy = points[rng.random(len(points)) < prob]
    out = sparse.copy()
    shifted = out.flat[noisy] + rng.normal(0.0, std_m, len(noisy)).astype(np.float32)
    out.flat[noisy] = np.clip(shifted, 0.0, max_m)
    return out


def depth_metres(depth: np.ndarray) -> np.ndarray:
    """float32 metres of a depth map given in metres or in stored units (uint16, m x 256)."""
    if depth.dtype == np.uint16:
        return depth.astype(np.float32) / np.float32(DEPTH_SCALE)
    return depth


def frame_lidar(sparse: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """DMD3C++'s LiDAR augmentation, dropout then range noise (each on a frame with its
    probability); a map in stored units (uint16) is changed in float32 metres."""
    if cfg.lidar_dropout_prob > 0 or cfg.lidar_noise_prob > 0:
        sparse = depth_metres(sparse)
    if cfg.lidar_dropout_prob > 0 and rng.random() <= cfg.lidar_dropout_prob:
        sparse = lidar_dropout(sparse, rng, cfg.lidar_dropout_max)
    if cfg.lidar_noise_prob > 0 and rng.random() <= cfg.lidar_noise_prob:
        sparse = lidar_noise(sparse, rng, cfg.lidar_noise_prob, cfg.lidar_noise_std_m,
                             cfg.lidar_noise_max_m)
    return sparse


def augment(sample: Sample, size: tuple[int, int], cfg: AugmentConfig,
            rng: np.random.Generator, top_min: int = 0,
            flip_teacher: bool = True) -> tuple[Sample, np.ndarray]:
    """Whole-frame colour and LiDAR ops, then the flip of the frame (``flip_prob``; the teacher
    too unless ``flip_teacher`` is false, the released bug) and a random ``size`` window (see
    :func:`draw_crop`), then the PCA jitter of the crop when ``jitter_on="crop"``:
    (sample, colour offset [3]).

    The window is drawn before the flip and taken at the mirrored position of the flipped
    frame, i.e. crop-then-flip of all maps: the same distribution as the release's
    flip-then-crop, and for a teacher left unflipped, exactly what the release pairs.
    The offset is applied (and rgb clipped and normalised) when the batch is assembled
    (:func:`train.datasets.sample.collate`), in one pass over the pixels.
    """
    rgb, sparse = frame_colour(sample.rgb, cfg, rng), frame_lidar(sample.sparse, cfg, rng)
    if rgb is not sample.rgb or sparse is not sample.sparse:
        sample = replace(sample, rgb=rgb, sparse=sparse)
    y0, x0 = draw_crop(sample.hw, size, rng, top_min)
    if rng.random() < cfg.flip_prob:
        sample, x0 = hflip(sample, flip_teacher), sample.hw[1] - size[1] - x0
    sample = crop(sample, y0, x0, *size)
    if cfg.jitter_on != "crop":
        return sample, np.zeros(3, np.float32)
    return sample, pca_noise(sample.rgb, rng, cfg.jitter_std)


def check_augment(cfg: AugmentConfig) -> None:
    """One-line ConfigErrors for invalid augmentation settings."""
    if cfg.jitter_on not in JITTER_ON:
        raise ConfigError(f"data.augment.jitter_on must be one of {', '.join(JITTER_ON)}; got "
                          f"{cfg.jitter_on!r}")
    probs = {"flip_prob": cfg.flip_prob, "grey_prob": cfg.grey_prob,
             "brightness_contrast_prob": cfg.brightness_contrast_prob,
             "gamma_prob": cfg.gamma_prob, "lidar_dropout_prob": cfg.lidar_dropout_prob,
             "lidar_dropout_max": cfg.lidar_dropout_max, "lidar_noise_prob": cfg.lidar_noise_prob}
    bad = [f"{k}={v}" for k, v in probs.items() if not 0.0 <= v <= 1.0]
    if bad:
        raise ConfigError(f"data.augment: probabilities must be in [0, 1]; got {', '.join(bad)}")
    if not 0 < cfg.gamma_range[0] <= cfg.gamma_range[1]:
        raise ConfigError(f"data.augment.gamma_range must satisfy 0 < low <= high; got "
                          f"{list(cfg.gamma_range)}")
