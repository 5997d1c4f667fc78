"""Sample store schema 2.0: the one definition of every array the generator writes.

Writer (``pipeline``), reader (``train``, ``dmd3c inspect``) and validator all build their
view of the store from :func:`array_specs`, so names, dtypes, shapes, units, fill values,
stored precision and codecs live only here (codecs: :mod:`data_schemas.store_codecs`).

Stored precision (``ArraySpec.storage``), chosen by measurement (README, "The sample store"):

* ``"exact"``: the values as given (lossless);
* ``"m/256"``: metric depth stored as uint16 in units of 1/256 m, like KITTI's depth PNGs,
  read back as float32 metres: absolute error <= 1/512 m; 0 stays exactly 0; nonzero values
  below 1/256 m are stored as 1/256 m (so no data point turns into "no data"); the range is
  [0, :data:`MAX_DEPTH_M`];
* ``"float16"``: IEEE half precision (dtype float16 on disk and when read): relative error
  <= 2**-11 for |x| >= 6.1e-5, absolute error <= 3e-8 below; |x| <= 65504.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

SCHEMA_NAME = "dmd3c.sample_store"
SCHEMA_VERSION = "2.0"
"""``MAJOR.MINOR``. Readers accept any minor of the majors in :data:`READABLE_MAJORS`."""
READABLE_MAJORS = (1, 2)
"""Schema majors this code reads (1.x through the same API, without the 2.0 features)."""
WRITABLE_MAJOR = 2

DEFAULT_SHARD_SIZE = 64
DEPTH_SCALE = 256
"""``"m/256"`` storage: stored integer = round(metres * 256), as in KITTI depth PNGs."""
MAX_DEPTH_M = 65535 / DEPTH_SCALE
"""Largest depth a ``"m/256"`` array holds (255.996 m)."""
FLOAT16_MAX = 65504.0

Storage = Literal["exact", "m/256", "float16"]
RgbCodec = Literal["lossless", "jpeg"]
RGB_CODECS: tuple[str, ...] = ("lossless", "jpeg")


@dataclass(frozen=True)
class ArraySpec:
    """One stored array: shape is ``(N, *sample_shape)`` with the sample axis first.

    ``dtype`` is what readers get back; ``storage`` how precisely it is kept on disk.
    """

    name: str
    dtype: str
    sample_shape: tuple[int, ...]
    dims: tuple[str, ...]
    units: str
    fill_value: object
    description: str
    storage: Storage = "exact"

    @property
    def numpy_dtype(self) -> np.dtype[np.generic]:
        return np.dtype(self.dtype)

    def full_shape(self, num_samples: int) -> tuple[int, ...]:
        return (num_samples, *self.sample_shape)

    @property
    def error_bound(self) -> str:
        """The documented reconstruction error of this array (README table)."""
        return {"exact": "0 (lossless)", "m/256": "<= 1/512 m absolute",
                "float16": "<= 2^-11 relative"}[self.storage]


def array_specs(height: int, width: int, major: int = WRITABLE_MAJOR) -> dict[str, ArraySpec]:
    """All arrays of a store whose canvas is ``height x width`` pixels, keyed by name.

    ``major=1`` gives the arrays of a 1.x store (all float32 exact, no ``valid``).
    """
    hw = (height, width)
    image_dims = ("sample", "y", "x")
    depth: Storage = "m/256" if major >= 2 else "exact"
    output: Storage = "float16" if major >= 2 else "exact"
    specs = [
        ArraySpec("rgb", "uint8", (*hw, 3), (*image_dims, "channel"), "8-bit sRGB", 0,
                  "Input image, resized/cropped to the canvas."),
        ArraySpec("sparse_depth", "float32", hw, image_dims, "m", 0.0,
                  "Simulated LiDAR projected into the camera (z-buffer); 0 = no return.",
                  depth),
        ArraySpec("teacher_depth", "float32", hw, image_dims, "m", 0.0,
                  "Dense metric depth from the teacher, the stage-1 target; 0 = invalid (sky).",
                  depth),
        ArraySpec("teacher_output", "float16" if major >= 2 else "float32", hw, image_dims,
                  "teacher units", 0.0,
                  "Raw teacher prediction before conversion: relative disparity (affine "
                  "invariant) or metric depth in m, see root attribute teacher.output_kind.",
                  output),
        ArraySpec("intrinsics", "float32", (3, 3), ("sample", "k_row", "k_col"), "px", 0.0,
                  "Pinhole K of the canvas, OpenCV convention."),
        ArraySpec("T_cam_from_lidar", "float32", (4, 4), ("sample", "t_row", "t_col"), "m", 0.0,
                  "LiDAR pose: maps LiDAR-frame points (x fwd, y left, z up) to the camera."),
        ArraySpec("key", "str", (), ("sample",), "", "",
                  "Stable sample key (path relative to the corpus root); '' = empty slot."),
        ArraySpec("source", "str", (), ("sample",), "", "",
                  "Source URI of the input image; '' = empty slot."),
    ]
    if major >= 2:
        specs.append(ArraySpec("valid", "bool", (), ("sample",), "", False,
                               "True on rows that hold a sample; False on the empty rows a "
                               "shard with skipped inputs leaves at its end."))
    return {spec.name: spec for spec in specs}


REQUIRED_ARRAYS: tuple[str, ...] = tuple(array_specs(1, 1))


def parse_schema_version(version: object) -> tuple[int, int]:
    """``"1.0"`` -> ``(1, 0)``; anything else is a ValueError naming the expected form."""
    try:
        major, minor = str(version).split(".")
        return int(major), int(minor)
    except ValueError as err:
        raise ValueError(f"schema version {version!r} is not of the form 'MAJOR.MINOR'") from err


def parse_rgb_codec(name: str) -> RgbCodec:
    """``"lossless"`` (default) or ``"jpeg"`` (opt-in lossy, quality >= 95)."""
    if name == "lossless":
        return "lossless"
    if name == "jpeg":
        return "jpeg"
    raise ValueError(f"rgb codec {name!r} is not one of {', '.join(RGB_CODECS)}")
