"""KITTI depth-completion frames as :class:`~train.datasets.sample.Sample` s (stage 2).

A frame's sample: rgb, the ``velodyne_raw`` map as ``sparse``, the ground truth as
``target`` (zeros for the test split) and, with teacher maps, the teacher output as
``teacher`` (in the configured form, computed from the whole frame before any crop, see
:mod:`train.datasets.kitti.teacher`). Training (BP-Net's recipe, through
:mod:`train.datasets.augment`): optional whole-frame colour and LiDAR ops, a horizontal
flip of every map and K (the teacher too unless ``flip_teacher`` is false, the released
bug), a ``crop`` window (default 256 x 1216) at a random top offset between ``top_min`` and
the bottom of the image and a random left offset, PCA colour jitter of rgb. Evaluation: the
bottom-centre ``crop`` window, no augmentation. Every random choice derives from (seed,
epoch, frame name).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from torch.utils.data import Dataset

from data_schemas.errors import InputError
from train.datasets.augment import AugmentConfig, augment, bottom_center_crop
from train.datasets.kitti.io import read_depth_png, read_rgb
from train.datasets.kitti.layout import KittiFrame
from train.datasets.kitti.teacher import TeacherSource, open_teacher
from train.datasets.sample import Item, Sample
from train.datasets.sampling import SampleRef, sample_rng

DEFAULT_CROP: tuple[int, int] = (256, 1216)
"""BP-Net's KITTI training crop (h, w)."""
DEFAULT_TOP_MIN = 50
"""Lowest top offset of a training crop (BP-Net ``tp_min``): skip the LiDAR-free sky rows."""


def _check_same_size(frame: KittiFrame, maps: dict[str, np.ndarray]) -> None:
    sizes = {name: m.shape[:2] for name, m in maps.items()}
    if len(set(sizes.values())) > 1:
        listed = ", ".join(f"{n} {s[1]}x{s[0]}" for n, s in sizes.items())
        raise InputError(f"frame {frame.name}: map sizes differ ({listed})")


def load_sample(frame: KittiFrame, teacher: TeacherSource | None = None) -> Sample:
    """Read one frame's files (teacher output resized to the image if needed)."""
    rgb = read_rgb(frame.image)
    sparse = read_depth_png(frame.sparse)
    gt = read_depth_png(frame.gt) if frame.gt is not None else np.zeros_like(sparse)
    _check_same_size(frame, {"image": rgb, "velodyne_raw": sparse, "groundtruth": gt})
    hw = (int(rgb.shape[0]), int(rgb.shape[1]))
    teacher_map = teacher.read(frame, hw) if teacher is not None else None
    return Sample(rgb, sparse, gt, frame.K.astype(np.float32), frame.name, teacher_map)


class KittiDataset(Dataset[Item]):
    """Frames -> :class:`Item` s, indexed by :class:`SampleRef` (epoch, frame, batch).

    ``train=True`` applies the augmentation of ``augment`` (crop with ``top_min``, flip, ...);
    otherwise the bottom-centre ``crop``. The teacher source (``teacher_maps`` read in
    ``teacher_form``) is opened lazily in each worker.
    """

    def __init__(self, frames: Sequence[KittiFrame], train: bool,
                 crop: tuple[int, int] = DEFAULT_CROP, augment: AugmentConfig | None = None,
                 top_min: int = DEFAULT_TOP_MIN, teacher_maps: str | None = None,
                 seed: int = 0, teacher_form: str = "raw", flip_teacher: bool = True) -> None:
        if not frames:
            raise ValueError("no KITTI frames")
        self.frames, self.train, self.crop = list(frames), train, crop
        self.augment = augment if augment is not None else AugmentConfig()
        self.top_min, self.seed = top_min, seed
        self.teacher_maps = None if teacher_maps is None else os.fspath(teacher_maps)
        self.teacher_form, self.flip_teacher = teacher_form, flip_teacher
        self._teacher: TeacherSource | None = None

    def __len__(self) -> int:
        return len(self.frames)

    def __getstate__(self) -> dict[str, object]:
        return {**self.__dict__, "_teacher": None}  # each worker opens the store itself

    def _teacher_maps(self) -> TeacherSource | None:
        if self.teacher_maps is not None and self._teacher is None:
            self._teacher = open_teacher(self.teacher_maps, self.teacher_form)
        return self._teacher

    def sample(self, index: int, epoch: int = 0) -> tuple[Sample, np.ndarray]:
        """Frame ``index`` as drawn in ``epoch``: (sample, pending rgb colour offset [3])."""
        frame = self.frames[index]
        sample = load_sample(frame, self._teacher_maps())
        if not self.train:
            return bottom_center_crop(sample, self.crop), np.zeros(3, np.float32)
        rng = sample_rng(self.seed, epoch, frame.name)
        return augment(sample, self.crop, self.augment, rng, self.top_min, self.flip_teacher)

    def __getitem__(self, ref: SampleRef) -> Item:
        sample, colour = self.sample(ref.item, ref.epoch)
        return Item(sample, colour, ref.epoch, ref.batch)
