"""NYUv2 depth completion in the common BP-Net / NLSPN / CompletionFormer format.

Data: HDF5 files (Ma & Karaman's ``nyudepthv2`` release) under ``ROOT/{train,val}/**/*.h5``,
each with ``rgb`` uint8 [3,480,640] and ``depth`` float [480,640] in metres. A sample is
resized to 320x240 (bilinear, like torchvision's ``Resize(240)``), centre-cropped to
304x228, and 500 pixels with GT > 0.1 mm are kept as the sparse input (random per sample;
fixed per file for evaluation). Intrinsics: the NYUv2 Kinect K halved, then shifted by
the crop (cx - 8, cy - 6). Training samples get fresh sparse points every epoch and a
random horizontal flip (no crop or colour jitter), both from
:func:`~train.datasets.sampling.sample_rng` of (seed, epoch, ``<scene>/<file stem>``);
batches are zero-padded to 256x320 like BP-Net's (:func:`pad_collate`). ``h5py`` is
imported only when NYU files are read.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from torch.utils.data import Dataset

from data_schemas.errors import InputError, InputNotFoundError
from train.datasets.augment import hflip
from train.datasets.sample import Batch, Item, Sample, collate_items, pad_batch
from train.datasets.sampling import SampleRef, sample_rng

NYU_K = np.array([[5.1885790117450188e02, 0.0, 3.2558244941119034e02],
                  [0.0, 5.1946961112127485e02, 2.5373616633400465e02],
                  [0.0, 0.0, 1.0]])
"""Intrinsics of the 640x480 NYUv2 frames (as in NLSPN / BP-Net)."""
RESIZED_HW = (240, 320)
CROP_HW = (228, 304)
NUM_SPARSE = 500
MIN_GT_M = 1e-4
NYU_SPLITS = ("train", "val")


def _h5py() -> Any:
    try:
        import h5py
    except ImportError as err:
        raise InputError("reading NYUv2 HDF5 files needs h5py: pip install h5py") from err
    return h5py


def find_nyu_files(root: str | os.PathLike[str], split: str) -> list[Path]:
    """``ROOT/<split>/**/*.h5`` sorted; InputNotFoundError when the folder or files are
    missing."""
    if split not in NYU_SPLITS:
        raise InputError(f"unknown NYUv2 split {split!r}; choose one of {', '.join(NYU_SPLITS)}")
    folder = Path(root) / split
    if not folder.is_dir():
        raise InputNotFoundError(f"missing NYUv2 folder {folder} (expected {split}/**/*.h5)")
    files = sorted(folder.rglob("*.h5"))
    if not files:
        raise InputNotFoundError(f"no .h5 files under {folder}")
    return files


def read_nyu_h5(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """-> (rgb uint8 [480,640,3], depth float32 [480,640] m)."""
    h5py = _h5py()
    with h5py.File(path, "r") as f:
        if "rgb" not in f or "depth" not in f:
            raise InputError(f"{path}: NYUv2 HDF5 needs datasets 'rgb' and 'depth', has "
                             f"{sorted(f.keys())}")
        rgb = np.asarray(f["rgb"])
        depth = np.asarray(f["depth"], dtype=np.float32)
    if rgb.ndim != 3 or rgb.shape[0] != 3 or depth.shape != rgb.shape[1:]:
        raise InputError(f"{path}: expected rgb [3,H,W] and depth [H,W], got {rgb.shape} and "
                         f"{depth.shape}")
    return np.ascontiguousarray(rgb.transpose(1, 2, 0)).astype(np.uint8), depth


def resize_and_crop(rgb: np.ndarray, depth: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                  np.ndarray]:
    """640x480 -> 320x240 (bilinear) -> centre 304x228; returns (rgb, depth, K)."""
    (h, w), (ch, cw) = RESIZED_HW, CROP_HW
    scale = w / rgb.shape[1]
    rgb_s = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_LINEAR)
    depth_s = cv2.resize(depth, (w, h), interpolation=cv2.INTER_LINEAR)
    top, left = (h - ch) // 2, (w - cw) // 2
    K = NYU_K.copy()
    K[:2] *= scale
    K[0, 2] -= left
    K[1, 2] -= top
    window = np.s_[top:top + ch, left:left + cw]
    return rgb_s[window], depth_s[window].astype(np.float32), K.astype(np.float32)


def sample_sparse(gt: np.ndarray, rng: np.random.Generator,
                  num: int = NUM_SPARSE) -> np.ndarray:
    """Keep ``num`` random pixels with GT > 0.1 mm (all of them if fewer)."""
    valid = np.flatnonzero(gt.reshape(-1) > MIN_GT_M)
    keep = rng.choice(valid, size=min(num, valid.size), replace=False)
    sparse = np.zeros(gt.size, dtype=np.float32)
    sparse[keep] = gt.reshape(-1)[keep]
    return sparse.reshape(gt.shape)


def sample_key(path: Path) -> str:
    """The stable id of an NYUv2 file: ``<scene folder>/<file stem>`` (stems repeat across
    scenes)."""
    return f"{path.parent.name}/{path.stem}"


def read_nyu_sample(path: Path, rng: np.random.Generator,
                    num_sparse: int = NUM_SPARSE) -> Sample:
    """One NYUv2 file as a sample, its ``num_sparse`` LiDAR-like points drawn from ``rng``."""
    rgb, depth = read_nyu_h5(path)
    rgb_c, gt, K = resize_and_crop(rgb, depth)
    return Sample(rgb_c, sample_sparse(gt, rng, num_sparse), gt, K, sample_key(path))


def load_nyu_sample(path: Path, seed: int = 0, num_sparse: int = NUM_SPARSE) -> Sample:
    """The evaluation sample of a file: sparse points fixed by (seed, file), i.e. the draw
    of epoch 0."""
    return read_nyu_sample(path, sample_rng(seed, 0, sample_key(path)), num_sparse)


PADDED_HW = (256, 320)
"""Network input size of the 228x304 crop (BP-Net pads 14 rows top/bottom, 8 columns)."""


def pad_collate(items: Sequence[Item], hw: tuple[int, int] = PADDED_HW) -> Batch:
    """The ``collate_fn`` of NYUv2 training: a batch zero-padded to ``hw`` (K follows)."""
    return pad_batch(collate_items(items), hw)


class NyuDataset(Dataset[Item]):
    """NYUv2 files -> :class:`Item` s of the 228x304 crop, indexed by :class:`SampleRef`.

    ``train=True``: fresh sparse points per epoch and a horizontal flip with ``flip_prob``;
    otherwise the evaluation sample (points fixed per file).
    """

    def __init__(self, files: Sequence[Path], train: bool, seed: int = 0,
                 num_sparse: int = NUM_SPARSE, flip_prob: float = 0.5) -> None:
        self.files, self.train, self.seed = list(files), train, seed
        self.num_sparse, self.flip_prob = num_sparse, flip_prob

    def __len__(self) -> int:
        return len(self.files)

    def sample(self, index: int, epoch: int = 0) -> Sample:
        """File ``index`` as drawn in ``epoch`` (evaluation samples ignore the epoch)."""
        path = self.files[index]
        rng = sample_rng(self.seed, epoch if self.train else 0, sample_key(path))
        sample = read_nyu_sample(path, rng, self.num_sparse)
        if self.train and rng.random() < self.flip_prob:
            sample = hflip(sample)
        return sample

    def __getitem__(self, ref: SampleRef) -> Item:
        sample = self.sample(ref.item, ref.epoch)
        return Item(sample, np.zeros(3, np.float32), ref.epoch, ref.batch)
