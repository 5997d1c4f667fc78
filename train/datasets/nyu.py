"""NYUv2 depth completion in the common BP-Net / NLSPN / CompletionFormer format.

Data: HDF5 files (Ma & Karaman's ``nyudepthv2`` release) under ``ROOT/{train,val}/**/*.h5``,
each with ``rgb`` uint8 [3,480,640] and ``depth`` float [480,640] in metres. A sample is
resized to 320x240 (bilinear, like torchvision's ``Resize(240)``), centre-cropped to
304x228, and 500 pixels with GT > 0.1 mm are kept as the sparse input (random per sample;
fixed per file for evaluation). Intrinsics: the NYUv2 Kinect K halved, then shifted by
the crop (cx - 8, cy - 6). ``h5py`` is imported only when NYU files are read.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from data_schemas.errors import InputError, InputNotFoundError
from train.metrics import mean_nyu_metrics, nyu_metrics

NYU_K = np.array([[5.1885790117450188e02, 0.0, 3.2558244941119034e02],
                  [0.0, 5.1946961112127485e02, 2.5373616633400465e02],
                  [0.0, 0.0, 1.0]])
"""Intrinsics of the 640x480 NYUv2 frames (as in NLSPN / BP-Net)."""
RESIZED_HW = (240, 320)
CROP_HW = (228, 304)
NUM_SPARSE = 500
MIN_GT_M = 1e-4
NYU_SPLITS = ("train", "val")


def _h5py():
    try:
        import h5py
    except ImportError as err:
        raise InputError("reading NYUv2 HDF5 files needs h5py: pip install h5py") from err
    return h5py


def find_nyu_files(root: str | os.PathLike[str], split: str) -> list[Path]:
    """``ROOT/<split>/**/*.h5`` sorted; FileNotFoundError when the folder or files are missing."""
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


@dataclass(frozen=True)
class NyuSample:
    """rgb uint8 [228,304,3]; sparse, gt float32 [228,304] m; K [3,3]; name."""

    rgb: np.ndarray
    sparse: np.ndarray
    gt: np.ndarray
    K: np.ndarray
    name: str


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


def file_rng(path: Path, seed: int) -> np.random.Generator:
    digest = int.from_bytes(hashlib.blake2b(path.name.encode(), digest_size=8).digest(), "little")
    return np.random.default_rng([seed, digest])


def load_nyu_sample(path: Path, seed: int = 0, num_sparse: int = NUM_SPARSE) -> NyuSample:
    """One NYUv2 file as the evaluation sample (sparse points fixed by (seed, file name))."""
    rgb, depth = read_nyu_h5(path)
    rgb_c, gt, K = resize_and_crop(rgb, depth)
    sparse = sample_sparse(gt, file_rng(path, seed), num_sparse)
    return NyuSample(rgb_c, sparse, gt, K, path.stem)


PADDED_HW = (256, 320)
"""Network input size of the 228x304 crop (BP-Net pads 14 rows top/bottom, 8 columns)."""


def pad_item(item: dict[str, object], hw: tuple[int, int]) -> dict[str, object]:
    """Zero-pad every map of a dataset item symmetrically to ``hw``; K follows."""
    h, w = item["sparse"].shape[-2:]  # type: ignore[attr-defined]
    top, left = (hw[0] - h) // 2, (hw[1] - w) // 2
    sides = (left, hw[1] - w - left, top, hw[0] - h - top)
    out = dict(item)
    for name in ("rgb", "sparse", "gt"):
        out[name] = torch.nn.functional.pad(item[name], sides)  # type: ignore[arg-type]
    K = item["K"].clone()  # type: ignore[attr-defined]
    K[0, 2] += left
    K[1, 2] += top
    out["K"] = K
    return out


class NyuDataset(torch.utils.data.Dataset):
    """NYUv2 files -> dicts rgb [3,h,w] (normalised like BP-Net), sparse/gt [1,h,w], K, name:
    the 228x304 crop, zero-padded to ``pad_to`` (default 256x320, BP-Net) when given.
    Training samples get fresh sparse points per epoch and a random horizontal flip."""

    def __init__(self, files: Sequence[Path], train: bool, seed: int = 0,
                 num_sparse: int = NUM_SPARSE,
                 pad_to: tuple[int, int] | None = PADDED_HW) -> None:
        self.files, self.train, self.seed, self.num_sparse = list(files), train, seed, num_sparse
        self.pad_to = pad_to
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, object]:
        from train.model import normalize_rgb

        path = self.files[index]
        sample = load_nyu_sample(path, self.seed + (self.epoch if self.train else 0),
                                 self.num_sparse)
        rgb, sparse, gt, K = sample.rgb, sample.sparse, sample.gt, sample.K.copy()
        if self.train and file_rng(path, self.seed + 7919 * (self.epoch + 1)).random() < 0.5:
            rgb, sparse, gt = rgb[:, ::-1], sparse[:, ::-1], gt[:, ::-1]
            K[0, 2] = (CROP_HW[1] - 1) - K[0, 2]
        rgb_t = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).float()
        item: dict[str, object] = {
            "rgb": normalize_rgb(rgb_t), "sparse": torch.from_numpy(sparse.copy())[None],
            "gt": torch.from_numpy(gt.copy())[None], "K": torch.from_numpy(K),
            "name": sample.name}
        return pad_item(item, self.pad_to) if self.pad_to else item


def evaluate_nyu(model: torch.nn.Module, files: Sequence[Path], device: torch.device,
                 seed: int = 0) -> dict[str, object]:
    """NYUv2 metrics (RMSE m, REL, delta) averaged over files: {"frames", "metrics"}."""
    from train.evaluate import predict_depth

    per_image = []
    for path in files:
        sample = load_nyu_sample(path, seed)
        pred = predict_depth(model, sample.rgb, sample.sparse, sample.K, device)  # type: ignore[arg-type]
        per_image.append(nyu_metrics(pred, sample.gt))
    mean = mean_nyu_metrics(per_image)
    return {"frames": len(per_image), "dataset": "nyu", "metrics": vars(mean).copy()}
