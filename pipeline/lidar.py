"""LiDAR rays that can land in the camera image, and the return model (drop, noise, range limits).

LiDAR frame: x forward, y left, z up; azimuth 0 = +x, increasing towards +y.

Laser ``l`` of a ``SensorSpec`` fires at azimuths ``a = azimuth_offset[l] + k * step`` (its own
phase: returns of different lasers do not line up in image columns), from its emitter at

    o = vertical_offset[l] * (-sin(el) cos(a), -sin(el) sin(a), cos(el))
        + horizontal_offset[l] * (-sin(a), cos(a), 0)

along ``d = (cos(el) cos(a), cos(el) sin(a), sin(el))`` (Velodyne's calibration model: a return
at distance t lies at o + t d).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from data_schemas.geometry import parse_hw, parse_intrinsics, parse_transform
from pipeline.mesh import AnyMesh, GridMesh, LayeredGridMesh
from pipeline.raycast.trace import image_traces
from pipeline.sensors import ReturnModel, SensorSpec


@dataclass(frozen=True)
class RaySet:
    """The (laser, azimuth) firings of one revolution whose rays can reach the camera image."""

    origins_cam: np.ndarray
    """(N, 3) float64 emitter positions in the camera frame (m)."""
    dirs_cam: np.ndarray
    """(N, 3) float64 unit directions in the camera frame."""
    origins_lidar: np.ndarray
    """(N, 3) float64 emitter positions in the LiDAR frame (m)."""
    dirs_lidar: np.ndarray
    """(N, 3) float64 unit directions in the LiDAR frame."""
    ring: np.ndarray
    """(N,) int16 laser index (0 = top laser of the sensor spec)."""
    azimuth_index: np.ndarray
    """(N,) int32 firing index k of its laser (azimuth = offset + k * step, modulo 360 deg)."""

    def __len__(self) -> int:
        return len(self.ring)

    def points_cam(self, ranges: np.ndarray) -> np.ndarray:
        """(N,) distances along the rays -> (N, 3) camera-frame points."""
        return np.asarray(self.origins_cam + ranges[:, None] * self.dirs_cam)

    def points_lidar(self, ranges: np.ndarray) -> np.ndarray:
        """(N,) distances along the rays -> (N, 3) LiDAR-frame points."""
        return np.asarray(self.origins_lidar + ranges[:, None] * self.dirs_lidar)


def beam_geometry(
    sensor: SensorSpec, lasers: np.ndarray, azimuths: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(N,) laser indices + (N,) azimuths (rad) -> ((N, 3) emitter origins, (N, 3) unit dirs),
    LiDAR frame (module docstring)."""
    cos_el, sin_el, vertical, horizontal = _laser_columns(sensor)
    ce, se = cos_el[lasers], sin_el[lasers]
    ca, sa = np.cos(azimuths), np.sin(azimuths)
    dirs = np.stack([ce * ca, ce * sa, se], axis=1)
    v, h = vertical[lasers], horizontal[lasers]
    origins = np.stack([-v * se * ca - h * sa, -v * se * sa + h * ca, v * ce], axis=1)
    return origins, dirs


@functools.lru_cache(maxsize=32)
def _laser_columns(sensor: SensorSpec) -> tuple[np.ndarray, ...]:
    """cos / sin of the elevations and the emitter offsets, as arrays (L,)."""
    elevations = np.asarray(sensor.elevations_rad)
    return (np.cos(elevations), np.sin(elevations), np.asarray(sensor.vertical_offsets_m),
            np.asarray(sensor.horizontal_offsets_m))


def lidar_directions(elevations: np.ndarray, azimuths: np.ndarray) -> np.ndarray:
    """(L,) elevations x (A,) azimuths (rad) -> (L, A, 3) unit directions in the LiDAR frame."""
    ce, se = np.cos(elevations)[:, None], np.sin(elevations)[:, None]
    ca, sa = np.cos(azimuths)[None, :], np.sin(azimuths)[None, :]
    return np.stack(np.broadcast_arrays(ce * ca, ce * sa, se + 0 * ca), axis=-1)


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
    return np.asarray(d / np.linalg.norm(d, axis=1, keepdims=True))


def _pole_in_view(K: np.ndarray, hw: tuple[int, int], up_cam: np.ndarray) -> bool:
    """Whether the LiDAR's up or down axis (camera frame) projects inside the image."""
    for d in (up_cam, -up_cam):
        if d[2] > 1e-9:
            u, v = (K @ (d / d[2]))[:2]
            if 0 <= u <= hw[1] - 1 and 0 <= v <= hw[0] - 1:
                return True
    return False


