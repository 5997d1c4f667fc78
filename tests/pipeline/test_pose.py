import numpy as np
import pytest

from pipeline.pose import (
    MountJitter,
    axis_angle_to_matrix,
    jitter_mount,
    kitti_mount,
    parse_transform,
)


def test_kitti_mount_places_lidar_behind_and_above_camera():
    T = kitti_mount()
    lidar_in_cam = T[:3, 3]
    assert lidar_in_cam[2] == pytest.approx(-0.2717806)  # behind (z forward)
    assert lidar_in_cam[1] == pytest.approx(-0.07631618)  # above (y down)
    forward = T[:3, :3] @ np.array([1.0, 0.0, 0.0])
    up = T[:3, :3] @ np.array([0.0, 0.0, 1.0])
    assert forward[2] > 0.99 and up[1] < -0.99  # LiDAR x -> camera z, LiDAR z -> camera -y


def test_zero_jitter_is_identity_and_jitter_is_seeded():
    T = kitti_mount()
    assert np.allclose(jitter_mount(T, MountJitter(), np.random.default_rng(0)), T)
    j = MountJitter(translation_std_m=0.05, rotation_std_deg=1.0)
    a = jitter_mount(T, j, np.random.default_rng(3))
    assert np.array_equal(a, jitter_mount(T, j, np.random.default_rng(3)))
    assert not np.allclose(a, T)
    assert np.allclose(a[:3, :3] @ a[:3, :3].T, np.eye(3), atol=1e-5)
    assert np.linalg.norm(a[:3, 3] - T[:3, 3]) < 0.5


def test_axis_angle_rotates_about_axis():
    R = axis_angle_to_matrix(np.array([0.0, 0.0, np.pi / 2]))
    assert np.allclose(R @ [1, 0, 0], [0, 1, 0])


@pytest.mark.parametrize(
    "T, match",
    [
        (np.eye(3), "4, 4"),
        (np.full((4, 4), np.nan), "finite"),
        (np.diag([1.0, 1.0, -1.0, 1.0]), "rotation"),
    ],
)
def test_bad_transforms(T, match):
    with pytest.raises(ValueError, match=match):
        parse_transform(T)


def test_negative_jitter_rejected():
    with pytest.raises(ValueError):
        MountJitter(translation_std_m=-1.0)
