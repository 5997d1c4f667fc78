"""The one geometry module both rooms use: projection, z-buffer, unprojection, parsing."""

import numpy as np
import pytest

from data_schemas.errors import ConfigError, InputError
from data_schemas.geometry import (
    MIN_DEPTH_M,
    lidar_to_sparse_depth,
    parse_depth,
    parse_depth_space,
    parse_intrinsics,
    parse_transform,
    points_to_sparse_depth,
    project_points,
    transform_points,
    unproject,
    zbuffer,
)
from pipeline.pose import make_transform


def test_z_buffer_keeps_nearest_point_per_pixel():
    K = np.array([[100.0, 0, 5], [0, 100.0, 5], [0, 0, 1]])
    pts = np.array(
        [[0, 0, 10.0], [0, 0, 4.0], [0, 0, 7.0], [0.5, 0.5, 10.0], [0, 0, -3.0], [50, 0, 10]]
    )
    d = points_to_sparse_depth(pts, K, (11, 11))
    assert d.dtype == np.float32 and d[5, 5] == 4.0
    assert d[10, 10] == 10.0  # (0.5, 0.5, 10) -> u = v = 10
    assert np.count_nonzero(d) == 2  # behind-camera and off-image points dropped
    assert np.all(np.isfinite(d))


def test_transform_points_checks_shape():
    with pytest.raises(InputError, match=r"\(N, 3\)"):
        transform_points(np.eye(4), np.zeros((3, 2)))


def test_transform_points_ignores_extra_columns_like_reflectance():
    T = make_transform(np.eye(3), np.array([1.0, 2.0, 3.0]))
    out = transform_points(T, np.array([[0.0, 0.0, 0.0, 0.7]]))
    np.testing.assert_array_equal(out, [[1.0, 2.0, 3.0]])


def test_near_plane_is_stated_and_shared():
    """Points at camera z <= 0.1 m are dropped; both former users (pipeline: z > 1e-6,
    train/kitti: z > 0.1 m) now use this one near plane."""
    K = np.array([[10.0, 0, 5], [0, 10.0, 5], [0, 0, 1]])
    pts = np.array([[0, 0, 0.05], [0, 0, 0.1], [0, 0, 0.1001], [0, 0, 2.0]])
    *_, inside = project_points(pts, K, (11, 11))
    assert MIN_DEPTH_M == 0.1
    assert inside.tolist() == [False, False, True, True]
    d = points_to_sparse_depth(pts, K, (11, 11))
    assert d[5, 5] == np.float32(0.1001)  # the nearest point beyond the near plane wins
    d_zero_near = points_to_sparse_depth(pts, K, (11, 11), min_depth_m=0.0)
    assert d_zero_near[5, 5] == np.float32(0.05)


def test_projection_rounds_to_the_nearest_pixel_centre_with_skew():
    K = np.array([[100.0, 20.0, 3.0], [0.0, 50.0, 2.0], [0.0, 0.0, 1.0]])
    pts = np.array([[0.1, 0.04, 2.0]])  # u = (10 + 0.8)/2 + 3 = 8.4, v = 2/2 + 2 = 3.0
    rows, cols, z, inside = project_points(pts, K, (6, 12))
    assert inside[0] and rows[0] == 3 and cols[0] == 8 and z[0] == 2.0


def test_zbuffer_equals_a_brute_force_loop():
    rng = np.random.default_rng(3)
    rows, cols = rng.integers(0, 7, 300), rng.integers(0, 9, 300)
    z = rng.uniform(0.5, 50.0, 300)
    expected = np.zeros((7, 9), np.float32)
    for r, c, d in zip(rows, cols, z, strict=True):
        if expected[r, c] == 0 or d < expected[r, c]:
            expected[r, c] = d
    np.testing.assert_array_equal(zbuffer(rows, cols, z, (7, 9)), expected)


def test_unproject_then_project_returns_every_pixel():
    K = np.array([[40.0, 0.0, 10.2], [0.0, 41.0, 6.7], [0.0, 0.0, 1.0]])
    depth = np.random.default_rng(0).uniform(1.0, 30.0, (13, 21)).astype(np.float32)
    pts = unproject(depth, K).reshape(-1, 3)
    np.testing.assert_array_equal(points_to_sparse_depth(pts, K, depth.shape), depth)