@dataclass(frozen=True)
class FiringWindow:
    """Lasers and the azimuth interval [lo, hi] (rad, LiDAR frame) that may reach the image."""

    lasers: np.ndarray
    azimuth_lo: float
    azimuth_hi: float


def firing_window(
    sensor: SensorSpec, K: np.ndarray, hw: tuple[int, int], T_cam_from_lidar: np.ndarray,
    near_m: float,
) -> FiringWindow:
    """Conservative (elevation, azimuth) box around the image border's directions, widened by
    the parallax of the LiDAR and emitter offsets at ``near_m`` and one angular step."""
    R, origin = T_cam_from_lidar[:3, :3], T_cam_from_lidar[:3, 3]
    d = _image_border_dirs(K, hw) @ R  # LiDAR frame
    offset = float(np.linalg.norm(origin)) + sensor.max_emitter_offset_m
    margin = math.asin(min(1.0, offset / max(near_m, 1e-3))) + 1e-3
    if _pole_in_view(K, hw, R[:, 2]) or margin > math.radians(80.0):
        return FiringWindow(np.arange(sensor.beams), -math.pi, math.pi)
    el = np.arcsin(np.clip(d[:, 2], -1.0, 1.0))
    elev = np.asarray(sensor.elevations_rad)
    lasers = np.flatnonzero((elev >= el.min() - margin) & (elev <= el.max() + margin))
    axis = R[2]  # camera optical axis in the LiDAR frame
    az_c = math.atan2(axis[1], axis[0])
    rel = np.angle(np.exp(1j * (np.arctan2(d[:, 1], d[:, 0]) - az_c)))
    top = min(max(abs(el.min()), abs(el.max())) + margin, math.radians(89.0))
    widen = margin / math.cos(top) + sensor.azimuth_step_rad
    return FiringWindow(lasers, az_c + rel.min() - widen, az_c + rel.max() + widen)


