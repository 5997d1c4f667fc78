"""Sample store schema v1: the one definition of every array the generator writes.

Writer (``pipeline``) and reader (``train``, ``dmd3c inspect``) both build their view of
the store from :func:`array_specs`, so names, dtypes, shapes, units and fill values live
only here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SCHEMA_NAME = "dmd3c.sample_store"
SCHEMA_VERSION = "1.0"
"""``MAJOR.MINOR``. Readers accept any minor of their major and refuse other majors."""

DEFAULT_SHARD_SIZE = 64


@dataclass(frozen=True)
class ArraySpec:
    """One stored array: shape is ``(N, *sample_shape)`` with the sample axis first."""

    name: str
    dtype: str
    sample_shape: tuple[int, ...]
    dims: tuple[str, ...]
    units: str
    fill_value: object
    description: str

    @property
    def numpy_dtype(self) -> np.dtype:
        return np.dtype(self.dtype)

    def full_shape(self, num_samples: int) -> tuple[int, ...]:
        return (num_samples, *self.sample_shape)


def array_specs(height: int, width: int) -> dict[str, ArraySpec]:
    """All arrays of a store whose canvas is ``height x width`` pixels, keyed by name."""
    hw = (height, width)
    image_dims = ("sample", "y", "x")
    specs = [
        ArraySpec("rgb", "uint8", (*hw, 3), (*image_dims, "channel"), "8-bit sRGB", 0,
                  "Input image, resized/cropped to the canvas."),
        ArraySpec("sparse_depth", "float32", hw, image_dims, "m", 0.0,
                  "Simulated LiDAR projected into the camera (z-buffer); 0 = no return. "
                  "float32 so that no quantisation is added on top of the sensor noise."),
        ArraySpec("teacher_depth", "float32", hw, image_dims, "m", 0.0,
                  "Dense metric depth from the teacher, the stage-1 target; 0 = invalid (sky)."),
        ArraySpec("teacher_output", "float32", hw, image_dims, "teacher units", 0.0,
                  "Raw teacher prediction before conversion: relative disparity (affine "
                  "invariant) or metric depth in m, see root attribute teacher.output_kind."),
        ArraySpec("intrinsics", "float32", (3, 3), ("sample", "k_row", "k_col"), "px", 0.0,
                  "Pinhole K of the canvas, OpenCV convention."),
        ArraySpec("T_cam_from_lidar", "float32", (4, 4), ("sample", "t_row", "t_col"), "m", 0.0,
                  "LiDAR pose: maps LiDAR-frame points (x fwd, y left, z up) to the camera."),
        ArraySpec("key", "str", (), ("sample",), "", "",
                  "Stable sample key (path relative to the corpus root); '' = empty slot."),
        ArraySpec("source", "str", (), ("sample",), "", "",
                  "Source URI of the input image; '' = empty slot."),
    ]
    return {spec.name: spec for spec in specs}


REQUIRED_ARRAYS: tuple[str, ...] = tuple(array_specs(1, 1))


def parse_schema_version(version: object) -> tuple[int, int]:
    """``"1.0"`` -> ``(1, 0)``; anything else is a ValueError naming the expected form."""
    try:
        major, minor = str(version).split(".")
        return int(major), int(minor)
    except ValueError as err:
        raise ValueError(f"schema version {version!r} is not of the form 'MAJOR.MINOR'") from err
