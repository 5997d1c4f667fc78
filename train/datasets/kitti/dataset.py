"""KITTI depth-completion samples for stage-2 fine-tuning and evaluation.

Training (BP-Net's recipe): a ``crop`` window (default 256 x 1216) taken at a random top
offset between ``top_min`` and the bottom of the image and a random left offset, then a
horizontal flip (p = 0.5) of every map (rgb, sparse, GT, teacher) and of K, then PCA colour
jitter of rgb. Evaluation: the bottom-centre ``crop`` window, no augmentation. Every
random choice derives from (seed, epoch, frame name).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch.utils.data import Dataset

from train.data.augment import pca_jitter, sample_rng
from train.kitti.io import read_depth_png, read_rgb
from train.kitti.layout import KittiFrame
from train.kitti.teacher import TeacherMaps
from train.model.inputs import normalize_rgb

DEFAULT_CROP: tuple[int, int] = (256, 1216)
DEFAULT_TOP_MIN = 50
"""Lowest top offset of a training crop (BP-Net ``tp_min``): skip the LiDAR-free sky rows."""


@dataclass(frozen=True)
class KittiSample:
    """rgb uint8 [H,W,3]; sparse, gt, teacher float32 [H,W] (0 = none); K float32 [3,3]."""

    rgb: np.ndarray
    sparse: np.ndarray
    gt: np.ndarray
    teacher: np.ndarray
    K: np.ndarray
    name: str

    @property
    def hw(self) -> tuple[int, int]:
        return int(self.rgb.shape[0]), int(self.rgb.shape[1])


def _check_same_size(frame: KittiFrame, maps: dict[str, np.ndarray]) -> None:
    sizes = {name: m.shape[:2] for name, m in maps.items()}
    if len(set(sizes.values())) > 1:
        listed = ", ".join(f"{n} {s[1]}x{s[0]}" for n, s in sizes.items())
        raise ValueError(f"frame {frame.name}: map sizes differ ({listed})")


def load_sample(frame: KittiFrame, teacher: TeacherMaps | None = None) -> KittiSample:
    """Read one frame's files (teacher output resized to the image if needed)."""
    rgb = read_rgb(frame.image)
    sparse = read_depth_png(frame.sparse)
    gt = read_depth_png(frame.gt) if frame.gt is not None else np.zeros_like(sparse)
    _check_same_size(frame, {"image": rgb, "velodyne_raw": sparse, "groundtruth": gt})
    hw = rgb.shape[:2]
    teacher_map = teacher.read(frame, hw) if teacher is not None else np.zeros(hw, np.float32)
    return KittiSample(rgb, sparse, gt, teacher_map, frame.K.astype(np.float32), frame.name)


def crop_sample(sample: KittiSample, top: int, left: int, h: int, w: int) -> KittiSample:
    """The ``h x w`` window at (top, left); the principal point moves with it."""
    H, W = sample.hw
    if not (0 <= top <= H - h and 0 <= left <= W - w):
        raise ValueError(f"crop {h}x{w} at ({top}, {left}) does not fit frame {sample.name} "
                         f"of {H}x{W}")
    K = sample.K.copy()
    K[0, 2] -= left
    K[1, 2] -= top
    win = np.s_[top:top + h, left:left + w]
    return replace(sample, rgb=sample.rgb[win], sparse=sample.sparse[win], gt=sample.gt[win],
                   teacher=sample.teacher[win], K=K)


def bottom_center_crop(sample: KittiSample, h: int, w: int) -> KittiSample:
    """The evaluation window: bottom rows, centred columns (val_selection_cropped's rule)."""
    H, W = sample.hw
    return crop_sample(sample, H - h, (W - w) // 2, h, w)


def random_bottom_crop(sample: KittiSample, h: int, w: int, top_min: int,
                       rng: np.random.Generator) -> KittiSample:
    """A training window: top offset uniform in [min(top_min, H-h), H-h], left uniform."""
    H, W = sample.hw
    top = int(rng.integers(min(top_min, H - h), H - h + 1))
    return crop_sample(sample, top, int(rng.integers(0, W - w + 1)), h, w)


def hflip_sample(sample: KittiSample) -> KittiSample:
    """Mirror every map left-right; K becomes the mirrored camera (cx -> W-1-cx)."""
    K = sample.K.copy()
    K[0, 2] = (sample.hw[1] - 1) - K[0, 2]
    return replace(sample, rgb=sample.rgb[:, ::-1], sparse=sample.sparse[:, ::-1],
                   gt=sample.gt[:, ::-1], teacher=sample.teacher[:, ::-1], K=K)


@dataclass(frozen=True)
class KittiAugment:
    """Training augmentation of KITTI frames."""

    crop: tuple[int, int] = DEFAULT_CROP
    """Crop (h, w); both multiples of 32 (BP-Net)."""
    top_min: int = DEFAULT_TOP_MIN
    """Lowest top offset of the random crop, in px."""
    flip_prob: float = 0.5
    """Probability of a horizontal flip of all maps and K."""
    jitter_std: float = 0.1
    """PCA colour jitter magnitude (BP-Net); 0 = off."""


def to_tensors(sample: KittiSample, rgb01: np.ndarray | None = None) -> dict[str, object]:
    """A sample as the tensors a batch is made of (rgb normalised like BP-Net)."""
    rgb = sample.rgb.astype(np.float32) / 255.0 if rgb01 is None else rgb01
    rgb_t = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32))

    def plane(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None]

    return {"rgb": normalize_rgb(rgb_t * 255.0), "sparse": plane(sample.sparse),
            "gt": plane(sample.gt), "teacher": plane(sample.teacher),
            "K": torch.from_numpy(np.ascontiguousarray(sample.K, dtype=np.float32)),
            "name": sample.name}


class KittiDataset(Dataset):
    """Frames -> dicts of tensors: rgb [3,h,w], sparse/gt/teacher [1,h,w], K [3,3], name.

    ``train=True`` applies :class:`KittiAugment`; otherwise the bottom-centre ``crop``.
    The teacher store is opened lazily in each worker process.
    """

    def __init__(self, frames: Sequence[KittiFrame], train: bool,
                 augment: KittiAugment = KittiAugment(), teacher_maps: str | None = None,
                 seed: int = 0) -> None:
        if not frames:
            raise ValueError("no KITTI frames")
        self.frames = list(frames)
        self.train = train
        self.augment = augment
        self.teacher_maps = None if teacher_maps is None else os.fspath(teacher_maps)
        self.seed = seed
        self.epoch = 0
        self._teacher: TeacherMaps | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.frames)

    def _teacher_maps(self) -> TeacherMaps | None:
        if self.teacher_maps is not None and self._teacher is None:
            self._teacher = TeacherMaps(self.teacher_maps)
        return self._teacher

    def __getitem__(self, index: int) -> dict[str, object]:
        frame = self.frames[index]
        sample = load_sample(frame, self._teacher_maps())
        h, w = self.augment.crop
        if not self.train:
            return to_tensors(bottom_center_crop(sample, h, w))
        rng = sample_rng(self.seed, self.epoch, frame.name)
        sample = random_bottom_crop(sample, h, w, self.augment.top_min, rng)
        if rng.random() < self.augment.flip_prob:
            sample = hflip_sample(sample)
        return to_tensors(sample, pca_jitter(sample.rgb, rng, self.augment.jitter_std))
