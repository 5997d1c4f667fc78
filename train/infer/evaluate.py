"""The KITTI / NYUv2 evaluation behind ``dmd3c evaluate`` (and stage-2 validation).

KITTI numbers are the devkit's (``train.metrics``): the prediction is first encoded as the
benchmark's uint16 PNG (metres x 256) and decoded, so what is scored here is exactly what
``dmd3c export`` would submit; holes are filled like the devkit; per-image metrics are
averaged over images; RMSE/MAE in mm, iRMSE/iMAE in 1/km.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from data_schemas.errors import InputError
from train.datasets.augment import bottom_center_crop
from train.datasets.kitti.beams import thin_sparse_to_beams
from train.datasets.kitti.calib import raw_camera_calib
from train.datasets.kitti.dataset import load_sample
from train.datasets.kitti.io import as_submitted
from train.datasets.kitti.layout import KittiFrame
from train.datasets.nyu import load_nyu_sample
from train.datasets.sample import Sample
from train.infer.predict import predict_depth
from train.metrics import (
    KittiMetrics,
    NyuMetrics,
    kitti_metrics,
    mean_kitti_metrics,
    mean_nyu_metrics,
    nyu_metrics,
)


def _lidar_pose(frame: KittiFrame) -> np.ndarray | None:
    """T_cam_from_lidar of a raw-layout frame (its date's calibration), else None."""
    date_dir = frame.image.parents[3] if frame.image.parent.name == "data" else None
    if date_dir is None or not (date_dir / "calib_velo_to_cam.txt").is_file():
        return None
    return raw_camera_calib(date_dir, int(frame.image.parents[1].name[-1])).T_cam_from_lidar


def sparse_for_beams(sample: Sample, frame: KittiFrame, beams: int | None) -> np.ndarray:
    """The frame's LiDAR input, thinned to ``beams`` rings when given (see
    train.datasets.kitti.beams)."""
    if beams is None or beams == 64:
        return sample.sparse
    return thin_sparse_to_beams(sample.sparse, sample.K, beams, _lidar_pose(frame))


def parse_crop_option(text: str) -> tuple[int, int] | None:
    """``"H,W"`` -> (H, W) (a bottom-centre evaluation window); ``""`` -> None (whole frames)."""
    if not text:
        return None
    try:
        h, w = (int(v) for v in text.split(","))
    except ValueError as err:
        raise InputError(f"--crop must be H,W in pixels (e.g. 256,1216), got {text!r}") from err
    if h < 1 or w < 1:
        raise InputError(f"--crop must be positive, got {text!r}")
    return h, w


def frame_metrics(model: nn.Module, sample: Sample, device: torch.device,
                  sparse: np.ndarray | None = None, amp: bool = False) -> KittiMetrics:
    """Devkit metrics of one frame (its ``sparse`` input replaced when given), scored on the
    depth the benchmark would read back from our PNG."""
    pred = predict_depth(model, sample.rgb, sample.sparse if sparse is None else sparse,
                         sample.K, device, amp)
    return kitti_metrics(as_submitted(pred), sample.target)


def load_eval_sample(frame: KittiFrame, crop: tuple[int, int] | None = None) -> Sample:
    """A frame with ground truth, or only its bottom-centre ``crop`` window when given."""
    sample = load_sample(frame)
    return bottom_center_crop(sample, crop) if crop is not None else sample


def evaluate_kitti(model: nn.Module, frames: Sequence[KittiFrame], device: torch.device,
                   beams: Sequence[int] = (), amp: bool = False, progress: bool = False,
                   crop: tuple[int, int] | None = None) -> dict[str, object]:
    """Devkit metrics over ``frames`` (with GT): {"frames", "metrics"} or per beam count.

    ``crop`` scores only the bottom-centre (h, w) window of each frame (quick checks; the
    benchmark scores whole frames). ``progress`` shows a tqdm bar on stderr.
    """
    settings: list[int | None] = list(beams) or [None]
    per_image: dict[int | None, list[KittiMetrics]] = {b: [] for b in settings}
    for frame in tqdm(frames, desc="evaluate", unit="frame", disable=not progress):
        if frame.gt is None:
            raise InputError(f"frame {frame.name} has no ground truth (the test split cannot "
                             f"be evaluated; use dmd3c export)")
        sample = load_eval_sample(frame, crop)
        for b in settings:
            try:
                metrics = frame_metrics(model, sample, device, sparse_for_beams(sample, frame, b),
                                        amp)
            except InputError as err:
                raise InputError(f"frame {frame.name}: {err}") from None
            per_image[b].append(metrics)
    report: dict[str, object] = {"frames": len(frames), "crop": list(crop) if crop else None}
    if beams:
        report["beams"] = {str(b): mean_kitti_metrics(per_image[b]).leaderboard()
                           for b in settings}
    else:
        report["metrics"] = mean_kitti_metrics(per_image[None]).leaderboard()
    return report


def nyu_file_metrics(model: nn.Module, files: Sequence[Path], device: torch.device,
                     seed: int = 0, progress: bool = False) -> list[NyuMetrics]:
    """NYUv2 metrics of each file's evaluation sample (sparse points fixed per file);
    ``progress`` shows a tqdm bar on stderr."""
    per_image = []
    for path in tqdm(files, desc="evaluate", unit="frame", disable=not progress):
        sample = load_nyu_sample(path, seed)
        pred = predict_depth(model, sample.rgb, sample.sparse, sample.K, device)
        per_image.append(nyu_metrics(pred, sample.target))
    return per_image


def evaluate_nyu(model: nn.Module, files: Sequence[Path], device: torch.device,
                 seed: int = 0, progress: bool = False) -> dict[str, object]:
    """NYUv2 metrics (RMSE m, REL, delta) averaged over files: {"frames", "metrics"}
    (``progress``: a tqdm bar on stderr)."""
    per_image = nyu_file_metrics(model, files, device, seed, progress)
    mean = mean_nyu_metrics(per_image)
    return {"frames": len(per_image), "dataset": "nyu", "metrics": vars(mean).copy()}
