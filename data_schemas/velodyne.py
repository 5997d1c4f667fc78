"""Laser rings of a KITTI Velodyne HDL-64E scan, recovered from the order of its points.

A KITTI ``.bin`` stores the scan laser by laser, top laser first, and each laser's sweep runs
from azimuth 0 (straight ahead) round to 0 again, wrapping at +-180 deg *inside* the laser. A
new laser therefore starts where the azimuth crosses 0 upwards (from < 0, -0.0 included, to
>= +0.0 between consecutive points), not where it wraps: the wrap rule splits every laser at
the back and glues the rear half of laser l to the front half of laser l + 1 (65 segments for
64 lasers, with a ~0.3-0.5 deg elevation step in the middle of the camera view). Checked on
six KITTI scans from different drives: 64 rings each, every ring one laser.

Both rooms use it: ``pipeline.calibration`` (the laser table, realism) and
``train.datasets.kitti.beams`` (thinning a raw scan to 32/16/8 lines).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def rings_from_scan_order(points: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """(N, >=2) KITTI points (x forward, y left) in scan order -> (N,) int64 laser index,
    0 = the first laser stored (the top one)."""
    xy = np.asarray(points, dtype=np.float64)
    azimuth = np.arctan2(xy[:, 1], xy[:, 0])
    negative = np.signbit(azimuth)  # a laser's last returns may sit at azimuth -0.0
    starts = negative[:-1] & ~negative[1:] & (np.abs(np.diff(azimuth)) < np.pi)
    return np.concatenate([[0], np.cumsum(starts)]).astype(np.int64)
