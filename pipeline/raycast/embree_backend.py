"""Reference backend: embreex (Embree 4) BVH over the explicit mesh triangles."""

from __future__ import annotations

import numpy as np

from pipeline.mesh import GridMesh, TriangleMesh, grid_to_triangles
from pipeline.raycast import parse_rays


class EmbreeCaster:
    """First-hit queries with embreex; an empty mesh gives all misses."""

    name = "embree"

    def __init__(self, mesh: GridMesh | TriangleMesh) -> None:
        from embreex import rtcore_scene
        from embreex.mesh_construction import TriangleMesh as EmbreeMesh

        tri = grid_to_triangles(mesh) if isinstance(mesh, GridMesh) else mesh
        self.num_faces = len(tri.faces)
        self._scene = rtcore_scene.EmbreeScene() if self.num_faces else None
        if self._scene is not None:
            EmbreeMesh(
                self._scene,
                np.ascontiguousarray(tri.vertices, np.float32),
                np.ascontiguousarray(tri.faces, np.int32),
            )

    def cast(self, origin: np.ndarray, dirs: np.ndarray, t_max: float) -> np.ndarray:
        """(3,) origin + (N, 3) dirs -> (N,) float32 distance (m), inf = miss."""
        origin, dirs = parse_rays(origin, dirs, t_max)
        out = np.full(len(dirs), np.inf, np.float32)
        if self._scene is None or len(dirs) == 0:
            return out
        origins = np.ascontiguousarray(np.broadcast_to(origin, dirs.shape), np.float32)
        res = self._scene.run(
            origins,
            np.ascontiguousarray(dirs, np.float32),
            dists=np.full(len(dirs), t_max, np.float32),
            output=1,
        )
        hit = res["primID"] >= 0
        out[hit] = res["tfar"][hit]
        return out
