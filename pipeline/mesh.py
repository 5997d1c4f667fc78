"""Depth map -> surface mesh in the camera frame (OpenCV, metres).

The default ``grid`` mesh joins the pixel centres of each 2 x 2 quad with two triangles
split along the (r, c)-(r+1, c+1) diagonal:

* upper triangle (local x >= y): (r, c), (r, c+1), (r+1, c+1)
* lower triangle (local y >= x): (r, c), (r+1, c+1), (r+1, c)

A triangle is kept when all three vertices have depth and its depth ratio
max/min <= 1 + ``max_rel_jump`` (no surfaces invented across depth discontinuities).
Every ray-cast backend uses exactly these triangles.

A camera's depth map holds nothing behind foreground edges, but a LiDAR mounted elsewhere
sees there (KITTI: ~3-4 % of the returns in the camera crop). :func:`layered_mesh` adds a
second grid layer, a *layered depth image*: the background side of every depth discontinuity
extended under the foreground (see :func:`background_layer`). Both layers use the same
triangulation and culling, so the layered mesh is still exact for every backend.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from data_schemas.errors import ConfigError, InputError
from data_schemas.geometry import parse_depth, parse_intrinsics, pixel_rays

MeshMethod = Literal["grid", "poisson"]
MESH_METHODS: tuple[MeshMethod, ...] = ("grid", "poisson")


@dataclass(frozen=True)
class GridMesh:
    """2.5-D grid mesh of a depth map, as inverse depth (implicit triangles, see module doc)."""

    inv_depth: np.ndarray
    """(H, W) float32 1/m per pixel centre, 0 = no vertex (sky / no data)."""
    K: np.ndarray
    """(3, 3) float64 intrinsics of the camera that saw it."""
    max_rel_jump: float
    """Triangles whose depth ratio exceeds 1 + this are culled."""

    @property
    def hw(self) -> tuple[int, int]:
        """Image size (H, W)."""
        h, w = self.inv_depth.shape
        return int(h), int(w)


@dataclass(frozen=True)
class TriangleMesh:
    """Explicit triangle soup in the camera frame."""

    vertices: np.ndarray
    """(V, 3) float32 camera-frame points (m)."""
    faces: np.ndarray
    """(F, 3) int32 vertex indices."""

    def __post_init__(self) -> None:
        if self.vertices.ndim != 2 or self.vertices.shape[1] != 3:
            raise ValueError(f"vertices must be (V, 3), got {self.vertices.shape}")
        if self.faces.ndim != 2 or self.faces.shape[1] != 3:
            raise ValueError(f"faces must be (F, 3), got {self.faces.shape}")


@dataclass(frozen=True)
class LayeredGridMesh:
    """The camera's grid mesh plus a background layer behind its depth discontinuities."""

    front: GridMesh
    """What the camera sees."""
    back: GridMesh
    """The background extended under foreground edges (0 = no vertex); same K and culling."""

    @property
    def layers(self) -> tuple[GridMesh, GridMesh]:
        return self.front, self.back

    @property
    def hw(self) -> tuple[int, int]:
        return self.front.hw

    @property
    def K(self) -> np.ndarray:
        return self.front.K


AnyMesh = GridMesh | LayeredGridMesh | TriangleMesh


def parse_mesh_method(method: str) -> MeshMethod:
    """``"grid"`` (default, no invented surfaces) or ``"poisson"`` (open3d, smooth)."""
    for allowed in MESH_METHODS:
        if method == allowed:
            return allowed
    raise ConfigError(f"unknown mesh method {method!r}; allowed: {', '.join(MESH_METHODS)}")


def grid_mesh(depth: np.ndarray, K: np.ndarray, max_rel_jump: float = 0.1) -> GridMesh:
    """(H, W) metric depth (0 = no data) + (3, 3) K -> ``GridMesh``."""
    depth = parse_depth(depth)
    if not max_rel_jump > 0:
        raise ConfigError(f"max_rel_jump must be > 0, got {max_rel_jump}")
    inv = np.zeros_like(depth)
    np.divide(1.0, depth, out=inv, where=depth > 0)
    return GridMesh(inv_depth=inv, K=parse_intrinsics(K), max_rel_jump=float(max_rel_jump))


def triangle_keep(
    q0: np.ndarray, q1: np.ndarray, q2: np.ndarray, max_rel_jump: float
) -> np.ndarray:
    """Keep mask for triangles with vertex inverse depths q0, q1, q2 (any equal shapes)."""
    lo = np.minimum(np.minimum(q0, q1), q2)
    hi = np.maximum(np.maximum(q0, q1), q2)
    return np.asarray((lo > 0) & (hi <= lo * np.float32(1.0 + max_rel_jump)))


