"""How much a simulated scan looks like the real one: a dense scene from a real KITTI scan, the
simulation of it from the true LiDAR pose, and the measures both are compared on.

The scene: the real scan projected into the 352 x 1216 crop, see-through returns removed (what
the camera sees is the foreground), interpolated over a Delaunay triangulation of the returns
in inverse depth (a triangle whose vertex depths differ by more than ``max_rel_jump`` takes its
nearest vertex instead, so depth discontinuities stay sharp), with nothing above the top-most
return of each column (sky / out of range) and nothing outside the returns' hull.

The measures (:func:`scan_measures`) are computed the same way for both scans from their
points, rings and the camera; every one is defined in :class:`ScanMeasures`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.spatial import Delaunay

from data_schemas.geometry import project_points, transform_points
from pipeline.calibration.kitti_frame import KittiFrame
from pipeline.sensors import SensorSpec
from pipeline.simulate import Scan, SimConfig, simulate_scan

ROW_BANDS = ((88, 176), (176, 264), (264, 352))
"""Row bands of the 352-row crop whose densities are compared."""
COLUMN_BAND_PX = 32
"""Width of the column bands in which scan lines are counted."""
SEE_THROUGH_M = 1.0
"""A return is see-through when it lies this much beyond the median of its 5 x 5 neighbours."""
DEFAULT_SIM = SimConfig()


@dataclass(frozen=True)
class ProjectedScan:
    """A scan in the camera: per pixel the nearest return's depth, ring and elevation."""

    depth: np.ndarray
    """(H, W) float32 m, 0 = no return."""
    ring: np.ndarray
    """(H, W) int32 laser of that return, -1 = none."""
    elevation_deg: np.ndarray
    """(H, W) float32 elevation of the return seen from the LiDAR origin (deg), NaN = none."""


def project_scan(points_lidar: np.ndarray, ring: np.ndarray, T_cam_from_lidar: np.ndarray,
                 K: np.ndarray, hw: tuple[int, int]) -> ProjectedScan:
    """Z-buffer a scan into the camera, keeping the winning return's ring and elevation."""
    points_cam = transform_points(T_cam_from_lidar, points_lidar)
    rows, cols, z, inside = project_points(points_cam, K, hw)
    idx = np.flatnonzero(inside)
    pixel = rows[idx] * hw[1] + cols[idx]
    order = np.lexsort((z[idx], pixel))
    first = order[np.r_[True, pixel[order][1:] != pixel[order][:-1]]]
    winner, at = idx[first], pixel[first]
    depth = np.zeros(hw[0] * hw[1], np.float32)
    rings = np.full(hw[0] * hw[1], -1, np.int32)
    elevation = np.full(hw[0] * hw[1], np.nan, np.float32)
    p = np.asarray(points_lidar, np.float64)[winner]
    depth[at], rings[at] = z[winner], ring[winner]
    elevation[at] = np.degrees(np.arctan2(p[:, 2], np.hypot(p[:, 0], p[:, 1])))
    return ProjectedScan(depth.reshape(hw), rings.reshape(hw), elevation.reshape(hw))


def neighbourhood_median(depth: np.ndarray, radius: int = 2) -> np.ndarray:
    """(N,) median depth of the valid pixels in the (2r+1)^2 window of each valid pixel."""
    rows, cols = np.nonzero(depth > 0)
    padded = np.pad(np.where(depth > 0, depth, np.nan), radius, constant_values=np.nan)
    window = [padded[rows + radius + dr, cols + radius + dc]
              for dr in range(-radius, radius + 1) for dc in range(-radius, radius + 1)]
    return np.asarray(np.nanmedian(np.stack(window), axis=0))


def see_through_mask(depth: np.ndarray) -> np.ndarray:
    """(H, W) bool: returns more than ``SEE_THROUGH_M`` beyond the median of their 5x5 window."""
    mask = np.zeros(depth.shape, bool)
    rows, cols = np.nonzero(depth > 0)
    mask[rows, cols] = depth[rows, cols] > neighbourhood_median(depth) + SEE_THROUGH_M
    return mask


