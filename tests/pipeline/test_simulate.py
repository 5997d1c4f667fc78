import numpy as np
import pytest

from pipeline.camera import IntrinsicsSampler
from pipeline.pose import MountJitter
from pipeline.sensors import load_sensor
from pipeline.simulate import SimConfig, simulate, simulate_scan

from .conftest import small_K


@pytest.fixture(scope="module")
def scan64(kitti_scene, hdl64e, mount):
    return simulate_scan(kitti_scene.depth, kitti_scene.K, hdl64e, mount, seed=0)


def test_scan_shapes_dtypes_and_frames(scan64, kitti_scene, mount):
    s = scan64
    assert s.sparse_depth.shape == kitti_scene.depth.shape and s.sparse_depth.dtype == np.float32
    assert np.all(np.isfinite(s.sparse_depth)) and s.sparse_depth.min() == 0.0
    n = len(s.points_lidar)
    assert s.points_lidar.shape == (n, 3) and s.points_lidar.dtype == np.float32
    assert s.ring.shape == s.azimuth_index.shape == (n,) and n <= s.num_rays
    assert np.array_equal(s.T_cam_from_lidar, mount)
    assert np.median(s.points_lidar[:, 0]) > 5  # LiDAR x points forward
    assert np.median(s.points_lidar[:, 2]) < 0  # most returns are on the ground, below the LiDAR


def test_kitti_like_density(scan64):
    assert 0.03 <= scan64.density <= 0.08  # real KITTI velodyne_raw crop: ~4-6 %


def test_sparse_depth_agrees_with_the_scene(scan64, kitti_scene):
    valid = scan64.sparse_depth > 0
    err = np.abs(scan64.sparse_depth[valid] - kitti_scene.depth[valid])
    assert np.mean(err < np.maximum(0.1, 0.02 * kitti_scene.depth[valid])) > 0.95


def test_same_seed_identical_different_seed_differs(kitti_scene, hdl64e, mount):
    a = simulate_scan(kitti_scene.depth, kitti_scene.K, hdl64e, mount, seed=11, key="x")
    b = simulate_scan(kitti_scene.depth, kitti_scene.K, hdl64e, mount, seed=11, key="x")
    c = simulate_scan(kitti_scene.depth, kitti_scene.K, hdl64e, mount, seed=12, key="x")
    assert np.array_equal(a.sparse_depth, b.sparse_depth) and np.array_equal(
        a.points_lidar, b.points_lidar
    )
    assert not np.array_equal(a.azimuth_index, c.azimuth_index) or not np.array_equal(
        a.ring, c.ring
    )
    assert not np.array_equal(a.sparse_depth > 0, c.sparse_depth > 0)  # drop pattern changes


@pytest.mark.parametrize("beams, ratio", [(32, 1 / 2), (16, 1 / 4), (8, 1 / 8)])
def test_beam_thinning_scales_density(kitti_scene, mount, scan64, beams, ratio):
    thin = simulate_scan(
        kitti_scene.depth, kitti_scene.K, load_sensor("hdl64e", beams=beams), mount, seed=0
    )
    assert thin.density / scan64.density == pytest.approx(ratio, rel=0.2)
    assert len(np.unique(thin.ring)) <= beams


def test_mount_jitter_is_seeded(kitti_scene, hdl64e, mount):
    cfg = SimConfig(jitter=MountJitter(translation_std_m=0.05, rotation_std_deg=0.5))
    a = simulate_scan(kitti_scene.depth, kitti_scene.K, hdl64e, mount, seed=3, config=cfg)
    b = simulate_scan(kitti_scene.depth, kitti_scene.K, hdl64e, mount, seed=3, config=cfg)
    c = simulate_scan(kitti_scene.depth, kitti_scene.K, hdl64e, mount, seed=4, config=cfg)
    assert np.array_equal(a.T_cam_from_lidar, b.T_cam_from_lidar)
    assert not np.allclose(a.T_cam_from_lidar, mount) and not np.allclose(
        a.T_cam_from_lidar, c.T_cam_from_lidar
    )


