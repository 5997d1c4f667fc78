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
