"""First-hit ray casting against a depth-map mesh, behind one interface.

Backends (all return the distance t along unit rays, ``inf`` for a miss or t > t_max; every
ray may have its own origin):

* ``embree``: embreex BVH over the explicit triangles (the reference);
* ``open3d``: open3d ``RaycastingScene`` (second reference);
* ``fast``: exact screen-space walk over the 2.5-D grid mesh (grid or layered grid meshes).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from data_schemas.errors import ConfigError, InputError
from pipeline.mesh import AnyMesh, GridMesh, LayeredGridMesh

BACKENDS = ("fast", "embree", "open3d")


class RayCaster(Protocol):
    """A mesh prepared for first-hit queries."""

    name: str

    def cast(self, origins: np.ndarray, dirs: np.ndarray, t_max: float) -> np.ndarray:
        """(3,) or (N, 3) origins + (N, 3) unit dirs (mesh frame) -> (N,) float32 distance (m),
        inf = miss."""
        ...


def parse_backend(name: str) -> str:
    """Validate a backend name."""
    if name not in BACKENDS:
        raise ConfigError(f"unknown ray-cast backend {name!r}; allowed: {', '.join(BACKENDS)}")
    return name


def parse_rays(
    origins: np.ndarray, dirs: np.ndarray, t_max: float
) -> tuple[np.ndarray, np.ndarray]:
    """Validate and normalise rays -> ((N, 3) origins, (N, 3) unit dirs), both float64.

    ``origins``: one finite (3,) origin for all rays or (N, 3); dirs: (N, 3) non-zero, finite.
    """
    origins = np.asarray(origins, dtype=np.float64)
    dirs = np.asarray(dirs, dtype=np.float64)
    if dirs.ndim != 2 or dirs.shape[1] != 3 or not np.all(np.isfinite(dirs)):
        raise InputError(f"ray directions must be finite (N, 3), got shape {dirs.shape}")
    if origins.shape not in ((3,), dirs.shape) or not np.all(np.isfinite(origins)):
        raise InputError(f"ray origin must be a finite (3,) vector or (N, 3) array, got shape "
                         f"{origins.shape} for {len(dirs)} rays")
    sq = np.einsum("ij,ij->i", dirs, dirs)
    if np.any(sq == 0):
        raise InputError("ray directions must be non-zero")
    if not t_max > 0:
        raise InputError(f"t_max must be > 0, got {t_max}")
    return np.broadcast_to(origins, dirs.shape), dirs / np.sqrt(sq)[:, None]


def make_caster(backend: str, mesh: AnyMesh) -> RayCaster:
    """Prepare ``mesh`` (camera frame) for ``backend`` (one of ``BACKENDS``)."""
    parse_backend(backend)
    if backend == "fast":
        from pipeline.raycast.screen import ScreenSpaceCaster

        if not isinstance(mesh, GridMesh | LayeredGridMesh):
            raise ConfigError("the 'fast' backend needs a GridMesh (2.5-D depth-map mesh)")
        return ScreenSpaceCaster(mesh)
    if backend == "embree":
        from pipeline.raycast.embree_backend import EmbreeCaster

        return EmbreeCaster(mesh)
    from pipeline.raycast.o3d_backend import Open3DCaster

    return Open3DCaster(mesh)
