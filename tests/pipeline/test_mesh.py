import numpy as np
import pytest

from pipeline.mesh import (
    build_mesh,
    grid_faces,
    grid_mesh,
    grid_to_triangles,
    poisson_mesh,
    save_ply,
)

from .conftest import small_K


def test_plane_gives_two_triangles_per_quad():
    mesh = grid_mesh(np.full((6, 9), 4.0, np.float32), small_K((6, 9)))
    faces = grid_faces(mesh)
    assert faces.shape == (2 * 5 * 8, 3)
    tri = grid_to_triangles(mesh)
    assert np.allclose(tri.vertices[:, 2], 4.0)


def test_discontinuities_and_sky_are_culled():
    depth = np.full((5, 8), 5.0, np.float32)
    depth[:, 4:] = 20.0  # jump between columns 3 and 4
    depth[0, 0] = 0.0  # sky pixel
    faces = grid_faces(grid_mesh(depth, small_K((5, 8)), max_rel_jump=0.1))
    cols = faces % 8
    assert not np.any((cols.min(1) <= 3) & (cols.max(1) >= 4))  # nothing spans the jump
    assert not np.any(faces == 0)  # nothing touches the sky pixel
    assert len(faces) == 2 * 4 * 7 - 2 * 4 - 2  # 8 across the jump, 2 on the sky pixel
    assert len(grid_faces(grid_mesh(depth, small_K((5, 8)), max_rel_jump=5.0))) == 2 * 4 * 7 - 2


def test_all_sky_gives_empty_mesh():
    assert len(grid_faces(grid_mesh(np.zeros((4, 4), np.float32), small_K((4, 4))))) == 0


def test_bad_inputs():
    with pytest.raises(ValueError, match="max_rel_jump"):
        grid_mesh(np.ones((4, 4)), small_K((4, 4)), max_rel_jump=0.0)
    with pytest.raises(ValueError, match="allowed: grid, poisson"):
        build_mesh(np.ones((4, 4)), small_K((4, 4)), method="marching")


def test_poisson_mesh_of_a_plane_stays_on_the_plane():
    mesh = poisson_mesh(np.full((20, 30), 6.0, np.float32), small_K((20, 30)), octree_depth=6)
    assert len(mesh.faces) > 50
    assert np.median(np.abs(mesh.vertices[:, 2] - 6.0)) < 0.1


def test_save_ply_roundtrip(tmp_path):
    import open3d as o3d

    mesh = grid_mesh(np.full((5, 6), 3.0, np.float32), small_K((5, 6)))
    path = save_ply(mesh, tmp_path / "m.ply")
    back = o3d.io.read_triangle_mesh(str(path))
    assert len(back.triangles) == 2 * 4 * 5 and len(back.vertices) == 30


def _box_on_wall():
    """A 5 m box (rows 8-11, cols 10-15) in front of a 20 m wall, sky in row 0."""
    depth = np.full((20, 30), 20.0, np.float32)
    depth[8:12, 10:16] = 5.0
    depth[0] = 0.0
    return depth


def test_occluded_edge_pixels_are_the_far_side_of_each_jump():
    from pipeline.mesh import occluded_edge_pixels

    q = grid_mesh(_box_on_wall(), small_K((20, 30))).inv_depth
    edge = occluded_edge_pixels(q, 0.1)
    ring = np.zeros((20, 30), bool)  # wall pixels 4-adjacent to the box
    ring[7, 10:16] = ring[12, 10:16] = ring[8:12, 9] = ring[8:12, 16] = True
    assert np.array_equal(edge, ring)  # not the box, not the sky border


def test_background_layer_extends_the_far_side_under_the_foreground():
    from pipeline.mesh import Parallax, background_layer

    depth = _box_on_wall()
    q = grid_mesh(depth, small_K((20, 30))).inv_depth
    back = background_layer(q, 0.1, Parallax.unlimited(2), block=1)
    box = depth == 5.0
    wall_q = np.float32(1 / 20)
    # box pixels within 2 px of a wall edge pixel get the wall's inverse depth: all of this box
    assert np.allclose(back[box], wall_q)
    # the far-side pixels keep their own, nothing else (open wall, sky) has a vertex
    assert np.allclose(back[7, 10:16], wall_q) and back[0].max() == 0
    assert back[3, 3] == 0 and back[15, 25] == 0
    # a bigger box: its centre is out of reach of a 1-px band
    depth[4:16, 5:25] = 5.0
    back = background_layer(grid_mesh(depth, small_K((20, 30))).inv_depth, 0.1,
                            Parallax.unlimited(1), block=1)
    assert back[10, 15] == 0 and back[4, 15] == np.float32(1 / 20)


def test_background_layer_reaches_as_far_as_the_parallax_between_the_depths():
    """Viewpoint 0.1 m off at f = 100 px: a 5 m box before a 20 m wall shifts by
    100 * 0.1 * (1/5 - 1/20) = 1.5 px, so the layer reaches ~1-2 px under the box, not 8."""
    from pipeline.mesh import Parallax, background_layer

    depth = np.full((40, 60), 20.0, np.float32)
    depth[10:30, 15:45] = 5.0
    q = grid_mesh(depth, small_K((40, 60))).inv_depth
    near = background_layer(q, 0.1, Parallax(100 * 0.1, 0.0, (0.0, 0.0), 8), block=1)
    far_wall = depth.copy()
    far_wall[depth == 20.0] = 200.0  # the wall ten times farther: 100 * 0.1 * 0.195 = 2 px
    farther = background_layer(grid_mesh(far_wall, small_K((40, 60))).inv_depth, 0.1,
                               Parallax(100 * 1.0, 0.0, (0.0, 0.0), 8), block=1)
    box = depth == 5.0
    assert 0 < np.count_nonzero(near[box]) < np.count_nonzero(farther[box])
    assert near[20, 30] == 0 and np.count_nonzero(farther[box]) < box.sum()


def test_layered_mesh_triangles_are_the_union_of_its_layers():
    from pipeline.mesh import Parallax, layered_mesh

    mesh = layered_mesh(grid_mesh(_box_on_wall(), small_K((20, 30))), Parallax.unlimited(2))
    tri = grid_to_triangles(mesh)
    front, back = grid_to_triangles(mesh.front), grid_to_triangles(mesh.back)
    assert len(tri.faces) == len(front.faces) + len(back.faces) > len(front.faces)
    assert np.allclose(tri.vertices[tri.faces[len(front.faces):]], back.vertices[back.faces])
    box_cells = back.vertices[back.faces][..., 2]
    assert np.allclose(box_cells, 20.0, rtol=1e-5)  # the background layer lies on the wall