def grid_faces(mesh: GridMesh) -> np.ndarray:
    """(F, 3) int32 kept faces of a ``GridMesh``, indexing its pixels in row-major order."""
    q = mesh.inv_depth
    h, w = q.shape
    idx = np.arange(h * w, dtype=np.int32).reshape(h, w)
    a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, :-1], idx[1:, 1:]
    qa, qb, qc, qd = q[:-1, :-1], q[:-1, 1:], q[1:, :-1], q[1:, 1:]
    upper = np.stack([a, b, d], -1)[triangle_keep(qa, qb, qd, mesh.max_rel_jump)]
    lower = np.stack([a, d, c], -1)[triangle_keep(qa, qd, qc, mesh.max_rel_jump)]
    return np.concatenate([upper, lower]).astype(np.int32)


def grid_to_triangles(mesh: GridMesh | LayeredGridMesh) -> TriangleMesh:
    """Explicit ``TriangleMesh`` of a grid mesh (vertices of pixels without depth are unused).

    A layered mesh gives the union of its layers' triangles.
    """
    if isinstance(mesh, LayeredGridMesh):
        parts = [grid_to_triangles(layer) for layer in mesh.layers]
        offsets = np.cumsum([0] + [len(p.vertices) for p in parts[:-1]])
        return TriangleMesh(
            np.concatenate([p.vertices for p in parts]),
            np.concatenate([p.faces + o for p, o in zip(parts, offsets, strict=True)]).astype(
                np.int32),
        )
    q = mesh.inv_depth
    depth = np.zeros_like(q)
    np.divide(1.0, q, out=depth, where=q > 0)
    vertices = (pixel_rays(q.shape, mesh.K) * depth[..., None]).reshape(-1, 3)
    return TriangleMesh(vertices=vertices.astype(np.float32), faces=grid_faces(mesh))


def as_triangles(mesh: AnyMesh) -> TriangleMesh:
    """Any mesh as an explicit triangle soup (what the Embree and open3d backends build)."""
    return mesh if isinstance(mesh, TriangleMesh) else grid_to_triangles(mesh)


def occluded_edge_pixels(q: np.ndarray, max_rel_jump: float) -> np.ndarray:
    """(H, W) bool: pixels on the far side of a culled depth jump to a 4-neighbour."""
    scaled = q * np.float32(1.0 + max_rel_jump)
    valid = q > 0
    edge = np.zeros(q.shape, bool)
    edge[:, 1:] |= valid[:, 1:] & (q[:, :-1] > scaled[:, 1:])
    edge[:, :-1] |= valid[:, :-1] & (q[:, 1:] > scaled[:, :-1])
    edge[1:] |= valid[1:] & (q[:-1] > scaled[1:])
    edge[:-1] |= valid[:-1] & (q[1:] > scaled[:-1])
    return edge


