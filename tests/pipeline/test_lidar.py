import math

import numpy as np
import pytest

from data_schemas.geometry import project_points
from pipeline.camera import KITTI_K_1216x352
from pipeline.lidar import apply_returns, camera_facing_rays
from pipeline.pose import kitti_mount
from pipeline.sensors import load_sensor

HW = (352, 1216)


def test_only_rays_that_can_reach_the_image_are_cast(hdl64e):
    rays = camera_facing_rays(hdl64e, KITTI_K_1216x352, HW, kitti_mount())
    assert 0 < len(rays) < hdl64e.beams * hdl64e.num_azimuths / 3
    assert np.allclose(np.linalg.norm(rays.dirs_cam, axis=1), 1.0)
    # the far end of every selected ray (or its vanishing point) projects into / next to the image
    far = rays.origin_cam + 100.0 * rays.dirs_cam
    *_, inside = project_points(far, KITTI_K_1216x352, HW)
    assert inside.mean() > 0.95
    # and every firing of the revolution that lands in the image at 20 m is kept
    all_az = np.arange(hdl64e.num_azimuths) * hdl64e.azimuth_step_rad
    el = np.asarray(hdl64e.elevations_rad)
    d = np.stack(
        np.broadcast_arrays(
            np.outer(np.cos(el), np.cos(all_az)),
            np.outer(np.cos(el), np.sin(all_az)),
            np.sin(el)[:, None],
        ),
        -1,
    ).reshape(-1, 3)
    T = kitti_mount()
    pts = (20.0 * d) @ T[:3, :3].T + T[:3, 3]
    u = KITTI_K_1216x352[0, 0] * pts[:, 0] / pts[:, 2] + KITTI_K_1216x352[0, 2]
    v = KITTI_K_1216x352[1, 1] * pts[:, 1] / pts[:, 2] + KITTI_K_1216x352[1, 2]
    lands = (pts[:, 2] > 0) & (u >= 0) & (u <= HW[1] - 1) & (v >= 0) & (v <= HW[0] - 1)
    selected = set(zip(rays.ring.tolist(), rays.azimuth_index.tolist(), strict=True))
    ring, az = np.divmod(np.flatnonzero(lands), hdl64e.num_azimuths)
    assert set(zip(ring.tolist(), az.tolist(), strict=True)) <= selected


def test_ring_and_azimuth_indices_match_directions(hdl64e):
    rays = camera_facing_rays(hdl64e, KITTI_K_1216x352, HW, kitti_mount())
    el = np.arcsin(rays.dirs_lidar[:, 2])
    assert np.allclose(el, np.asarray(hdl64e.elevations_rad)[rays.ring])
    az = np.arctan2(rays.dirs_lidar[:, 1], rays.dirs_lidar[:, 0])
    expected = rays.azimuth_index * hdl64e.azimuth_step_rad
    assert np.allclose(np.angle(np.exp(1j * (az - expected))), 0.0, atol=1e-9)
    assert math.degrees(np.ptp(np.unwrap(az))) == pytest.approx(81, abs=6)  # ~ camera HFOV


def test_returns_drop_noise_and_range_limits():
    spec = load_sensor("hdl64e", drop_prob=0.1, drop_prob_per_100m=0.2, range_noise_std_m=0.05)
    t = np.full(200_000, 50.0)
    t[:10] = np.inf
    t[10:20] = 0.5  # closer than min range
    t[20:30] = 130.0  # beyond max range
    r = apply_returns(t, spec, np.random.default_rng(0))
    assert np.all(np.isinf(r[:30]))
    kept = np.isfinite(r)
    assert kept[30:].mean() == pytest.approx(1 - (0.1 + 0.2 * 0.5), abs=0.005)
    assert np.std(r[kept] - 50.0) == pytest.approx(0.05, rel=0.02)
    assert np.array_equal(r, apply_returns(t, spec, np.random.default_rng(0)))
    assert not np.array_equal(
        np.isfinite(r), np.isfinite(apply_returns(t, spec, np.random.default_rng(1)))
    )
