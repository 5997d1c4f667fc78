"""Thin a real 64-beam scan to fewer laser rings (the 64/32/16/8-line robustness test).

Two ring assignments:

* :func:`rings_from_scan_order` (exact, for raw ``.bin`` scans): KITTI stores a scan laser
  by laser, each sweeping the full azimuth, so a new ring starts wherever the azimuth
  wraps around (|jump| > pi). Measured on the sample scan: 64 wraps, rings ordered from the
  top laser (+2.4 deg) to the bottom one (-23.6 deg).
* :func:`rings_from_elevation` (for projected sparse maps, e.g. ``velodyne_raw`` PNGs,
  which is what ``dmd3c evaluate --beams`` thins): pixels are back-projected with K, moved
  into the LiDAR frame, and their elevation angles are clustered into 64 rings by 1-D
  k-means (initialised at elevation quantiles), ordered top to bottom. On KITTI the
  per-laser elevation spread (~0.3-0.6 deg inside the camera view, motion compensation
  included) is as large as the ring spacing (~0.33-0.5 deg), so these clusters are
  elevation *bands* rather than exact lasers; they thin the scan to the intended line
  density (about 1/2, 1/4, 1/8 of the points), which is what the robustness test needs.

``thin_to_beams`` keeps every ``64 / beams``-th ring counted from the top.
"""

from __future__ import annotations

import numpy as np

from data_schemas.errors import ConfigError

SENSOR_RINGS = 64
BEAM_CHOICES: tuple[int, ...] = (64, 32, 16, 8)
T_CAM2_FROM_LIDAR_2011_09_26 = np.array([
    [2.347737e-04, -9.999442e-01, -1.056348e-02, 5.705245e-02],
    [1.044941e-02, 1.056535e-02, -9.998896e-01, -7.546672e-02],
    [9.999454e-01, 1.243654e-04, 1.045130e-02, -2.693869e-01],
    [0.0, 0.0, 0.0, 1.0]])
"""Rectified camera 2 from Velodyne, KITTI 2011_09_26 calibration (P_rect_02, R_rect_00,
calib_velo_to_cam): the default when a frame has no calibration of its own (cropped sets)."""


def parse_beams(text: str | int | None) -> list[int]:
    """``"64,32,16,8"`` -> [64, 32, 16, 8]; each must be one of :data:`BEAM_CHOICES`."""
    if text is None or text == "":
        return []
    values = [int(v) for v in str(text).split(",") if v.strip()]
    bad = [v for v in values if v not in BEAM_CHOICES]
    if bad:
        raise ConfigError(f"beams {bad} not supported; choose from "
                         f"{', '.join(map(str, BEAM_CHOICES))} (comma-separated)")
    return values


def rings_from_scan_order(points: np.ndarray) -> np.ndarray:
    """[N,>=2] LiDAR points in scan order -> ring index [N] (0 = first ring stored)."""
    azimuth = np.arctan2(points[:, 1], points[:, 0])
    wraps = np.abs(np.diff(azimuth)) > np.pi
    return np.concatenate([[0], np.cumsum(wraps)]).astype(np.int64)


def _kmeans_1d(values: np.ndarray, clusters: int, iterations: int = 20) -> np.ndarray:
    """1-D k-means -> sorted centres (initialised at quantiles)."""
    centres = np.unique(np.quantile(values, (np.arange(clusters) + 0.5) / clusters))
    for _ in range(iterations):
        edges = (centres[1:] + centres[:-1]) / 2
        label = np.searchsorted(edges, values)
        sums = np.bincount(label, weights=values, minlength=len(centres))
        counts = np.bincount(label, minlength=len(centres))
        updated = np.where(counts > 0, sums / np.maximum(counts, 1), centres)
        if np.allclose(updated, centres):
            break
        centres = np.sort(updated)
    return centres


def elevation_deg(points_lidar: np.ndarray) -> np.ndarray:
    """[N,>=3] LiDAR-frame points -> elevation angle [N] in degrees (up positive)."""
    horizontal = np.hypot(points_lidar[:, 0], points_lidar[:, 1])
    return np.asarray(np.degrees(np.arctan2(points_lidar[:, 2], horizontal)))


def rings_from_elevation(elevation: np.ndarray, rings: int = SENSOR_RINGS) -> np.ndarray:
    """Elevation angles [N] -> ring index [N], 0 = top ring, by 1-D k-means into ``rings``."""
    if elevation.size == 0:
        return np.zeros(0, dtype=np.int64)
    centres = _kmeans_1d(elevation.astype(np.float64), min(rings, elevation.size))
    label = np.searchsorted((centres[1:] + centres[:-1]) / 2, elevation)
    return (len(centres) - 1 - label).astype(np.int64)


def sparse_to_lidar_points(sparse: np.ndarray, K: np.ndarray,
                           T_cam_from_lidar: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sparse depth [H,W] m -> (LiDAR-frame points [N,3], flat pixel indices [N])."""
    v, u = np.nonzero(sparse > 0)
    z = sparse[v, u].astype(np.float64)
    rays = np.linalg.solve(K, np.stack([u, v, np.ones_like(u)]).astype(np.float64))
    cam = np.concatenate([rays * z, np.ones((1, z.size))])
    lidar = np.linalg.solve(T_cam_from_lidar, cam)[:3].T
    return lidar, v * sparse.shape[1] + u


def keep_rings(ring: np.ndarray, beams: int, sensor_rings: int = SENSOR_RINGS) -> np.ndarray:
    """Mask of points whose ring survives thinning to ``beams`` (every k-th from the top)."""
    if beams not in BEAM_CHOICES:
        raise ConfigError(f"beams must be one of {BEAM_CHOICES}, got {beams}")
    return np.asarray(ring % (sensor_rings // beams) == 0)


def thin_sparse_to_beams(sparse: np.ndarray, K: np.ndarray, beams: int,
                         T_cam_from_lidar: np.ndarray | None = None) -> np.ndarray:
    """Keep the pixels of a projected 64-beam map that lie on ``beams`` rings (elevation)."""
    if beams == SENSOR_RINGS:
        return sparse.copy()
    T = T_CAM2_FROM_LIDAR_2011_09_26 if T_cam_from_lidar is None else T_cam_from_lidar
    points, flat = sparse_to_lidar_points(sparse, K, T)
    keep = keep_rings(rings_from_elevation(elevation_deg(points)), beams)
    out = np.zeros(sparse.size, dtype=sparse.dtype)
    out[flat[keep]] = sparse.reshape(-1)[flat[keep]]
    return out.reshape(sparse.shape)


def thin_scan_to_beams(points: np.ndarray, beams: int) -> np.ndarray:
    """Keep the points of a raw scan (scan order) that lie on ``beams`` rings."""
    return np.asarray(points[keep_rings(rings_from_scan_order(points), beams)])
