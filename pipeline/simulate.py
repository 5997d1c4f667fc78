"""One call per frame: metric depth + K + sensor + mount + seed -> LiDAR scan and sparse depth."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

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
from pipeline.lidar import apply_returns, camera_facing_rays
from pipeline.mesh import GridMesh, TriangleMesh, build_mesh, parse_mesh_method
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


def simulate_scan(
    depth: np.ndarray,
    K: np.ndarray,
    sensor: SensorSpec,
    T_cam_from_lidar: np.ndarray,
    seed: Seed,
    *,
    key: str = "",
    config: SimConfig = SimConfig(),
) -> Scan:
    """(H, W) metric depth (m, 0 = sky) + (3, 3) K + sensor + (4, 4) mount -> ``Scan``.

    Same inputs, seed and key -> bit-identical output. All-sky input -> empty scan.
    """
    depth, K = parse_depth(depth), parse_intrinsics(K)
    if parse_backend(config.backend) == "fast" and parse_mesh_method(config.mesh_method) != "grid":
        raise ValueError(
            "the 'fast' backend needs the grid mesh (a GridMesh); use embree or open3d for poisson"
        )
    T = jitter_mount(parse_transform(T_cam_from_lidar), config.jitter, stream(seed, "mount", key))
    returns_rng = stream(seed, "returns", key)
    mesh = build_mesh(depth, K, config.mesh_method, config.max_rel_jump)
    nearest = _nearest_depth(mesh, depth)
    if nearest is None:
        return _empty_scan(depth.shape, T, K)
    rays = camera_facing_rays(sensor, K, depth.shape, T, min_depth_m=nearest)
    caster = make_caster(config.backend, mesh)
    ranges = apply_returns(
        caster.cast(rays.origin_cam, rays.dirs_cam, sensor.max_range_m), sensor, returns_rng
    )
    hit = np.flatnonzero(np.isfinite(ranges))
    points_cam = rays.origin_cam + ranges[hit, None] * rays.dirs_cam[hit]
    return Scan(
        sparse_depth=points_to_sparse_depth(points_cam, K, depth.shape),
        points_lidar=(ranges[hit, None] * rays.dirs_lidar[hit]).astype(np.float32),
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
) -> Simulation:
    """Teacher output (H, W) (``kind`` = disparity | depth) -> metric depth, sampled K, scan.

    K is sampled from ``intrinsics`` unless given; the mount defaults to KITTI's.
    """
    raw = np.asarray(teacher_output)
    if raw.ndim != 2:
        raise ValueError(f"teacher output must be (H, W), got shape {raw.shape}")
    if K is None:
        K = sample_intrinsics(raw.shape, stream(seed, "intrinsics", key), intrinsics)
    depth, sky_mask = teacher_to_metric_depth(raw, kind, stream(seed, "metric", key), metric, sky)
    T = kitti_mount() if T_cam_from_lidar is None else T_cam_from_lidar
    scan = simulate_scan(depth, K, sensor, T, seed, key=key, config=config)
    return Simulation(depth=depth, sky=sky_mask, scan=scan)
