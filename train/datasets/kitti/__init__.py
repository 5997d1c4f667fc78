"""KITTI depth completion: layouts, calibration, beam thinning, teacher maps, dataset."""

from train.kitti.beams import parse_beams, thin_scan_to_beams, thin_sparse_to_beams
from train.kitti.calib import CameraCalib, load_camera_calib, project_lidar, raw_camera_calib
from train.kitti.dataset import (
    KittiAugment,
    KittiDataset,
    KittiSample,
    bottom_center_crop,
    load_sample,
)
from train.kitti.io import read_depth_png, read_rgb, read_velodyne_bin, write_depth_png
from train.kitti.layout import SPLITS, KittiFrame, find_frames, parse_split
from train.kitti.teacher import TeacherMaps

__all__ = [
    "SPLITS", "CameraCalib", "KittiAugment", "KittiDataset", "KittiFrame", "KittiSample",
    "TeacherMaps", "bottom_center_crop", "find_frames", "load_camera_calib", "load_sample",
    "parse_beams", "parse_split", "project_lidar", "raw_camera_calib", "read_depth_png",
    "read_rgb", "read_velodyne_bin", "thin_scan_to_beams", "thin_sparse_to_beams",
    "write_depth_png",
]
