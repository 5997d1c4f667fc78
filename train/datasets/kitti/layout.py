"""Find KITTI depth-completion frames on disk, in the layouts users already have.

Official layout under ``ROOT`` (what BP-Net / DMD3C read)::

    data_depth_annotated/{train,val}/<drive>/proj_depth/groundtruth/image_0{2,3}/<frame>.png
    data_depth_velodyne/{train,val}/<drive>/proj_depth/velodyne_raw/image_0{2,3}/<frame>.png
    raw/<date>/<drive>/image_0{2,3}/data/<frame>.png      raw/<date>/calib_cam_to_cam.txt
    val_selection_cropped/{image,velodyne_raw,groundtruth_depth,intrinsics}/
    test_depth_completion_anonymous/{image,velodyne_raw,intrinsics}/

Split ``raw`` reads the same maps kept inside the raw drives instead
(``raw/<date>/<drive>/proj_depth/{groundtruth,velodyne_raw}/image_0x/<frame>.png``): every
frame that has a ground-truth map there.

Frames are paired by name, never by sorted position, so a missing file is named; a
ground-truth frame without its velodyne_raw map is left out with one warning (count, names).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data_schemas.errors import InputError, InputNotFoundError
from train.datasets.kitti.calib import parse_intrinsics_txt, raw_camera_calib

logger = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("train", "val", "selval", "test", "raw")
SELVAL_DIR = "val_selection_cropped"
TEST_DIR = "test_depth_completion_anonymous"
_DRIVE_RE = re.compile(r"^(\d{4}_\d{2}_\d{2})_drive_\d{4}_sync$")


def parse_split(split: str) -> str:
    """``split`` if known, else an InputError naming the allowed values."""
    if split not in SPLITS:
        raise InputError(f"unknown KITTI split {split!r}; choose one of {', '.join(SPLITS)}")
    return split


@dataclass(frozen=True)
class KittiFrame:
    """One camera frame: input image and sparse map, optional GT, K of the image as stored.

    ``name`` is the stable frame id (``<drive>/image_0x/<frame>`` or the file stem), ``key``
    the image path relative to the KITTI root (how teacher maps are looked up).
    """

    name: str
    image: Path
    sparse: Path
    gt: Path | None
    K: np.ndarray
    key: str


def _require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise InputNotFoundError(f"missing KITTI folder {path} ({what})")
    return path


def _date_of(drive: str) -> str:
    match = _DRIVE_RE.match(drive)
    if not match:
        raise InputError(f"{drive!r} is not a KITTI drive folder name "
                         f"(expected YYYY_MM_DD_drive_NNNN_sync)")
    return match.group(1)


def _pngs(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(folder.glob("*.png"))}


def _missing(stems: Iterable[str], have: dict[str, Path]) -> list[str]:
    return sorted(s for s in stems if s not in have)


def _count_error(where: str, gt_count: int, other: str, other_count: int,
                 missing: list[str]) -> InputError:
    shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
    return InputError(f"{where}: {gt_count} groundtruth frames but {other_count} {other} "
                      f"frames; no {other} for frame(s) {shown}")


class _CalibCache:
    """K per (date folder, camera), read once; clear error when the calibration is missing."""

    def __init__(self) -> None:
        self._cache: dict[tuple[Path, int], np.ndarray] = {}

    def K(self, date_dir: Path, camera: int, drive: str) -> np.ndarray:
        key = (date_dir, camera)
        if key not in self._cache:
            if not (date_dir / "calib_cam_to_cam.txt").is_file():
                raise InputNotFoundError(f"no calibration for drive {drive}: "
                                        f"{date_dir / 'calib_cam_to_cam.txt'} is missing")
            self._cache[key] = raw_camera_calib(date_dir, camera).K
        return self._cache[key]


def _drive_frames(root: Path, drive: str, camera_dir: str, gt_dir: Path, sparse_dir: Path,
                  raw_root: Path, calib: _CalibCache, unpaired: list[str]) -> list[KittiFrame]:
    """Frames of one drive and camera. A GT frame without its velodyne_raw map (the input) is
    left out and its name added to ``unpaired``; one without its image is an error."""
    gts, sparse = _pngs(gt_dir), _pngs(sparse_dir) if sparse_dir.is_dir() else {}
    where = f"{drive} {camera_dir}"
    unpaired += [f"{drive}/{camera_dir}/{stem}" for stem in _missing(gts, sparse)]
    gts = {stem: gt for stem, gt in gts.items() if stem in sparse}
    date = _date_of(drive)
    image_dir = raw_root / date / drive / camera_dir / "data"
    images = _pngs(image_dir) if image_dir.is_dir() else {}
    missing = _missing(gts, images)
    if missing:
        raise _count_error(f"{where} ({image_dir})", len(gts), "raw image", len(images), missing)
    K = calib.K(raw_root / date, int(camera_dir[-1]), drive)
    return [KittiFrame(f"{drive}/{camera_dir}/{stem}", images[stem], sparse[stem], gt, K,
                       images[stem].relative_to(root).as_posix())
            for stem, gt in gts.items()]


def official_frames(root: Path, split: str) -> list[KittiFrame]:
    """``train`` / ``val`` frames of the official layout (unpaired ones left out with a
    warning, :func:`warn_unpaired`)."""
    gt_root = _require_dir(root / "data_depth_annotated" / split, f"{split} ground truth")
    sparse_root = _require_dir(root / "data_depth_velodyne" / split, f"{split} LiDAR input")
    raw_root = _require_dir(root / "raw", "RGB images and calib_cam_to_cam.txt per date")
    calib, frames, unpaired = _CalibCache(), [], list[str]()
    for drive_dir in sorted(p for p in gt_root.iterdir() if p.is_dir()):
        for gt_dir in sorted((drive_dir / "proj_depth" / "groundtruth").glob("image_0[23]")):
            sparse_dir = sparse_root / drive_dir.name / "proj_depth" / "velodyne_raw" / gt_dir.name
            frames += _drive_frames(root, drive_dir.name, gt_dir.name, gt_dir, sparse_dir,
                                    raw_root, calib, unpaired)
    warn_unpaired(f"{root} ({split})", unpaired, len(frames))
    return frames


def raw_layout_frames(root: Path) -> list[KittiFrame]:
    """Frames whose GT and sparse maps sit inside ``raw/<date>/<drive>/proj_depth``
    (unpaired ones left out with a warning, :func:`warn_unpaired`)."""
    raw_root = _require_dir(root / "raw", "raw drives with proj_depth maps")
    calib, frames, unpaired = _CalibCache(), [], list[str]()
    for gt_dir in sorted(raw_root.glob("*/*/proj_depth/groundtruth/image_0[23]")):
        drive_dir = gt_dir.parents[2]
        sparse_dir = drive_dir / "proj_depth" / "velodyne_raw" / gt_dir.name
        frames += _drive_frames(root, drive_dir.name, gt_dir.name, gt_dir, sparse_dir,
                                raw_root, calib, unpaired)
    warn_unpaired(f"{root} (raw)", unpaired, len(frames))
    return frames


def warn_unpaired(where: str, unpaired: list[str], kept: int, shown: int = 10) -> None:
    """One warning for every groundtruth frame left out for lack of its velodyne_raw map,
    with their count and (the first ``shown`` of) their names."""
    if not unpaired:
        return
    names = ", ".join(unpaired[:shown]) + (f" and {len(unpaired) - shown} more"
                                           if len(unpaired) > shown else "")
    logger.warning("%s: skipped %d groundtruth frame(s) without a velodyne_raw map (no LiDAR "
                   "input), using the other %d: %s", where, len(unpaired), kept, names)


def _flat_frames(root: Path, folder: str, with_gt: bool) -> list[KittiFrame]:
    """val_selection_cropped / test_depth_completion_anonymous: pair files by name."""
    base = _require_dir(root / folder, "the benchmark's cropped frames")
    images = _pngs(_require_dir(base / "image", "RGB images"))
    sparse = _pngs(_require_dir(base / "velodyne_raw", "LiDAR input"))
    gts = _pngs(_require_dir(base / "groundtruth_depth", "ground truth")) if with_gt else {}
    frames = []
    for stem, image in images.items():
        sparse_stem = stem.replace("_image_", "_velodyne_raw_", 1) if with_gt else stem
        if sparse_stem not in sparse:
            raise _count_error(f"{base}", len(images), "velodyne_raw", len(sparse), [stem])
        gt = None
        if with_gt:
            gt_stem = stem.replace("_image_", "_groundtruth_depth_", 1)
            if gt_stem not in gts:
                raise InputError(f"{base}: no groundtruth_depth/{gt_stem}.png for image {stem}")
            gt = gts[gt_stem]
        K = parse_intrinsics_txt(base / "intrinsics" / f"{stem}.txt")
        frames.append(KittiFrame(stem, image, sparse[sparse_stem], gt, K,
                                 image.relative_to(root).as_posix()))
    if len(sparse) != len(frames):
        raise InputError(f"{base}: {len(images)} images but {len(sparse)} velodyne_raw maps")
    return frames


def find_frames(root: str | os.PathLike[str], split: str) -> list[KittiFrame]:
    """All frames of ``split`` under the KITTI root, sorted by name; never empty."""
    root = Path(root)
    if not root.is_dir():
        raise InputNotFoundError(f"KITTI root not found: {root}")
    split = parse_split(split)
    if split in ("train", "val"):
        if not (root / "data_depth_annotated").is_dir() and (root / "raw").is_dir():
            raise InputNotFoundError(f"missing KITTI folder {root / 'data_depth_annotated'}; "
                                    f"if the maps are inside raw/<date>/<drive>/proj_depth, "
                                    f"use --split raw")
        frames = official_frames(root, split)
    elif split == "raw":
        frames = raw_layout_frames(root)
    else:
        frames = _flat_frames(root, SELVAL_DIR if split == "selval" else TEST_DIR,
                              with_gt=split == "selval")
    if not frames:
        raise InputError(f"no KITTI {split} frames found under {root}")
    return sorted(frames, key=lambda f: f.name)
