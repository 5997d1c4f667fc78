"""Second reference backend: open3d ``RaycastingScene``."""

from __future__ import annotations

import numpy as np

from pipeline.mesh import AnyMesh, as_triangles
from pipeline.raycast import parse_rays


class Open3DCaster:
    """First-hit queries with open3d; an empty mesh gives all misses."""

    name = "open3d"

    def __init__(self, mesh: AnyMesh, threads: int = 1) -> None:
        import open3d as o3d

        self._o3d = o3d
        self.threads = threads
        tri = as_triangles(mesh)
        self.num_faces = len(tri.faces)
        self._scene = o3d.t.geometry.RaycastingScene(nthreads=threads) if self.num_faces else None
        if self._scene is not None:
            vertices = o3d.core.Tensor.from_numpy(np.ascontiguousarray(tri.vertices, np.float32))
            faces = o3d.core.Tensor.from_numpy(np.ascontiguousarray(tri.faces, np.uint32))
            self._scene.add_triangles(vertices, faces)

    def cast(self, origins: np.ndarray, dirs: np.ndarray, t_max: float) -> np.ndarray:
        """(3,) or (N, 3) origins + (N, 3) dirs -> (N,) float32 distance (m), inf = miss."""
        origins, dirs = parse_rays(origins, dirs, t_max)
        out = np.full(len(dirs), np.inf, np.float32)
        if self._scene is None or len(dirs) == 0:
            return out
        rays = np.ascontiguousarray(np.concatenate([origins, dirs], axis=1), np.float32)
        tensor = self._o3d.core.Tensor.from_numpy(rays)
        t = self._scene.cast_rays(tensor, nthreads=self.threads)["t_hit"].numpy()
        hit = np.isfinite(t) & (t <= t_max)
        out[hit] = t[hit]
        return out