def test_parsers_refuse_bad_input_with_user_errors():
    with pytest.raises(InputError, match="proper rotation"):
        parse_transform(np.diag([1.0, 1.0, -1.0, 1.0]))
    with pytest.raises(ConfigError, match="disparity, depth"):
        parse_depth_space("inverse")
    assert parse_depth_space("depth") == "depth"


def _calib(path):
    out = {}
    for line in path.read_text().splitlines():
        key, _, val = line.partition(":")
        try:
            out[key] = np.array([float(x) for x in val.split()])
        except ValueError:
            pass
    return out


def test_real_kitti_scan_projects_onto_velodyne_raw(kitti_sample):
    """Project the raw HDL-64E scan with the real calibration; compare with KITTI-DC velodyne_raw.

    The PNG is motion-compensated and the .bin is not, so pixels do not coincide one to one:
    we check that valid counts are similar and that co-located pixels agree.
    """
    import cv2

    root = kitti_sample / "raw" / "2011_09_26"
    drive = root / "2011_09_26_drive_0001_sync"
    v2c, c2c = _calib(root / "calib_velo_to_cam.txt"), _calib(root / "calib_cam_to_cam.txt")
    P = c2c["P_rect_02"].reshape(3, 4)
    K = P[:, :3]
    T = (
        make_transform(np.eye(3), np.linalg.solve(K, P[:, 3]))
        @ make_transform(c2c["R_rect_00"].reshape(3, 3), np.zeros(3))
        @ make_transform(v2c["R"].reshape(3, 3), v2c["T"])
    )
    points = np.fromfile(drive / "velodyne_points/data/0000000005.bin", np.float32).reshape(-1, 4)[
        :, :3
    ]
    png = cv2.imread(
        str(drive / "proj_depth/velodyne_raw/image_02/0000000005.png"), cv2.IMREAD_UNCHANGED
    )
    real = png.astype(np.float32) / 256.0
    ours = lidar_to_sparse_depth(points, T, K, real.shape)
    n_ours, n_real = np.count_nonzero(ours), np.count_nonzero(real)
    assert 0.03 < n_real / real.size < 0.05
    assert abs(n_ours - n_real) / n_real < 0.05
    both = (ours > 0) & (real > 0)
    assert both.sum() > 0.2 * n_real
    assert np.mean(np.abs(ours[both] - real[both]) < 0.5) > 0.95
    assert np.median(np.abs(ours[both] - real[both])) < 0.1


@pytest.mark.parametrize(
    "K, match",
    [
        (np.eye(2), "3, 3"),
        (np.diag([0.0, 1.0, 1.0]), "fx"),
        (np.array([[1.0, 0, 0], [0, 1, 0], [0, 0, 2]]), "last row"),
        (np.full((3, 3), np.inf), "finite"),
    ],
)
def test_degenerate_intrinsics_rejected(K, match):
    with pytest.raises(ValueError, match=match):
        parse_intrinsics(K)


@pytest.mark.parametrize(
    "depth, match",
    [
        (np.full((4, 4), np.nan), "NaN"),
        (np.full((4, 4), np.inf), "NaN or inf"),
        (-np.ones((4, 4)), "negative"),
        (np.zeros((0, 5)), "2-D"),
        (np.ones(5), "2-D"),
    ],
)
def test_bad_depth_rejected(depth, match):
    with pytest.raises(ValueError, match=match):
        parse_depth(depth)


def test_unproject_is_pinhole_inverse():
    K = np.array([[100.0, 0, 20], [0, 100.0, 10], [0, 0, 1]])
    pts = unproject(np.full((21, 41), 5.0, np.float32), K)
    assert pts.shape == (21, 41, 3) and pts.dtype == np.float32
    assert np.allclose(pts[10, 20], [0, 0, 5])
    assert np.allclose(pts[0, 40], [(40 - 20) / 100 * 5, (0 - 10) / 100 * 5, 5])
