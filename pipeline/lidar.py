"""LiDAR rays that can land in the camera image, and the return model (drop, noise, range limits).

LiDAR frame: x forward, y left, z up; azimuth 0 = +x, increasing towards +y.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from data_schemas.geometry import parse_hw, parse_intrinsics, parse_transform
from pipeline.raycast.trace import image_traces
from pipeline.sensors import SensorSpec


@dataclass(frozen=True)
class RaySet:
    """The (laser, azimuth) firings of one revolution whose rays can reach the camera image."""

    origin_cam: np.ndarray
    """(3,) float64 LiDAR origin in the camera frame (m)."""
    dirs_cam: np.ndarray
    """(N, 3) float64 unit directions in the camera frame."""
    dirs_lidar: np.ndarray
    """(N, 3) float64 unit directions in the LiDAR frame."""
    ring: np.ndarray
    """(N,) int16 laser index (0 = top laser of the sensor spec)."""
    azimuth_index: np.ndarray
    """(N,) int32 firing index within the revolution (azimuth = index * step)."""

    def __len__(self) -> int:
        return len(self.ring)


def _image_border_dirs(K: np.ndarray, hw: tuple[int, int], samples: int = 64) -> np.ndarray:
    """(4 * samples, 3) unit camera-frame directions through the image border (pixel centres)."""
    h, w = hw
    u, v = np.linspace(0, w - 1, samples), np.linspace(0, h - 1, samples)
    border = np.concatenate(
        [
            np.stack([u, np.zeros_like(u)], 1),
            np.stack([u, np.full_like(u, h - 1)], 1),
            np.stack([np.zeros_like(v), v], 1),
            np.stack([np.full_like(v, w - 1), v], 1),
        ]
    )
    d = np.concatenate([border, np.ones((len(border), 1))], 1) @ np.linalg.inv(K).T
    return d / np.linalg.norm(d, axis=1, keepdims=True)


def _pole_in_view(K: np.ndarray, hw: tuple[int, int], up_cam: np.ndarray) -> bool:
    """Whether the LiDAR's up or down axis (camera frame) projects inside the image."""
    for d in (up_cam, -up_cam):
        if d[2] > 1e-9:
            u, v = (K @ (d / d[2]))[:2]
            if 0 <= u <= hw[1] - 1 and 0 <= v <= hw[0] - 1:
                return True
    return False


