"""Reference backend: embreex (Embree 4) BVH over the explicit mesh triangles."""

from __future__ import annotations

import numpy as np

from pipeline.mesh import AnyMesh, as_triangles
from pipeline.raycast import parse_rays


class EmbreeCaster:
    """First-hit queries with embreex; an empty mesh gives all misses."""

    name = "embree"

    def __init__(self, mesh: AnyMesh) -> None:
        from embreex import rtcore_scene
        from embreex.mesh_construction import TriangleMesh as EmbreeMesh

        tri = as_triangles(mesh)
        self.num_faces = len(tri.faces)
        self._scene = rtcore_scene.EmbreeScene() if self.num_faces else None
        if self._scene is not None:
            EmbreeMesh(
                self._scene,
                np.ascontiguousarray(tri.vertices, np.float32),
                np.ascontiguousarray(tri.faces, np.int32),
            )

    def cast(self, origins: np.ndarray, dirs: np.ndarray, t_max: float) -> np.ndarray:
        """(3,) or (N, 3) origins + (N, 3) dirs -> (N,) float32 distance (m), inf = miss."""
        origins, dirs = parse_rays(origins, dirs, t_max)
        out = np.full(len(dirs), np.inf, np.float32)
        if self._scene is None or len(dirs) == 0:
            return out
        res = self._scene.run(
            np.ascontiguousarray(origins, np.float32),
            np.ascontiguousarray(dirs, np.float32),
            dists=np.full(len(dirs), t_max, np.float32),
            output=1,
        )
        hit = res["primID"] >= 0
        out[hit] = res["tfar"][hit]
        return out
