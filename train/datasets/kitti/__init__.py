"""KITTI depth completion: ``layout`` (find frames in the official and raw layouts), ``io``
(depth PNGs, images, Velodyne scans), ``calib`` (K and T_cam_from_lidar), ``beams``
(64/32/16/8-line thinning), ``teacher`` (teacher maps by image path), ``released_teacher``
(the release's 8-bit teacher PNGs), ``dataset`` (frames as samples, BP-Net's training
augmentation)."""

from train.datasets.kitti.beams import parse_beams, thin_scan_to_beams, thin_sparse_to_beams
from train.datasets.kitti.calib import (
    CameraCalib,
    load_camera_calib,
    project_lidar,
    raw_camera_calib,
)
from train.datasets.kitti.dataset import KittiDataset, load_sample
from train.datasets.kitti.io import (
    as_submitted,
    read_depth_png,
    read_rgb,
    read_velodyne_bin,
    write_depth_png,
)
from train.datasets.kitti.layout import SPLITS, KittiFrame, find_frames, parse_split
from train.datasets.kitti.teacher import TeacherMaps

__all__ = [
    "SPLITS", "CameraCalib", "KittiDataset", "KittiFrame", "TeacherMaps", "as_submitted",
    "find_frames", "load_camera_calib", "load_sample", "parse_beams", "parse_split",
    "project_lidar", "raw_camera_calib", "read_depth_png", "read_rgb", "read_velodyne_bin",
    "thin_scan_to_beams", "thin_sparse_to_beams", "write_depth_png",
]
