"""Inference on whole frames and the KITTI / NYUv2 evaluation behind ``dmd3c evaluate``.

KITTI numbers are the devkit's (``train.metrics``): the prediction is first encoded as the
benchmark's uint16 PNG (metres x 256) and decoded, so what is scored here is exactly what
``dmd3c export`` would submit; holes are filled like the devkit; per-image metrics are
averaged over images; RMSE/MAE in mm, iRMSE/iMAE in 1/km.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from data_schemas.errors import InputError, InputNotFoundError
from train.kitti.beams import thin_sparse_to_beams
from train.kitti.calib import raw_camera_calib
from train.kitti.dataset import KittiSample, bottom_center_crop, load_sample
from train.kitti.io import DEPTH_SCALE, encode_depth_png
from train.kitti.layout import KittiFrame
from train.metrics import KittiMetrics, kitti_metrics, mean_kitti_metrics
from train.model import BPNet, load_checkpoint, normalize_rgb
from train.model.inputs import SIZE_MULTIPLE

DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")


def parse_device(device: str) -> torch.device:
    """``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N``."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu" or device.startswith("cuda"):
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise InputError(f"device {device!r} requested but CUDA is not available")
        return torch.device(device)
    raise InputError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)} or cuda:N")


def checkpoint_keys(path: str | os.PathLike[str]) -> list[str]:
    """Top-level entries of a checkpoint file (memory-mapped, weights not read)."""
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"checkpoint not found: {path}")
    try:
        try:
            payload = torch.load(path, weights_only=True, map_location="cpu", mmap=True)
        except RuntimeError:  # legacy (non-zip) files cannot be memory-mapped
            payload = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as err:  # torch raises several types for foreign files
        raise InputError(f"{path}: not a PyTorch checkpoint ({str(err).splitlines()[0][:80]})"
                         ) from None
    if not isinstance(payload, dict):
        raise InputError(f"{path}: expected a dict checkpoint, got {type(payload).__name__}")
    return [str(k) for k in payload]


def load_model(ckpt: str | os.PathLike[str], device: torch.device,
               prefer_ema: bool = True) -> BPNet:
    """BP-Net with the weights of ``ckpt`` (official ``{'net': ...}`` or ours; our EMA
    weights when present and ``prefer_ema``), in eval mode on ``device``."""
    path = Path(ckpt)
    key = "ema" if prefer_ema and "ema" in checkpoint_keys(path) else "net"
    model = load_checkpoint(path, key=key).model
    assert isinstance(model, BPNet)
    return model.to(device).eval()


@dataclass(frozen=True)
class Padding:
    """Rows added on top, columns added left/right to reach multiples of 32."""

    top: int
    left: int
    right: int

    @staticmethod
    def for_size(h: int, w: int, multiple: int = SIZE_MULTIPLE) -> Padding:
        extra_w = -w % multiple
        return Padding(-h % multiple, extra_w // 2, extra_w - extra_w // 2)


def predict_depth(model: BPNet, rgb: np.ndarray, sparse: np.ndarray, K: np.ndarray,
                  device: torch.device, amp: bool = False) -> np.ndarray:
    """One frame of any size -> dense depth float32 [H,W] m.

    rgb uint8 [H,W,3], sparse float [H,W] m (0 = none), K [3,3]. The frame is zero-padded
    (top rows, left/right columns; K shifted accordingly) to multiples of 32 and the
    prediction cropped back.
    """
    if not (sparse > 0).any():
        raise InputError("sparse input is empty: no LiDAR point with depth > 0")
    h, w = sparse.shape
    pad = Padding.for_size(h, w)
    rgb_t = normalize_rgb(torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None])
    sparse_t = torch.from_numpy(np.ascontiguousarray(sparse, dtype=np.float32))[None, None]
    sides = (pad.left, pad.right, pad.top, 0)
    K_t = torch.tensor(K, dtype=torch.float32)[None].clone()
    K_t[0, 0, 2] += pad.left
    K_t[0, 1, 2] += pad.top
    with torch.no_grad(), torch.autocast(device.type, enabled=amp and device.type == "cuda"):
        out = model(F.pad(rgb_t, sides).to(device), F.pad(sparse_t, sides).to(device),
                    K_t.to(device))[-1]
    depth = out[0, 0, pad.top:, pad.left:pad.left + w].float().cpu().numpy()
    return np.clip(depth, 0.0, None).astype(np.float32)


def as_submitted(depth: np.ndarray) -> np.ndarray:
    """The depth the benchmark reads back from our uint16 PNG (metres x 256, rounded)."""
    return encode_depth_png(depth).astype(np.float32) / DEPTH_SCALE


def _lidar_pose(frame: KittiFrame) -> np.ndarray | None:
    """T_cam_from_lidar of a raw-layout frame (its date's calibration), else None."""
    date_dir = frame.image.parents[3] if frame.image.parent.name == "data" else None
    if date_dir is None or not (date_dir / "calib_velo_to_cam.txt").is_file():
        return None
    return raw_camera_calib(date_dir, int(frame.image.parents[1].name[-1])).T_cam_from_lidar


def sparse_for_beams(sample: KittiSample, frame: KittiFrame, beams: int | None) -> np.ndarray:
    """The frame's LiDAR input, thinned to ``beams`` rings when given (see train.kitti.beams)."""
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


def evaluate_kitti(model: BPNet, frames: Sequence[KittiFrame], device: torch.device,
                   beams: Sequence[int] = (), amp: bool = False,
                   progress: Callable[[str], None] | None = None,
                   crop: tuple[int, int] | None = None) -> dict[str, object]:
    """Devkit metrics over ``frames`` (with GT): {"frames", "metrics"} or per beam count.

    ``crop`` scores only the bottom-centre (h, w) window of each frame (quick checks; the
    benchmark scores whole frames).
    """
    settings: list[int | None] = list(beams) or [None]
    per_image: dict[int | None, list[KittiMetrics]] = {b: [] for b in settings}
    for i, frame in enumerate(frames):
        if frame.gt is None:
            raise InputError(f"frame {frame.name} has no ground truth (the test split cannot "
                             f"be evaluated; use dmd3c export)")
        sample = load_sample(frame)
        if crop is not None:
            sample = bottom_center_crop(sample, *crop)
        for b in settings:
            sparse = sparse_for_beams(sample, frame, b)
            try:
                pred = predict_depth(model, sample.rgb, sparse, sample.K, device, amp)
            except ValueError as err:
                raise InputError(f"frame {frame.name}: {err}") from None
            per_image[b].append(kitti_metrics(as_submitted(pred), sample.gt))
        if progress is not None:
            progress(f"{i + 1}/{len(frames)} {frame.name}")
    report: dict[str, object] = {"frames": len(frames), "crop": list(crop) if crop else None}
    if beams:
        report["beams"] = {str(b): mean_kitti_metrics(per_image[b]).leaderboard()
                           for b in settings}
    else:
        report["metrics"] = mean_kitti_metrics(per_image[None]).leaderboard()
    return report
