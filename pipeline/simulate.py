"""One call per frame: metric depth + K + sensor + mount + seed -> LiDAR scan and sparse depth.

Per frame: grid mesh of the depth map (plus a background layer behind its depth
discontinuities, so that the offset LiDAR sees behind foreground edges), the sensor's firings
that can reach the image (per-laser phases and emitter offsets), a first-hit ray cast, the
physical return model (range, incidence, reflectance proxy from the image), noise, and a
z-buffered projection into the camera.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from data_schemas.errors import ConfigError, InputError
from data_schemas.geometry import (
    parse_depth,
    parse_intrinsics,
    parse_transform,
    points_to_sparse_depth,
)
from pipeline.camera import (
    IntrinsicsSampler,
    MetricRange,
    sample_intrinsics,
    teacher_to_metric_depth,
)
from pipeline.lidar import (
    RaySet,
    apply_returns,
    camera_facing_rays,
    detection_probability,
    hit_surface,
    reflectance_proxy,
)
from pipeline.mesh import (
    AnyMesh,
    GridMesh,
    Parallax,
    TriangleMesh,
    build_mesh,
    layered_mesh,
    parse_mesh_method,
)
from pipeline.pose import MountJitter, jitter_mount, kitti_mount
from pipeline.raycast import make_caster, parse_backend
from pipeline.seeding import Seed, stream
from pipeline.sensors import SensorSpec

DEFAULT_INTRINSICS = IntrinsicsSampler()
DEFAULT_METRIC = MetricRange()


@dataclass(frozen=True)
class Scan:
    """A simulated LiDAR frame as seen by the camera."""

    sparse_depth: np.ndarray
    """(H, W) float32 depth (m) of the projected returns (z-buffer), 0 = no return."""
    points_lidar: np.ndarray
    """(N, 3) float32 returns in the LiDAR frame (x fwd, y left, z up), m."""
    ring: np.ndarray
    """(N,) int16 laser index of each return (0 = top laser of the sensor spec)."""
    azimuth_index: np.ndarray
    """(N,) int32 firing index of each return (azimuth = index * step, 0 = LiDAR +x)."""
    T_cam_from_lidar: np.ndarray
    """(4, 4) float64 mount actually used (after jitter)."""
    K: np.ndarray
    """(3, 3) float64 camera intrinsics."""
    num_rays: int
    """Rays cast (firings that can reach the image)."""

    @property
    def density(self) -> float:
        """Fraction of pixels with a return."""
        return float(np.count_nonzero(self.sparse_depth)) / self.sparse_depth.size


@dataclass(frozen=True)
class SimConfig:
    """How a scan is simulated (everything but the sensor)."""

    backend: str = "fast"
    """Ray-cast backend: fast | embree | open3d."""
    mesh_method: str = "grid"
    """grid (default) | poisson (open3d; embree/open3d backends only)."""
    max_rel_jump: float = 0.1
    """Grid mesh: cull triangles whose depth ratio exceeds 1 + this."""
    jitter: MountJitter = field(default_factory=MountJitter)
    """Random perturbation of the LiDAR mount (0 by default)."""
    see_through: bool = True
    """Grid mesh: add a background layer behind depth discontinuities, so that the offset
    LiDAR sees behind foreground edges as real scans do (KITTI: ~3-4 % of returns)."""
    background_band_px: int = 64
    """Largest reach (px) of that layer under the foreground; below it, the reach behind each
    edge is the parallax of the LiDAR (mount + emitter offsets) between its two depths."""
    physical_returns: bool = True
    """Apply the sensor's return model (range, incidence, image reflectance); False: every hit
    within range returns (the sensor's i.i.d. drop still applies)."""
    azimuth_jitter_deg: float = 0.0
    """Per scan, shift each laser's firing phase by a seeded uniform offset in +- this (deg)."""

    def __post_init__(self) -> None:
        if self.background_band_px < 0 or self.azimuth_jitter_deg < 0:
            raise ConfigError("background_band_px and azimuth_jitter_deg must be >= 0")


def _empty_scan(hw: tuple[int, int], T: np.ndarray, K: np.ndarray, num_rays: int = 0) -> Scan:
    return Scan(
        np.zeros(hw, np.float32),
        np.zeros((0, 3), np.float32),
        np.zeros(0, np.int16),
        np.zeros(0, np.int32),
        T,
        K,
        num_rays,
    )


def _nearest_depth(mesh: GridMesh | TriangleMesh, depth: np.ndarray) -> float | None:
    """Smallest depth (m) of the surface, None when there is none (all sky / empty mesh)."""
    if isinstance(mesh, GridMesh):
        q = float(mesh.inv_depth.max())
        return 1.0 / q if q > 0 else None
    if len(mesh.faces) == 0 or not np.any(depth > 0):
        return None
    return float(
        min(
            depth[depth > 0].min(), mesh.vertices[:, 2][mesh.vertices[:, 2] > 0].min(initial=np.inf)
        )
    )


def lidar_parallax(K: np.ndarray, T_cam_from_lidar: np.ndarray, sensor: SensorSpec,
                   max_px: int) -> Parallax:
    """How far the LiDAR (mount + emitter offsets) sees behind foreground edges (``Parallax``)."""
    offset = np.abs(T_cam_from_lidar[:3, 3])
    emitter = sensor.max_emitter_offset_m
    return Parallax(float(max(K[0, 0], K[1, 1]) * (np.hypot(offset[0], offset[1]) + emitter)),
                    float(offset[2] + emitter), (float(K[0, 2]), float(K[1, 2])), max_px)


def scene_mesh(
    depth: np.ndarray, K: np.ndarray, config: SimConfig, T: np.ndarray, sensor: SensorSpec
) -> tuple[AnyMesh, float | None]:
    """The mesh to cast against (layered when see-through applies) and its nearest depth."""
    mesh = build_mesh(depth, K, config.mesh_method, config.max_rel_jump)
    nearest = _nearest_depth(mesh, depth)
    if nearest is None or not (isinstance(mesh, GridMesh) and config.see_through):
        return mesh, nearest
    parallax = lidar_parallax(K, T, sensor, config.background_band_px)
    return layered_mesh(mesh, parallax), nearest


def _phase_shift(sensor: SensorSpec, config: SimConfig, rng: np.random.Generator) -> np.ndarray:
    """(L,) seeded per-laser phase shift (rad); always draws L numbers."""
    u = rng.uniform(-1.0, 1.0, sensor.beams)
    return np.asarray(u * np.radians(config.azimuth_jitter_deg))


def hit_detection(
    mesh: AnyMesh, rays: RaySet, t_hit: np.ndarray, sensor: SensorSpec, config: SimConfig,
    rgb: np.ndarray | None,
) -> np.ndarray | None:
    """(N,) detection probability of every ray's hit (1 for misses), None = model off."""
    model = sensor.returns
    if model is None or not config.physical_returns:
        return None
    hit = np.flatnonzero(np.isfinite(t_hit))
    points = rays.origins_cam[hit] + t_hit[hit, None].astype(np.float64) * rays.dirs_cam[hit]
    surface = hit_surface(mesh, points, rays.dirs_cam[hit])
    p = np.ones(len(t_hit))
    p[hit] = detection_probability(model, t_hit[hit].astype(np.float64), surface.cos_incidence,
                                   reflectance_proxy(model, surface, rgb))
    return p


def _check_rgb(rgb: np.ndarray | None, hw: tuple[int, int]) -> np.ndarray | None:
    if rgb is None:
        return None
    rgb = np.asarray(rgb)
    if rgb.shape != (*hw, 3) or rgb.dtype != np.uint8:
        raise InputError(f"rgb must be a uint8 (H, W, 3) image of the depth's size {hw}, got "
                         f"{rgb.dtype} {rgb.shape}")
    return rgb


def simulate_scan(
    depth: np.ndarray,
    K: np.ndarray,
    sensor: SensorSpec,
    T_cam_from_lidar: np.ndarray,
    seed: Seed,
    *,
    key: str = "",
    config: SimConfig = SimConfig(),
    rgb: np.ndarray | None = None,
) -> Scan:
    """(H, W) metric depth (m, 0 = sky) + (3, 3) K + sensor + (4, 4) mount -> ``Scan``.

    ``rgb`` (H, W, 3) uint8, the camera image, gives the return model its reflectance proxy
    (without it every surface has the model's default reflectance).
    Same inputs, seed and key -> bit-identical output. All-sky input -> empty scan.
    """
    depth, K = parse_depth(depth), parse_intrinsics(K)
    rgb = _check_rgb(rgb, depth.shape)
    if parse_backend(config.backend) == "fast" and parse_mesh_method(config.mesh_method) != "grid":
        raise ConfigError(
            "the 'fast' backend needs the grid mesh (a GridMesh); use embree or open3d for poisson"
        )
    T = jitter_mount(parse_transform(T_cam_from_lidar), config.jitter, stream(seed, "mount", key))
    returns_rng = stream(seed, "returns", key)
    phase_shift = _phase_shift(sensor, config, stream(seed, "phases", key))
    mesh, nearest = scene_mesh(depth, K, config, T, sensor)
    if nearest is None:
        return _empty_scan(depth.shape, T, K)
    rays = camera_facing_rays(sensor, K, depth.shape, T, min_depth_m=nearest,
                              phase_shift_rad=phase_shift)
    t_hit = make_caster(config.backend, mesh).cast(rays.origins_cam, rays.dirs_cam,
                                                   sensor.max_range_m)
    detection = hit_detection(mesh, rays, t_hit, sensor, config, rgb)
    ranges = apply_returns(t_hit, sensor, returns_rng, detection)
    hit = np.flatnonzero(np.isfinite(ranges))
    r = ranges[hit, None]
    return Scan(
        sparse_depth=points_to_sparse_depth(rays.origins_cam[hit] + r * rays.dirs_cam[hit], K,
                                            depth.shape),
        points_lidar=(rays.origins_lidar[hit] + r * rays.dirs_lidar[hit]).astype(np.float32),
        ring=rays.ring[hit],
        azimuth_index=rays.azimuth_index[hit],
        T_cam_from_lidar=T,
        K=K,
        num_rays=len(rays),
    )


@dataclass(frozen=True)
class Simulation:
    """Teacher output turned into a training sample's geometry."""

    depth: np.ndarray
    """(H, W) float32 metric depth (m), 0 = sky."""
    sky: np.ndarray
    """(H, W) bool sky / far-background mask."""
    scan: Scan


def simulate(
    teacher_output: np.ndarray,
    kind: str,
    sensor: SensorSpec,
    seed: Seed,
    *,
    key: str = "",
    K: np.ndarray | None = None,
    T_cam_from_lidar: np.ndarray | None = None,
    intrinsics: IntrinsicsSampler = DEFAULT_INTRINSICS,
    metric: MetricRange = DEFAULT_METRIC,
    sky: np.ndarray | None = None,
    config: SimConfig = SimConfig(),
    rgb: np.ndarray | None = None,
) -> Simulation:
    """Teacher output (H, W) (``kind`` = disparity | depth) -> metric depth, sampled K, scan.

    K is sampled from ``intrinsics`` unless given; the mount defaults to KITTI's. ``rgb``: the
    image the teacher saw (reflectance proxy of the return model).
    """
    raw = np.asarray(teacher_output)
    if raw.ndim != 2:
        raise InputError(f"teacher output must be (H, W), got shape {raw.shape}")
    if K is None:
        K = sample_intrinsics(raw.shape, stream(seed, "intrinsics", key), intrinsics)
    depth, sky_mask = teacher_to_metric_depth(raw, kind, stream(seed, "metric", key), metric, sky)
    T = kitti_mount() if T_cam_from_lidar is None else T_cam_from_lidar
    scan = simulate_scan(depth, K, sensor, T, seed, key=key, config=config, rgb=rgb)
    return Simulation(depth=depth, sky=sky_mask, scan=scan)
