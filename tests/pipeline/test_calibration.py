"""The real KITTI sample scan: rings, the derived laser table, the realism measures."""

import math

import numpy as np
import pytest

from pipeline.calibration.kitti_frame import KittiFrame, raw_frame, rings_from_scan_order
from pipeline.calibration.laser_table import fit_laser_table
from pipeline.calibration.realism import (
    ProjectedScan,
    compare_frame,
    depth_agreement,
    project_scan,
    scan_measures,
    scene_from_scan,
    see_through_mask,
)
from pipeline.sensors import load_sensor


@pytest.fixture(scope="module")
def frame(kitti_sample) -> KittiFrame:
    return raw_frame(kitti_sample)


def _line_residual(points: np.ndarray) -> float:
    """RMS (m) of z about the best line z = a * rho + b (one laser: its cone with offset)."""
    rho = np.hypot(points[:, 0], points[:, 1])
    A = np.stack([rho, np.ones_like(rho)], 1)
    coef, *_ = np.linalg.lstsq(A, points[:, 2], rcond=None)
    return float(np.sqrt(np.mean((points[:, 2] - A @ coef) ** 2)))


def test_rings_from_scan_order_are_the_64_lasers(frame):
    assert frame.ring.max() == 63 and np.all(np.diff(frame.ring) >= 0)
    residuals = [_line_residual(frame.points_lidar[frame.ring == r]) for r in range(64)]
    assert max(residuals) < 0.01  # every ring is one laser
    # splitting at the azimuth wrap instead glues the back half of one laser to the front
    # half of the next: 65 segments, some far off any single laser's line
    azimuth = np.arctan2(frame.points_lidar[:, 1], frame.points_lidar[:, 0])
    wrap = np.concatenate([[0], np.cumsum(np.abs(np.diff(azimuth)) > np.pi)])
    assert wrap.max() == 64
    assert max(_line_residual(frame.points_lidar[wrap == r]) for r in range(65)) > 0.05


def test_rings_from_scan_order_on_a_toy_scan():
    az = np.r_[np.linspace(0, 3, 4), np.linspace(-3, -0.1, 4), np.linspace(0.05, 3, 4)]
    points = np.stack([np.cos(az), np.sin(az), np.zeros_like(az)], 1)
    assert rings_from_scan_order(points).tolist() == [0] * 8 + [1] * 4


def test_laser_table_reproduces_every_ring_elevation_within_0_1_deg(frame):
    """Elevation of each real return seen from the LiDAR origin vs the preset's emitter model
    (transcribed here: z = rho' tan(el) + v / cos(el), rho'^2 = rho^2 - h^2), ring by ring."""
    spec = load_sensor("hdl64e")
    worst = []
    for ring in range(64):
        p = frame.points_lidar[frame.ring == ring]
        el, v, h = (spec.elevations_rad[ring], spec.vertical_offsets_m[ring],
                    spec.horizontal_offsets_m[ring])
        rho = np.sqrt(np.hypot(p[:, 0], p[:, 1]) ** 2 - h**2)
        predicted = np.degrees(np.arctan2(rho * math.tan(el) + v / math.cos(el), rho))
        observed = np.degrees(np.arctan2(p[:, 2], rho))
        worst.append(np.max(np.abs(predicted - observed)))
    assert max(worst) < 0.1
    # without the emitter offsets the elevations would be off by up to several degrees
    p = frame.points_lidar[frame.ring == 0]
    observed = np.degrees(np.arctan2(p[:, 2], np.hypot(p[:, 0], p[:, 1])))
    assert np.max(np.abs(observed - math.degrees(spec.elevations_rad[0]))) > 0.3


def test_the_preset_is_what_the_derivation_script_fits(frame):
    table = fit_laser_table(frame)
    spec = load_sensor("hdl64e")
    fitted = np.array([[f.elevation_deg, f.azimuth_offset_deg, f.vertical_offset_m,
                        f.horizontal_offset_m] for f in table.lasers])
    assert np.allclose(fitted[:, 0], np.degrees(spec.elevations_rad), atol=1e-4)
    assert np.allclose(fitted[:, 1], np.degrees(spec.azimuth_offsets_rad), atol=1e-5)
    assert np.allclose(fitted[:, 2], spec.vertical_offsets_m, atol=1e-4)
    assert np.allclose(fitted[:, 3], spec.horizontal_offsets_m, atol=1e-4)
    assert math.degrees(spec.azimuth_step_rad) == pytest.approx(table.azimuth_step_deg, abs=1e-5)
    assert table.lattice_deg == pytest.approx(0.09)


def _lines_scan(rows=range(190, 352, 6), every=3, hw=(352, 1216)) -> ProjectedScan:
    """Horizontal scan lines (one ring each) at known rows, a return every ``every`` columns."""
    depth = np.zeros(hw, np.float32)
    ring = np.full(hw, -1, np.int32)
    elevation = np.full(hw, np.nan, np.float32)
    for i, r in enumerate(rows):
        depth[r, ::every], ring[r, ::every], elevation[r, ::every] = 10.0, i, -float(i)
    return ProjectedScan(depth, ring, elevation)


def test_scan_measures_on_known_lines():
    scan = _lines_scan()
    m = scan_measures(scan)
    n_lines = len(range(190, 352, 6))
    assert m.density == pytest.approx(n_lines * 406 / (352 * 1216))
    assert m.lines_lower_half == n_lines
    assert m.gap_px == (6.0, 6.0)
    assert m.horizontal_spacing_px == 3.0
    assert m.lasers_in_image == n_lines
    assert m.elevation_band_deg == (0.0, -(n_lines - 1))
    assert m.see_through == 0.0
    assert m.band_density[0] == 0.0 and m.band_density[2] > 0


def test_see_through_mask_flags_returns_behind_their_neighbours():
    scan = _lines_scan(rows=range(100, 120, 2), every=1)
    depth = scan.depth.copy()
    depth[110, 500:503] = 30.0  # three returns far behind their neighbourhood
    mask = see_through_mask(depth)
    assert mask.sum() == 3 and mask[110, 500:503].all()


def test_scene_from_scan_keeps_the_real_returns(frame):
    real = project_scan(frame.points_lidar, frame.ring, frame.T_cam_from_lidar, frame.K, frame.hw)
    scene = scene_from_scan(real)
    keep = (real.depth > 0) & ~see_through_mask(real.depth)
    assert np.allclose(scene[keep], real.depth[keep], rtol=1e-5)
    top = np.argmax(real.depth > 0, axis=0)
    column = 600
    assert not scene[: max(top[column - 4 : column + 5].min(), 0), column].any()  # sky stays
    assert 0.5 < (scene > 0).mean() < 0.9


def test_simulated_sample_frame_looks_like_the_real_one(frame):
    """Realism smoke test on the real frame (the benchmark prints the full table)."""
    comparison = compare_frame(frame, load_sensor("hdl64e"))
    real, sim = scan_measures(comparison.real), scan_measures(comparison.sim)
    assert 0.85 < sim.density / real.density < 1.15
    assert abs(sim.lines_lower_half - real.lines_lower_half) <= 2
    assert abs(sim.lasers_in_image - real.lasers_in_image) <= 2
    assert abs(sim.elevation_band_deg[1] - real.elevation_band_deg[1]) < 0.2
    assert sim.see_through >= 0.6 * real.see_through
    median_error, within, pixels = depth_agreement(comparison.real.depth, comparison.sim.depth)
    assert pixels > 3000 and median_error < 0.1 and within > 0.95