def window_firings(
    sensor: SensorSpec, window: FiringWindow, phase_shift_rad: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every firing of the window's lasers inside its azimuth interval.

    Returns (laser index, firing index k in [0, firings per revolution), azimuth rad), each
    (N,); the azimuth is ``phase + k * step`` (when 360 deg is not a whole number of steps, the
    spacing is irregular at azimuth ``phase``, as on a sensor whose firings drift against its
    revolution). ``phase_shift_rad`` (L,) shifts each laser's phase (seeded jitter).
    """
    step = sensor.azimuth_step_rad
    lasers = window.lasers
    phase = np.asarray(sensor.azimuth_offsets_rad)[lasers]
    if phase_shift_rad is not None:
        phase = phase + phase_shift_rad[lasers]
    full = window.azimuth_hi - window.azimuth_lo >= 2 * math.pi
    k_lo = np.ceil((window.azimuth_lo - phase) / step).astype(np.int64)
    k_hi = np.floor((window.azimuth_hi - phase) / step).astype(np.int64)
    if full:
        k_hi = k_lo + sensor.num_azimuths - 1
    count = np.maximum(k_hi - k_lo + 1, 0)
    which = np.repeat(np.arange(len(lasers)), count)
    k = k_lo[which] + np.arange(len(which)) - np.repeat(np.cumsum(count) - count, count)
    k = np.mod(k, sensor.num_azimuths)
    return lasers[which], k, phase[which] + k * step


def camera_facing_rays(
    sensor: SensorSpec,
    K: np.ndarray,
    hw: tuple[int, int],
    T_cam_from_lidar: np.ndarray,
    min_depth_m: float = 0.0,
    phase_shift_rad: np.ndarray | None = None,
) -> RaySet:
    """Rays of one revolution whose part within [min, max] range projects inside the (H, W) image.

    ``min_depth_m`` (e.g. the nearest depth of the scene) ignores image crossings nearer to the
    camera than that: a ray can only hit a depth-map mesh where the mesh has depth.
    ``phase_shift_rad`` (L,): per-laser shift of the firing phase (seeded jitter), or None.
    """
    hw, K, T = parse_hw(hw), parse_intrinsics(K), parse_transform(T_cam_from_lidar)
    reach = float(np.linalg.norm(T[:3, 3])) + sensor.max_emitter_offset_m
    near = max(sensor.min_range_m, min_depth_m - reach)
    window = firing_window(sensor, K, hw, T, near)
    lasers, k, azimuth = window_firings(sensor, window, phase_shift_rad)
    origins_lidar, dirs_lidar = beam_geometry(sensor, lasers, azimuth)
    R, t = T[:3, :3], T[:3, 3]
    origins_cam, dirs_cam = origins_lidar @ R.T + t, dirs_lidar @ R.T
    s_max = 1.0 / min_depth_m if min_depth_m > 0 else np.inf
    traces = image_traces(
        origins_cam, dirs_cam, K, hw, (sensor.min_range_m, sensor.max_range_m), (0.0, s_max)
    )
    keep = np.flatnonzero(traces.ok)
    return RaySet(origins_cam[keep], dirs_cam[keep], origins_lidar[keep], dirs_lidar[keep],
                  lasers[keep].astype(np.int16), k[keep].astype(np.int32))


# -- what the surface at a hit looks like to the return model ---------------------------------
@dataclass(frozen=True)
class HitSurface:
    """The surface under each hit, from the grid mesh and the camera image."""

    cos_incidence: np.ndarray
    """(N,) |cos| of the angle between the ray and the surface normal, in [0, 1]."""
    row: np.ndarray
    """(N,) int64 camera pixel row nearest to the hit."""
    col: np.ndarray
    """(N,) int64 camera pixel column nearest to the hit."""
    unseen: np.ndarray
    """(N,) bool: the hit lies on a surface the camera does not see (background layer)."""


def _cell_planes(
    q: np.ndarray, u: np.ndarray, v: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Plane q = a u + b v + c of the grid triangle under each (u, v), and whether it exists."""
    h, w = q.shape
    col = np.clip(u.astype(np.int64), 0, w - 2)
    row = np.clip(v.astype(np.int64), 0, h - 2)
    flat, corner = q.ravel(), row * w + col
    q_tl, q_br = flat[corner], flat[corner + w + 1]
    upper = (u - col) >= (v - row)
    q_side = np.where(upper, flat[corner + 1], flat[corner + w])  # top-right or bottom-left
    a = np.where(upper, q_side - q_tl, q_br - q_side)
    b = np.where(upper, q_br - q_side, q_side - q_tl)
    exists = np.minimum(np.minimum(q_tl, q_br), q_side) > 0
    return a, b, q_tl - a * col - b * row, exists


def hit_surface(mesh: AnyMesh, points_cam: np.ndarray, dirs_cam: np.ndarray) -> HitSurface:
    """Incidence angle and camera pixel of each hit on a grid (or layered grid) mesh.

    A grid triangle's inverse depth is q = a u + b v + c, so its plane is m . X = 1 with
    m = K^T (a, b, c) and normal m / |m|. On a layered mesh a hit lies on the front layer when
    that layer's plane there matches the hit's inverse depth (within 0.1 %), else on the
    background layer (``unseen``). Other meshes (poisson) get cos = 1 and no unseen hits.
    """
    n = len(points_cam)
    if not isinstance(mesh, GridMesh | LayeredGridMesh) or n == 0:
        z = np.zeros(n, np.int64)
        return HitSurface(np.ones(n), z, z, np.zeros(n, bool))
    K, (h, w) = mesh.K, mesh.hw
    z = points_cam[:, 2]
    u = (K[0, 0] * points_cam[:, 0] + K[0, 1] * points_cam[:, 1]) / z + K[0, 2]
    v = K[1, 1] * points_cam[:, 1] / z + K[1, 2]
    layers = mesh.layers if isinstance(mesh, LayeredGridMesh) else (mesh,)
    a, b, c, exists = _cell_planes(layers[0].inv_depth, u, v)
    unseen = ~exists | (np.abs(a * u + b * v + c - 1.0 / z) > 1e-3 / z)
    if len(layers) > 1 and unseen.any():
        back = np.flatnonzero(unseen)
        a[back], b[back], c[back], _ = _cell_planes(layers[1].inv_depth, u[back], v[back])
    else:
        unseen[:] = False
    m = np.stack([K[0, 0] * a, K[0, 1] * a + K[1, 1] * b, K[0, 2] * a + K[1, 2] * b + c], 1)
    norm = np.sqrt(np.einsum("ij,ij->i", m, m))
    dot = np.abs(np.einsum("ij,ij->i", m, dirs_cam))
    cos = np.where(norm > 0, dot / np.where(norm > 0, norm, 1.0), 1.0)
    row = np.clip(np.rint(v), 0, h - 1).astype(np.int64)
    col = np.clip(np.rint(u), 0, w - 1).astype(np.int64)
    return HitSurface(np.clip(cos, 0.0, 1.0), row, col, unseen)


REC709_WEIGHTS = np.array([0.2126, 0.7152, 0.0722])
"""Linear-light luminance weights of (R, G, B)."""
_SRGB_TO_LINEAR = np.where(
    np.arange(256) / 255.0 <= 0.04045,
    np.arange(256) / 255.0 / 12.92,
    ((np.arange(256) / 255.0 + 0.055) / 1.055) ** 2.4,
)
"""sRGB 8-bit code -> linear intensity in [0, 1]."""


def linear_luminance(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 sRGB -> (...) float64 linear luminance in [0, 1] (Rec. 709 weights)."""
    return np.asarray(_SRGB_TO_LINEAR[np.asarray(rgb, np.uint8)] @ REC709_WEIGHTS)


ILLUMINATION_BLOCK = 8
"""The local illumination is computed on 8 x 8 pixel blocks."""


def local_illumination(rgb: np.ndarray) -> np.ndarray:
    """(H / 8, W / 8) mean linear luminance over a window of ~1/16 of the image width."""
    import cv2

    h, w = rgb.shape[:2]
    b = ILLUMINATION_BLOCK
    small = cv2.resize(rgb, (max(1, w // b), max(1, h // b)), interpolation=cv2.INTER_AREA)
    window = max(3, (w // b) // 16) | 1
    return cv2.blur(linear_luminance(small), (window, window), borderType=cv2.BORDER_REFLECT)


def reflectance_proxy(
    model: ReturnModel, surface: HitSurface, rgb: np.ndarray | None
) -> np.ndarray:
    """(N,) reflectance of each hit from the camera image (see ``ReturnModel``); the model's
    default where the camera does not see the surface (or without an image)."""
    default = np.full(len(surface.row), model.default_reflectance)
    if rgb is None:
        return default
    illumination = local_illumination(rgb)
    b = ILLUMINATION_BLOCK
    local = illumination[np.minimum(surface.row // b, illumination.shape[0] - 1),
                         np.minimum(surface.col // b, illumination.shape[1] - 1)]
    relative = linear_luminance(rgb[surface.row, surface.col]) / np.maximum(local, 1e-3)
    seen = np.clip(model.reflectance_typical * relative, model.reflectance_dark,
                   model.reflectance_bright)
    return np.where(surface.unseen, default, seen)


def detection_probability(
    model: ReturnModel, range_m: np.ndarray, cos_incidence: np.ndarray, reflectance: np.ndarray
) -> np.ndarray:
    """(N,) probability that a hit is detected: 1 / (1 + (signal_50 / signal) ** steepness),
    signal = reflectance * cos(incidence) ** incidence_exponent / range ** 2."""
    signal = reflectance * np.power(np.clip(cos_incidence, 0.0, 1.0), model.incidence_exponent)
    signal = signal / np.maximum(range_m, 1e-6) ** 2
    with np.errstate(divide="ignore"):
        ratio = np.where(signal > 0, model.signal_50 / np.maximum(signal, 1e-300), np.inf)
    return 1.0 / (1.0 + ratio**model.steepness)


def apply_returns(
    t_hit: np.ndarray,
    sensor: SensorSpec,
    rng: np.random.Generator,
    detection: np.ndarray | None = None,
) -> np.ndarray:
    """(N,) first-hit distances (m, inf = miss) -> measured ranges (m, inf = no return).

    Drops misses, returns outside [min, max] range, hits not detected (``detection``: (N,)
    probabilities from :func:`detection_probability`, None = all detected), and an i.i.d.
    fraction drop_prob + drop_prob_per_100m * range / 100; adds Gaussian range noise.
    Always draws 2N numbers so that the stream does not depend on the hits.
    """
    t_hit = np.asarray(t_hit, dtype=np.float64)
    u, noise = rng.random(t_hit.shape), rng.standard_normal(t_hit.shape)
    finite = np.isfinite(t_hit)
    t = np.where(finite, t_hit, 0.0)
    r = t + sensor.range_noise_std_m * noise
    p_keep = 1.0 - np.clip(sensor.drop_prob + sensor.drop_prob_per_100m * t / 100.0, 0.0, 1.0)
    if detection is not None:
        p_keep = p_keep * detection
    keep = finite & (t >= sensor.min_range_m) & (r <= sensor.max_range_m) & (r > 0) & (u < p_keep)
    return np.where(keep, r, np.inf)