@dataclass(frozen=True)
class ScanMeasures:
    """What the realism benchmark compares between a real and a simulated scan (crop)."""

    density: float
    """Share of pixels with a return."""
    band_density: tuple[float, ...]
    """Density in each of ``ROW_BANDS``."""
    lines_lower_half: float
    """Scan lines (distinct rings) crossing the lower half, median over 32-px column bands."""
    gap_px: tuple[float, float]
    """Vertical gap (px) between consecutive lines near rows 200 and 300 (median over bands)."""
    horizontal_spacing_px: float
    """Mean column step between consecutive returns of one ring (steps under 8 px, so that
    gaps in a line do not count)."""
    lasers_in_image: int
    """Rings with at least 20 returns in the crop."""
    elevation_band_deg: tuple[float, float]
    """Highest and lowest elevation (from the LiDAR origin) of a return in the crop."""
    see_through: float
    """Share of returns > 1 m beyond the median of their 5 x 5 neighbourhood."""


def _band_lines(ring: np.ndarray) -> list[dict[int, float]]:
    """Per 32-px column band: ring -> median row of its returns in the band."""
    bands = []
    for c0 in range(0, ring.shape[1] - COLUMN_BAND_PX + 1, COLUMN_BAND_PX):
        rows, cols = np.nonzero(ring[:, c0 : c0 + COLUMN_BAND_PX] >= 0)
        rings = ring[rows, c0 + cols]
        bands.append({int(r): float(np.median(rows[rings == r])) for r in np.unique(rings)})
    return bands


def _gap_near(lines: dict[int, float], row: float) -> float:
    """Row distance between the consecutive lines whose midpoint is nearest to ``row``."""
    centres = np.sort(np.fromiter(lines.values(), float))
    if len(centres) < 2:
        return math.nan
    mid = (centres[1:] + centres[:-1]) / 2
    i = int(np.argmin(np.abs(mid - row)))
    return float(centres[i + 1] - centres[i]) if abs(mid[i] - row) <= 20 else math.nan


def _median_gap(bands: list[dict[int, float]], row: float) -> float:
    return float(np.nanmedian([_gap_near(lines, row) for lines in bands]))


def _horizontal_spacing(ring: np.ndarray) -> float:
    rows, cols = np.nonzero(ring >= 0)
    order = np.lexsort((cols, ring[rows, cols]))
    r, c = ring[rows, cols][order], cols[order]
    steps = np.diff(c)[r[1:] == r[:-1]]
    return float(np.mean(steps[steps < 8]))


def scan_measures(scan: ProjectedScan) -> ScanMeasures:
    """The measures of one projected scan (crop)."""
    valid = scan.depth > 0
    h = valid.shape[0]
    bands = _band_lines(scan.ring)
    lower = [sum(1 for row in lines.values() if row >= h / 2) for lines in bands]
    rings, counts = np.unique(scan.ring[valid], return_counts=True)
    elevation = scan.elevation_deg[valid]
    return ScanMeasures(
        density=float(valid.mean()),
        band_density=tuple(float(valid[a:b].mean()) for a, b in ROW_BANDS),
        lines_lower_half=float(np.median(lower)),
        gap_px=(_median_gap(bands, 200.0), _median_gap(bands, 300.0)),
        horizontal_spacing_px=_horizontal_spacing(scan.ring),
        lasers_in_image=int(np.sum(counts >= 20)),
        elevation_band_deg=(float(np.max(elevation)), float(np.min(elevation))),
        see_through=float(see_through_mask(scan.depth)[valid].mean()),
    )


def depth_agreement(real: np.ndarray, sim: np.ndarray) -> tuple[float, float, int]:
    """(median |sim - real| m, share within 5 % + 0.1 m, pixels) where both have a return and
    neither is see-through."""
    both = (real > 0) & (sim > 0) & ~see_through_mask(real) & ~see_through_mask(sim)
    diff = np.abs(sim[both] - real[both])
    within = diff <= 0.05 * real[both] + 0.1
    return float(np.median(diff)), float(within.mean()), int(both.sum())


