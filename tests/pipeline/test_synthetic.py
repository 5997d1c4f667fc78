import numpy as np

from pipeline.camera import KITTI_K_1216x352
from pipeline.synthetic import Box, box_mesh, kitti_like_scene, ray_box_entry, render_boxes

from .conftest import small_K


def test_ray_box_entry_is_analytic():
    rays = np.array([[0.0, 0.0, 1.0], [0.2, 0.0, 1.0], [0.5, 0.0, 1.0], [0.0, 0.0, -1.0]])
    t = ray_box_entry(rays, Box((-1, -1, 4), (1, 1, 6)))
    assert t[0] == 4.0 and t[1] == 4.0 and np.isinf(t[2]) and np.isinf(t[3])


def test_render_nearest_box_and_sky():
    boxes = (Box((-10, -10, 20), (10, 10, 21)), Box((-0.5, -0.5, 5), (0.5, 0.5, 6)))
    depth, label = render_boxes((21, 21), small_K((21, 21), 90.0), boxes)
    assert depth[10, 10] == 5.0 and label[10, 10] == 1
    assert depth[10, 0] == 0.0 or depth[10, 0] == 20.0


def test_box_mesh_and_kitti_like_scene_are_deterministic():
    mesh = box_mesh((Box((0, 0, 0), (1, 1, 1)), Box((2, 2, 2), (3, 3, 3))))
    assert mesh.vertices.shape == (16, 3) and mesh.faces.shape == (24, 3)
    K = np.diag([0.25, 0.25, 1.0]) @ KITTI_K_1216x352
    a, b = kitti_like_scene(3, (88, 304), K), kitti_like_scene(3, (88, 304), K)
    assert np.array_equal(a.depth, b.depth) and np.array_equal(a.rgb, b.rgb)
    assert 0.0 < np.mean(a.depth == 0) < 0.5 and a.rgb.dtype == np.uint8
