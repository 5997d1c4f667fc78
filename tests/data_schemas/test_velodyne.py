"""Laser rings from the scan order of a KITTI Velodyne scan (toy scans; the real scan is
checked in tests/train/datasets/kitti and tests/pipeline/test_calibration.py)."""

import numpy as np

from data_schemas.velodyne import rings_from_scan_order


def _scan(azimuths: list[float]) -> np.ndarray:
    az = np.asarray(azimuths)
    return np.stack([np.cos(az), np.sin(az), np.zeros_like(az)], 1)


def test_a_new_laser_starts_where_the_azimuth_crosses_zero_upwards() -> None:
    # laser 0: 0 -> +3 rad, wraps at the back (-3), back round to -0.1; laser 1 from +0.05
    az = [*np.linspace(0, 3, 4), *np.linspace(-3, -0.1, 4), *np.linspace(0.05, 3, 4)]
    assert rings_from_scan_order(_scan(az)).tolist() == [0] * 8 + [1] * 4


def test_a_minus_zero_azimuth_ends_the_previous_laser() -> None:
    points = _scan([0.2, 3.0, -3.0, -0.3, 0.0, 0.1, 3.1])
    points[4] = [1.0, -0.0, 0.0]  # atan2(-0.0, 1) = -0.0: still the first laser
    assert rings_from_scan_order(points).tolist() == [0, 0, 0, 0, 0, 1, 1]
