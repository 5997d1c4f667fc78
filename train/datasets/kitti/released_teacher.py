"""Teacher maps in the form the released DMD3C code trains on: 8-bit grey PNGs / 255.

How the release gets them (issue 11, read from the sources):

* Written by Depth Anything V2's own ``run.py`` (``DepthAnything/Depth-Anything-V2``, with
  ``--pred-only --grayscale``, the only options that write the map alone, in grey):
  ``depth = model.infer_image(raw_image)`` is a float32 [H, W] relative disparity at the
  image's full size; ``depth = (depth - depth.min()) / (depth.max() - depth.min()) * 255.0``
  (float32 arithmetic: numpy keeps float32 for a Python-float operand),
  ``depth.astype(np.uint8)`` (truncation toward zero, not rounding: 127.9 -> 127),
  ``np.repeat(.., 3, axis=-1)`` and ``cv2.imwrite`` of that 3-channel uint8 image as PNG.
  Min and max are those of the whole frame the model saw, before any training crop.
* Read by ``datasets/kitti.py`` of ``Sharpiless/DMD3C``: ``KITTI.get_item`` builds the path
  from the GT path ``data_depth_annotated/<split>/<drive>/proj_depth/groundtruth/<cam>/<frame>``
  as ``raw/<date>/<drive>/<cam>/disp/<frame>`` (``<date>`` = ``<drive>`` up to ``_drive``),
  i.e. a ``disp`` folder beside each ``data`` image folder, same file name;
  ``pull_DISP`` = ``np.array(Image.open(path).convert('L'), dtype=np.uint8)`` (PIL's luma of
  three equal channels is that value exactly), ``.astype(np.float32)``; ``augs.Norm``
  divides by 255 (float32). For ``selval`` / ``test`` the release reads the RGB image itself
  in place of a teacher map (unused there: no teacher term at evaluation).

A constant map (max == min) makes DA-V2's formula 0 / 0 = NaN, whose cast to uint8 numpy
leaves undefined; here it gives 0 everywhere (what numpy on x86-64 produces), a defined,
finite target.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from data_schemas.errors import InputError, InputNotFoundError

DISP_DIR = "disp"
"""Folder of the released teacher PNGs, beside each ``data`` image folder."""


def released_uint8(teacher: np.ndarray) -> np.ndarray:
    """Float teacher map [H, W] (whole frame) -> uint8 [H, W] exactly as DA-V2's ``run.py``
    writes it: per-image min-max to 0..255 in float32, truncated; constant map -> 0."""
    depth = np.asarray(teacher, dtype=np.float32)
    if depth.ndim != 2 or depth.size == 0:
        raise InputError(f"teacher map must be a non-empty [H, W] array, got shape {depth.shape}")
    if not np.isfinite(depth).all():
        raise InputError("teacher map has NaN or infinite values; DA-V2 maps are finite")
    low, high = depth.min(), depth.max()
    if high == low:
        return np.zeros(depth.shape, dtype=np.uint8)
    scaled: np.ndarray = ((depth - low) / (high - low) * 255.0).astype(np.uint8)
    return scaled


def released_teacher01(teacher: np.ndarray) -> np.ndarray:
    """Float teacher map [H, W] -> float32 [H, W] in [0, 1]: what the release trains on after
    writing it as DA-V2's 8-bit PNG and reading it back (``uint8 / 255`` in float32)."""
    scaled: np.ndarray = released_uint8(teacher).astype(np.float32) / 255
    return scaled


def disp_path_of_image(image: Path) -> Path:
    """``.../<cam>/data/<frame>.png`` (a KITTI raw image) -> ``.../<cam>/disp/<frame>.png``."""
    image = Path(image)
    if image.parent.name != "data":
        raise InputError(f"{image} is not a KITTI raw image (expected .../image_0x/data/"
                         f"<frame>.png); released teacher maps exist for raw images only")
    return image.parent.parent / DISP_DIR / image.name


def released_disp_path(kitti_root: Path, drive: str, camera: str, frame: str) -> Path:
    """``<root>/raw/<date>/<drive>/<camera>/disp/<frame>.png``, the release's layout."""
    date = drive.split("_drive")[0]
    name = frame if frame.endswith(".png") else f"{frame}.png"
    return Path(kitti_root) / "raw" / date / drive / camera / DISP_DIR / name


def read_disp_png(path: Path) -> np.ndarray:
    """A released teacher PNG -> float32 [H, W] in [0, 1], read as ``datasets/kitti.py`` does
    (PIL, converted to 8-bit grey 'L', / 255)."""
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"teacher map not found: {path}")
    with Image.open(path) as image:
        grey = np.array(image.convert("L"), dtype=np.uint8)
    scaled: np.ndarray = grey.astype(np.float32) / 255
    return scaled


def check_disp_maps(images: Sequence[Path]) -> list[Path]:
    """The teacher PNG of each raw image, in order; InputNotFoundError naming the count and
    the first missing one if any is absent (call before training starts)."""
    paths = [disp_path_of_image(image) for image in images]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise InputNotFoundError(
            f"{len(missing)} of {len(paths)} KITTI images have no teacher map (first missing: "
            f"{missing[0]}); write them with Depth-Anything-V2's run.py --pred-only "
            f"--grayscale into a '{DISP_DIR}' folder beside each image folder")
    return paths
