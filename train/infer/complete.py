"""``dmd3c complete``: dense depth for users' own image + LiDAR with a trained BP-Net.

Inputs: an RGB image; its sparse depth as a 16-bit PNG (metres x 256) or a float .npy
(metres) at the image's size, *or* a Velodyne ``.bin`` scan projected with the
calibration; a calibration file giving K (raw ``calib_cam_to_cam.txt`` with
``calib_velo_to_cam.txt`` beside it, a KITTI object ``calib/*.txt``, or a 9-number
intrinsics txt). Outputs in ``OUT`` (``<stem>`` = the image's file stem):
``<stem>_depth.png`` (uint16, metres x 256: depth beyond its ceiling of 65535 / 256 =
255.996 m is clipped to it, with a warning counting the pixels), ``<stem>_depth.npy`` (float32
metres, untouched), ``<stem>_depth_color.png`` (colourised, with a colour bar in metres under
it) and, with ``ply``, ``<stem>.ply`` (coloured point cloud in the camera frame, via open3d).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from data_schemas.errors import InputError
from data_schemas.geometry import unproject
from data_schemas.quicklook import colorize_with_bar, write_png
from train.datasets.kitti.calib import CameraCalib, load_camera_calib, project_lidar
from train.datasets.kitti.io import (
    MAX_DEPTH_PNG_M,
    read_rgb,
    read_sparse_input,
    read_velodyne_bin,
    write_depth_png,
)
from train.infer.predict import predict_depth

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CompletionInputs:
    """rgb uint8 [H,W,3], sparse float32 [H,W] m, K [3,3] of one frame."""

    rgb: np.ndarray
    sparse: np.ndarray
    K: np.ndarray


def load_inputs(image: Path, calib: Path, sparse: Path | None = None,
                velodyne: Path | None = None, camera: int = 2) -> CompletionInputs:
    """Read and check the user's files (exactly one of ``sparse`` / ``velodyne``)."""
    if (sparse is None) == (velodyne is None):
        raise InputError("give exactly one of --sparse (PNG/NPY depth map) or --velodyne (.bin)")
    rgb = read_rgb(image)
    cam: CameraCalib = load_camera_calib(calib, camera)
    hw = (int(rgb.shape[0]), int(rgb.shape[1]))
    if velodyne is not None:
        depth = project_lidar(read_velodyne_bin(velodyne), cam, hw)
    else:
        assert sparse is not None
        depth = read_sparse_input(sparse)
        if depth.shape != hw:
            raise InputError(f"sparse depth {sparse} is {depth.shape[1]}x{depth.shape[0]} but "
                             f"the image {image} is {hw[1]}x{hw[0]}")
    if not (depth > 0).any():
        raise InputError(f"sparse input is empty: no LiDAR point with depth > 0 in "
                         f"{sparse or velodyne} (inside the image)")
    return CompletionInputs(rgb, depth, cam.K.astype(np.float32))


def write_point_cloud(path: Path, depth: np.ndarray, rgb: np.ndarray, K: np.ndarray) -> None:
    """Coloured point cloud (.ply, camera frame, OpenCV axes) of a dense depth map."""
    import open3d as o3d

    valid = depth > 0
    points = unproject(depth, K)[valid].astype(np.float64)
    cloud = o3d.geometry.PointCloud()
    cloud.points = o3d.utility.Vector3dVector(points)
    cloud.colors = o3d.utility.Vector3dVector(rgb[valid].astype(np.float64) / 255.0)
    if not o3d.io.write_point_cloud(path, cloud):
        raise OSError(f"could not write point cloud {path}")


def complete_frame(model: nn.Module, inputs: CompletionInputs, out: Path, stem: str,
                   device: torch.device, ply: bool = False,
                   max_depth_m: float | None = None) -> dict[str, Path]:
    """Predict and write every output; returns {kind: path}."""
    depth = predict_depth(model, inputs.rgb, inputs.sparse, inputs.K, device)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"png": out / f"{stem}_depth.png", "npy": out / f"{stem}_depth.npy",
             "color": out / f"{stem}_depth_color.png"}
    write_depth_png(paths["png"], depth)
    np.save(paths["npy"], depth)
    warn_clipped(depth, paths["png"], paths["npy"])
    write_png(paths["color"], colorize_with_bar(depth, max_depth_m))
    if ply:
        paths["ply"] = out / f"{stem}.ply"
        write_point_cloud(paths["ply"], depth, inputs.rgb, inputs.K)
    return paths


def warn_clipped(depth: np.ndarray, png: Path, npy: Path) -> int:
    """Warn when ``depth`` (m) exceeds the 16-bit PNG ceiling (:data:`MAX_DEPTH_PNG_M`) that
    ``png`` was clipped to; returns the number of clipped pixels."""
    clipped = int(np.count_nonzero(depth > MAX_DEPTH_PNG_M))
    if clipped:
        logger.warning("%s: %d of %d pixels (%.2f %%) predicted beyond %.3f m, the 16-bit PNG "
                       "ceiling (65535 / 256), were clipped to it; %s holds the untouched "
                       "float values (up to %.1f m)", png, clipped, depth.size,
                       100.0 * clipped / depth.size, MAX_DEPTH_PNG_M, npy, float(depth.max()))
    return clipped