def test_fast_and_embree_give_the_same_scan():
    depth = np.full((100, 300), 9.0, np.float32)
    depth[:30] = 0.0  # sky
    depth[40:80, 100:160] = 5.0  # a box
    K, sensor = small_K((100, 300)), load_sensor("hdl64e", returns=None)
    from pipeline.pose import kitti_mount

    a = simulate_scan(depth, K, sensor, kitti_mount(), 0, config=SimConfig(backend="fast"))
    b = simulate_scan(depth, K, sensor, kitti_mount(), 0, config=SimConfig(backend="embree"))
    assert len(a.points_lidar) == len(b.points_lidar) > 500
    assert np.allclose(a.points_lidar, b.points_lidar, atol=1e-3)


def test_all_sky_gives_an_empty_scan(hdl64e, mount):
    scan = simulate_scan(np.zeros((50, 80), np.float32), small_K((50, 80)), hdl64e, mount, 0)
    assert len(scan.points_lidar) == 0 and not scan.sparse_depth.any()


@pytest.mark.parametrize(
    "depth, K, match",
    [
        (np.full((20, 30), np.nan, np.float32), small_K((20, 30)), "NaN"),
        (-np.ones((20, 30), np.float32), small_K((20, 30)), "negative"),
        (np.zeros((0, 30), np.float32), small_K((20, 30)), "2-D"),
        (np.ones((20, 30), np.float32), np.zeros((3, 3)), "fx"),
    ],
)
def test_bad_inputs_raise_clear_errors(hdl64e, mount, depth, K, match):
    with pytest.raises(ValueError, match=match):
        simulate_scan(depth, K, hdl64e, mount, 0)


def test_bad_backend_and_fast_needs_grid_mesh(kitti_scene, hdl64e, mount):
    with pytest.raises(ValueError, match="allowed"):
        simulate_scan(
            kitti_scene.depth, kitti_scene.K, hdl64e, mount, 0, config=SimConfig(backend="gpu")
        )
    depth = np.full((40, 60), 8.0, np.float32)
    with pytest.raises(ValueError, match="GridMesh"):
        simulate_scan(
            depth, small_K((40, 60)), hdl64e, mount, 0, config=SimConfig(mesh_method="poisson")
        )


def test_simulate_from_relative_disparity(kitti_scene, hdl64e):
    disparity = (
        np.where(kitti_scene.depth > 0, 1.0 / np.maximum(kitti_scene.depth, 1e-6), 0.0) * 3.0 + 0.0
    )
    out = simulate(
        disparity.astype(np.float32),
        "disparity",
        hdl64e,
        seed=5,
        key="frame_0005",
        intrinsics=IntrinsicsSampler(hfov_deg=(70.0, 90.0)),
    )
    again = simulate(
        disparity.astype(np.float32),
        "disparity",
        hdl64e,
        seed=5,
        key="frame_0005",
        intrinsics=IntrinsicsSampler(hfov_deg=(70.0, 90.0)),
    )
    assert np.array_equal(out.scan.sparse_depth, again.scan.sparse_depth) and np.array_equal(
        out.scan.K, again.scan.K
    )
    assert np.array_equal(out.sky, kitti_scene.depth == 0)
    assert out.depth.dtype == np.float32 and out.depth[out.sky].max() == 0
    assert 0.02 < out.scan.density < 0.08
    valid = out.scan.sparse_depth > 0
    assert (
        np.mean(
            np.abs(out.scan.sparse_depth[valid] - out.depth[valid]) < 0.05 * out.depth[valid] + 0.1
        )
        > 0.95
    )


def _box_before_wall(hw=(120, 360)):
    from pipeline.synthetic import Box, render_boxes

    K = small_K(hw, 60.0)
    boxes = (Box((-30.0, -10.0, 20.0), (30.0, 10.0, 21.0)), Box((-1.0, -1.0, 8.0), (1.0, 1.6, 9.0)))
    return render_boxes(hw, K, boxes)[0], K