# -- the dense scene --------------------------------------------------------------------------
def _interpolate_edge_preserving(rows: np.ndarray, cols: np.ndarray, depth: np.ndarray,
                                 hw: tuple[int, int], max_rel_jump: float) -> np.ndarray:
    """Depth at every pixel from scattered samples: linear in inverse depth over a Delaunay
    triangulation, nearest vertex where a triangle spans a depth jump; 0 outside the hull."""
    tri = Delaunay(np.stack([cols, rows], axis=1).astype(np.float64))
    grid_v, grid_u = np.mgrid[0 : hw[0], 0 : hw[1]]
    pixels = np.stack([grid_u.ravel(), grid_v.ravel()], axis=1).astype(np.float64)
    simplex = tri.find_simplex(pixels)
    inside = simplex >= 0
    vertices = tri.simplices[simplex[inside]]
    affine = tri.transform[simplex[inside]]
    bary2 = np.einsum("nij,nj->ni", affine[:, :2], pixels[inside] - affine[:, 2])
    weights = np.concatenate([bary2, 1.0 - bary2.sum(axis=1, keepdims=True)], axis=1)
    z = depth[vertices]
    linear = 1.0 / np.einsum("ni,ni->n", weights, 1.0 / z)
    nearest = z[np.arange(len(z)), np.argmax(weights, axis=1)]
    jump = z.max(axis=1) > z.min(axis=1) * (1.0 + max_rel_jump)
    out = np.zeros(hw[0] * hw[1], np.float32)
    out[inside] = np.where(jump, nearest, linear)
    return out.reshape(hw)


def _top_rows(valid: np.ndarray, radius: int = 4) -> np.ndarray:
    """(W,) top-most row with a return in each column's +-radius neighbourhood (H if none)."""
    h, w = valid.shape
    top = np.where(valid.any(axis=0), np.argmax(valid, axis=0), h)
    padded = np.pad(top, radius, constant_values=h)
    return np.asarray(np.min(np.stack([padded[i : i + w] for i in range(2 * radius + 1)]), axis=0))


def scene_from_scan(real: ProjectedScan, max_rel_jump: float = 0.1) -> np.ndarray:
    """(H, W) float32 dense depth (m, 0 = nothing) rebuilt from a real projected scan."""
    keep = (real.depth > 0) & ~see_through_mask(real.depth)
    rows, cols = np.nonzero(keep)
    dense = _interpolate_edge_preserving(rows, cols, real.depth[rows, cols].astype(np.float64),
                                         real.depth.shape, max_rel_jump)
    top = _top_rows(keep)
    dense[np.arange(dense.shape[0])[:, None] < top[None, :]] = 0.0
    return dense


# -- one frame, real vs simulated ------------------------------------------------------------
@dataclass(frozen=True)
class FrameComparison:
    """A real frame, the scene rebuilt from it, and its simulation from the true pose."""

    frame: KittiFrame
    scene_depth: np.ndarray
    real: ProjectedScan
    sim: ProjectedScan
    scan: Scan


def real_projection(frame: KittiFrame) -> ProjectedScan:
    return project_scan(frame.points_lidar, frame.ring, frame.T_cam_from_lidar, frame.K, frame.hw)


def compare_frame(frame: KittiFrame, sensor: SensorSpec, seed: int = 0,
                  config: SimConfig = DEFAULT_SIM) -> FrameComparison:
    """Rebuild the scene from ``frame``'s scan, simulate ``sensor`` from its true pose."""
    real = real_projection(frame)
    scene = scene_from_scan(real, config.max_rel_jump)
    scan = simulate_scan(scene, frame.K, sensor, frame.T_cam_from_lidar, seed, key=frame.name,
                         config=config, rgb=frame.rgb)
    sim = project_scan(scan.points_lidar, scan.ring, frame.T_cam_from_lidar, frame.K, frame.hw)
    return FrameComparison(frame, scene, real, sim, scan)