def candidate_firings(
    sensor: SensorSpec,
    K: np.ndarray,
    hw: tuple[int, int],
    T_cam_from_lidar: np.ndarray,
    near_m: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Lasers (L',) and azimuth indices (A',) that may reach the image at >= ``near_m`` (m).

    Conservative box in (elevation, azimuth) around the image border's directions, widened by
    the parallax of the LiDAR offset at ``near_m`` and one angular step.
    """
    R, origin = T_cam_from_lidar[:3, :3], T_cam_from_lidar[:3, 3]
    d = _image_border_dirs(K, hw) @ R  # LiDAR frame
    margin = math.asin(min(1.0, float(np.linalg.norm(origin)) / max(near_m, 1e-3))) + 1e-3
    el = np.arcsin(np.clip(d[:, 2], -1.0, 1.0))
    elev = np.asarray(sensor.elevations_rad)
    idx = np.arange(sensor.num_azimuths, dtype=np.int32)
    if _pole_in_view(K, hw, R[:, 2]):
        return np.arange(len(elev)), idx
    lasers = np.flatnonzero((elev >= el.min() - margin) & (elev <= el.max() + margin))
    axis = R[2]  # camera optical axis in the LiDAR frame
    az_c = math.atan2(axis[1], axis[0])
    rel = np.angle(np.exp(1j * (np.arctan2(d[:, 1], d[:, 0]) - az_c)))
    top = min(max(abs(el.min()), abs(el.max())) + margin, math.radians(89.0))
    widen = margin / math.cos(top) + sensor.azimuth_step_rad
    delta = np.angle(np.exp(1j * (idx * sensor.azimuth_step_rad - az_c)))
    return lasers, idx[(delta >= rel.min() - widen) & (delta <= rel.max() + widen)]


@functools.lru_cache(maxsize=32)
def _trig_tables(sensor: SensorSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """cos/sin of the laser elevations (L,) and of every azimuth of a revolution (A,)."""
    elev = np.asarray(sensor.elevations_rad)
    az = np.arange(sensor.num_azimuths) * sensor.azimuth_step_rad
    return np.cos(elev), np.sin(elev), np.cos(az), np.sin(az)


def lidar_directions(elevations: np.ndarray, azimuths: np.ndarray) -> np.ndarray:
    """(L,) elevations x (A,) azimuths (rad) -> (L, A, 3) unit directions in the LiDAR frame."""
    ce, se = np.cos(elevations)[:, None], np.sin(elevations)[:, None]
    ca, sa = np.cos(azimuths)[None, :], np.sin(azimuths)[None, :]
    return np.stack(np.broadcast_arrays(ce * ca, ce * sa, se + 0 * ca), axis=-1)


def _rotated_directions(
    sensor: SensorSpec, lasers: np.ndarray, az_idx: np.ndarray, R: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(L*A', 3) directions in the LiDAR frame and rotated by R (ring-major order)."""
    ce, se, ca, sa = _trig_tables(sensor)
    ce, se, ca, sa = ce[lasers], se[lasers], ca[az_idx], sa[az_idx]
    d_lidar = np.stack(
        np.broadcast_arrays(np.outer(ce, ca), np.outer(ce, sa), se[:, None]), axis=-1
    )
    d_rot = [np.outer(ce, ca * R[k, 0] + sa * R[k, 1]) + (se * R[k, 2])[:, None] for k in range(3)]
    return d_lidar.reshape(-1, 3), np.stack(d_rot, axis=-1).reshape(-1, 3)


def camera_facing_rays(
    sensor: SensorSpec,
    K: np.ndarray,
    hw: tuple[int, int],
    T_cam_from_lidar: np.ndarray,
    min_depth_m: float = 0.0,
) -> RaySet:
    """Rays of one revolution whose part within [min, max] range projects inside the (H, W) image.

    ``min_depth_m`` (e.g. the nearest depth of the scene) ignores image crossings nearer to the
    camera than that: a ray can only hit a depth-map mesh where the mesh has depth.
    """
    hw, K, T = parse_hw(hw), parse_intrinsics(K), parse_transform(T_cam_from_lidar)
    origin = T[:3, 3].copy()
    near = max(sensor.min_range_m, min_depth_m - float(np.linalg.norm(origin)))
    lasers, az_idx = candidate_firings(sensor, K, hw, T, near)
    d_lidar, d_cam = _rotated_directions(sensor, lasers, az_idx, T[:3, :3])
    s_max = 1.0 / min_depth_m if min_depth_m > 0 else np.inf
    traces = image_traces(
        origin, d_cam, K, hw, (sensor.min_range_m, sensor.max_range_m), (0.0, s_max)
    )
    keep = np.flatnonzero(traces.ok)
    ring = lasers[keep // len(az_idx)].astype(np.int16)
    return RaySet(origin, d_cam[keep], d_lidar[keep], ring, az_idx[keep % len(az_idx)])


def apply_returns(t_hit: np.ndarray, sensor: SensorSpec, rng: np.random.Generator) -> np.ndarray:
    """(N,) first-hit distances (m, inf = miss) -> measured ranges (m, inf = no return).

    Drops misses, returns outside [min, max] range, and a random fraction
    drop_prob + drop_prob_per_100m * range / 100; adds Gaussian range noise.
    Always draws 2N numbers so that the stream does not depend on the hits.
    """
    t_hit = np.asarray(t_hit, dtype=np.float64)
    u, noise = rng.random(t_hit.shape), rng.standard_normal(t_hit.shape)
    finite = np.isfinite(t_hit)
    t = np.where(finite, t_hit, 0.0)
    r = t + sensor.range_noise_std_m * noise
    p_drop = sensor.drop_prob + sensor.drop_prob_per_100m * t / 100.0
    keep = finite & (t >= sensor.min_range_m) & (r <= sensor.max_range_m) & (r > 0) & (u >= p_drop)
    return np.where(keep, r, np.inf)
