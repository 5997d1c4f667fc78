import numpy as np
import pytest

from pipeline.pose import make_transform
from pipeline.projection import lidar_to_sparse_depth, sparse_depth, transform_points


def test_z_buffer_keeps_nearest_point_per_pixel():
    K = np.array([[100.0, 0, 5], [0, 100.0, 5], [0, 0, 1]])
    pts = np.array(
        [[0, 0, 10.0], [0, 0, 4.0], [0, 0, 7.0], [0.5, 0.5, 10.0], [0, 0, -3.0], [50, 0, 10]]
    )
    d = sparse_depth(pts, K, (11, 11))
    assert d.dtype == np.float32 and d[5, 5] == 4.0
    assert d[10, 10] == 10.0  # (0.5, 0.5, 10) -> u = v = 10
    assert np.count_nonzero(d) == 2  # behind-camera and off-image points dropped
    assert np.all(np.isfinite(d))


def test_transform_points_checks_shape():
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        transform_points(np.eye(4), np.zeros((3, 4)))


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