def _hidden(scan, depth):
    """Returns > 0.5 m behind everything the camera sees within +-1 pixel (a return through
    the one-pixel gap at a depth edge may round to the foreground's pixel)."""
    padded = np.pad(depth, 1, mode="edge")
    farthest = np.max([padded[1 + dr : 1 + dr + depth.shape[0], 1 + dc : 1 + dc + depth.shape[1]]
                       for dr in (-1, 0, 1) for dc in (-1, 0, 1)], axis=0)
    valid = scan.sparse_depth > 0
    return int(np.sum(scan.sparse_depth[valid] > farthest[valid] + 0.5))


@pytest.mark.parametrize("backend", ["fast", "embree"])
def test_see_through_returns_come_from_the_background_layer(mount, backend):
    from pipeline.pose import KITTI_R_CAM_FROM_LIDAR, make_transform

    depth, K = _box_before_wall()
    sensor = load_sensor("hdl64e", azimuth_step_deg=0.17, returns=None)
    mount = make_transform(KITTI_R_CAM_FROM_LIDAR, np.array([0.6, -0.4, -0.27]))
    with_layer = simulate_scan(depth, K, sensor, mount, 0, config=SimConfig(backend=backend))
    without = simulate_scan(depth, K, sensor, mount, 0,
                            config=SimConfig(backend=backend, see_through=False))
    assert _hidden(with_layer, depth) >= 20 and _hidden(without, depth) == 0
    from pipeline.pose import camera_centred_mount

    centred = load_sensor("hdl64e-uniform", azimuth_step_deg=0.17, drop_prob=0.0,
                          drop_prob_per_100m=0.0)
    flat = simulate_scan(depth, K, centred, camera_centred_mount(), 0,
                         config=SimConfig(backend=backend))
    assert _hidden(flat, depth) == 0


def test_physical_returns_follow_the_image_and_are_seeded(kitti_scene, hdl64e, mount):
    """Black stripes (darker than their surroundings) lose far returns; off = all kept."""
    depth, K = kitti_scene.depth, kitti_scene.K
    striped = np.full_like(kitti_scene.rgb, 150)
    stripe = (np.arange(depth.shape[1]) % 32) < 8
    striped[:, stripe] = 5
    off = simulate_scan(depth, K, hdl64e, mount, 1, config=SimConfig(physical_returns=False))
    on = simulate_scan(depth, K, hdl64e, mount, 1, rgb=striped)
    assert off.density > on.density
    again = simulate_scan(depth, K, hdl64e, mount, 1, rgb=striped)
    assert np.array_equal(again.sparse_depth, on.sparse_depth)
    far = (depth > 30) & (depth < 80)
    on_stripe, off_stripe = far & stripe[None, :], far & ~stripe[None, :]
    kept_dark = (on.sparse_depth > 0)[on_stripe].sum() / (off.sparse_depth > 0)[on_stripe].sum()
    kept_grey = (on.sparse_depth > 0)[off_stripe].sum() / (off.sparse_depth > 0)[off_stripe].sum()
    assert kept_dark < 0.5 * kept_grey and kept_grey > 0.8


def test_azimuth_jitter_is_seeded(kitti_scene, hdl64e, mount):
    cfg = SimConfig(azimuth_jitter_deg=0.05)
    a = simulate_scan(kitti_scene.depth, kitti_scene.K, hdl64e, mount, 2, config=cfg)
    b = simulate_scan(kitti_scene.depth, kitti_scene.K, hdl64e, mount, 2, config=cfg)
    c = simulate_scan(kitti_scene.depth, kitti_scene.K, hdl64e, mount, 3, config=cfg)
    assert np.array_equal(a.points_lidar, b.points_lidar)
    assert not np.array_equal(a.sparse_depth > 0, c.sparse_depth > 0)


def test_bad_rgb_and_config(kitti_scene, hdl64e, mount):
    with pytest.raises(ValueError, match="rgb"):
        simulate_scan(kitti_scene.depth, kitti_scene.K, hdl64e, mount, 0,
                      rgb=np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(ValueError, match="background_band_px"):
        SimConfig(background_band_px=-1)