@dataclass(frozen=True)
class Parallax:
    """How far behind a foreground edge the LiDAR sees, in pixels per unit of inverse depth.

    A viewpoint displaced from the camera centre by (o_x, o_y, o_z) (camera frame, m) shifts a
    point at inverse depth q_fg against one at q_bg by about
    ``(lateral_px_m + axial_m * r) * (q_fg - q_bg)`` px, with ``lateral_px_m`` = f * |(o_x,
    o_y)| and r the pixel's distance from the principal point (the radial part of the offset
    along the optical axis). The background layer reaches that far under the foreground, up
    to ``max_px``.
    """

    lateral_px_m: float
    axial_m: float
    principal_point: tuple[float, float]
    max_px: int

    @classmethod
    def unlimited(cls, max_px: int) -> Parallax:
        """Reach ``max_px`` behind every edge, whatever its depths."""
        return cls(1e9, 0.0, (0.0, 0.0), max_px)

    def px_per_inverse_depth(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Parallax (px per 1/m of inverse-depth gap) at pixels (rows, cols)."""
        radius = np.hypot(cols - self.principal_point[0], rows - self.principal_point[1])
        return np.asarray(self.lateral_px_m + self.axial_m * radius)


def _block_reduce(values: np.ndarray, block: int, erode: bool) -> np.ndarray:
    """Min (``erode``) or max of each ``block`` x ``block`` block -> (ceil(H/b), ceil(W/b))."""
    import cv2

    fill = float(np.inf) if erode else 0.0
    op = cv2.erode if erode else cv2.dilate
    reduced = op(np.asarray(values, np.float32), np.ones((block, block), np.uint8),
                 anchor=(0, 0), borderType=cv2.BORDER_CONSTANT, borderValue=fill)
    return np.ascontiguousarray(reduced[::block, ::block])


@functools.lru_cache(maxsize=8)
def _block_parallax(parallax: Parallax, shape: tuple[int, int], block: int) -> np.ndarray:
    """Parallax (px per 1/m) at the centre of every block (cached: the same for every frame)."""
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]] * block + block / 2.0
    return parallax.px_per_inverse_depth(rows, cols).astype(np.float32)


def _reachable_background(far: np.ndarray, near: np.ndarray, parallax: Parallax,
                          block: int) -> np.ndarray:
    """Per block: inverse depth of the farthest far-side pixel within the LiDAR's reach.

    Windows of 1, 2, 4, ... blocks around each block; a block takes the first window holding a
    far-side pixel that its nearest foreground is in front of by enough parallax to see it.
    """
    import cv2

    scale = _block_parallax(parallax, far.shape, block)
    reached = np.full(far.shape, np.inf, np.float32)
    radius, seen_px = 1, 0.0
    while True:
        kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * radius + 1, 2 * radius + 1))
        window = cv2.erode(far, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=float(np.inf))
        finite = np.isfinite(window)
        gap = np.where(finite, near - window, np.float32(0.0))
        with np.errstate(over="ignore"):  # a product past float32 is inf: seen, as it should be
            take = np.isinf(reached) & finite & (scale * gap >= seen_px)
        reached[take] = window[take]
        seen_px = radius * block
        if seen_px >= parallax.max_px:
            return reached
        radius *= 2


def background_layer(
    q: np.ndarray, max_rel_jump: float, parallax: Parallax, block: int = 4
) -> np.ndarray:
    """(H, W) inverse depth of the background extended under foreground edges, 0 elsewhere.

    A pixel in front of the far side of a depth discontinuity within the LiDAR's reach
    (``parallax``, computed on ``block`` x ``block`` blocks) gets the inverse depth of the
    farthest far-side pixel there; the far-side pixels keep their own, so the layer joins the
    visible background. Everything else (and sky) has no vertex.
    """
    import cv2

    edge = occluded_edge_pixels(q, max_rel_jump)
    if not edge.any() or parallax.max_px <= 0:
        return np.zeros_like(q)
    far = np.where(edge, q, np.float32(np.inf))
    reached = _reachable_background(_block_reduce(far, block, erode=True),
                                    _block_reduce(q, block, erode=False), parallax, block)
    h, w = q.shape
    size = (reached.shape[1] * block, reached.shape[0] * block)
    extended = cv2.resize(reached, size, interpolation=cv2.INTER_NEAREST)[:h, :w]
    under = q > extended * np.float32(1.0 + max_rel_jump)  # never where it is inf
    back = np.where(under, extended, np.float32(0.0))
    np.copyto(back, q, where=edge)
    return np.asarray(back, np.float32)


def layered_mesh(mesh: GridMesh, parallax: Parallax) -> LayeredGridMesh:
    """``mesh`` plus its background layer (:func:`background_layer`) as one layered mesh."""
    back = background_layer(mesh.inv_depth, mesh.max_rel_jump, parallax)
    return LayeredGridMesh(mesh, GridMesh(back, mesh.K, mesh.max_rel_jump))


def poisson_mesh(
    depth: np.ndarray, K: np.ndarray, octree_depth: int = 8, density_quantile: float = 0.05
) -> TriangleMesh:
    """Screened-Poisson surface (open3d) through the unprojected depth; weak vertices trimmed."""
    import open3d as o3d

    depth = parse_depth(depth)
    points = (pixel_rays(depth.shape, K) * depth[..., None])[depth > 0]
    if len(points) < 16:
        raise InputError(f"poisson meshing needs >= 16 points with depth, got {len(points)}")
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points.astype(np.float64)))
    pcd.estimate_normals(o3d.geometry.KDTreeSearchParamKNN(knn=16))
    pcd.orient_normals_towards_camera_location(np.zeros(3))
    mesh, dens = o3d.geometry.TriangleMesh.create_from_point_cloud_poisson(pcd, depth=octree_depth)
    density = np.asarray(dens)
    mesh.remove_vertices_by_mask(density < np.quantile(density, density_quantile))
    return TriangleMesh(np.asarray(mesh.vertices, np.float32), np.asarray(mesh.triangles, np.int32))


def build_mesh(
    depth: np.ndarray, K: np.ndarray, method: str = "grid", max_rel_jump: float = 0.1
) -> GridMesh | TriangleMesh:
    """Depth (H, W) + K -> ``GridMesh`` (method "grid") or ``TriangleMesh`` ("poisson")."""
    if parse_mesh_method(method) == "poisson":
        return poisson_mesh(depth, K)
    return grid_mesh(depth, K, max_rel_jump)


def save_ply(mesh: AnyMesh, path: str | Path) -> Path:
    """Write a mesh (camera frame, metres) to ``path`` as .ply through open3d; returns the path."""
    import open3d as o3d

    tri = as_triangles(mesh)
    o3d_mesh = o3d.geometry.TriangleMesh(
        o3d.utility.Vector3dVector(tri.vertices.astype(np.float64)),
        o3d.utility.Vector3iVector(tri.faces.astype(np.int32)),
    )
    o3d_mesh.remove_unreferenced_vertices()
    path = Path(path)
    if not o3d.io.write_triangle_mesh(path, o3d_mesh):
        raise OSError(f"open3d could not write {path}")
    return path
