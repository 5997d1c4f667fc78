"""Analytic scenes of axis-aligned boxes in the camera frame (tests, benchmarks, quick looks).

Camera frame: OpenCV (x right, y down, z forward), metres. The ground is the box top at y = +height.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from data_schemas.geometry import pixel_rays
from pipeline.camera import KITTI_K_1216x352
from pipeline.mesh import TriangleMesh


@dataclass(frozen=True)
class Box:
    """Axis-aligned box [lo, hi] in the camera frame (m)."""

    lo: tuple[float, float, float]
    hi: tuple[float, float, float]


@dataclass(frozen=True)
class Scene:
    """Rendered analytic scene."""

    depth: np.ndarray
    """(H, W) float32 depth (m), 0 = sky."""
    label: np.ndarray
    """(H, W) int16 index of the visible box, -1 = sky."""
    rgb: np.ndarray
    """(H, W, 3) uint8 shaded colours."""
    K: np.ndarray
    """(3, 3) intrinsics."""
    boxes: tuple[Box, ...]


def ray_box_entry(rays: np.ndarray, box: Box) -> np.ndarray:
    """(..., 3) camera-centre rays (z = 1) -> (...) entry parameter (= depth), inf = miss."""
    lo, hi = np.asarray(box.lo), np.asarray(box.hi)
    with np.errstate(divide="ignore", invalid="ignore"):
        t1, t2 = lo / rays, hi / rays
    t_lo = np.where(rays == 0, np.where((lo <= 0) & (hi >= 0), -np.inf, np.inf), np.minimum(t1, t2))
    t_hi = np.where(rays == 0, np.where((lo <= 0) & (hi >= 0), np.inf, -np.inf), np.maximum(t1, t2))
    enter, leave = t_lo.max(axis=-1), t_hi.min(axis=-1)
    return np.where((enter <= leave) & (enter > 0), enter, np.inf)


def render_boxes(
    hw: tuple[int, int], K: np.ndarray, boxes: tuple[Box, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Depth (H, W) float32 (0 = sky) and label (H, W) int16 of the nearest box per pixel."""
    rays = pixel_rays(hw, K).astype(np.float64)
    entries = np.stack([ray_box_entry(rays, b) for b in boxes])
    label = np.argmin(entries, axis=0).astype(np.int16)
    depth = np.take_along_axis(entries, label[None].astype(np.int64), 0)[0]
    sky = ~np.isfinite(depth)
    label[sky] = -1
    return np.where(sky, 0.0, depth).astype(np.float32), label


def box_mesh(boxes: tuple[Box, ...]) -> TriangleMesh:
    """Explicit 12-triangle mesh of every box (camera frame)."""
    corners = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)])
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    faces = np.array([f for a, b, c, d in quads for f in ((a, b, c), (a, c, d))])
    verts, tris = [], []
    for i, box in enumerate(boxes):
        lo, hi = np.asarray(box.lo), np.asarray(box.hi)
        verts.append(lo + corners * (hi - lo))
        tris.append(faces + 8 * i)
    return TriangleMesh(
        np.concatenate(verts).astype(np.float32), np.concatenate(tris).astype(np.int32)
    )


def _shade(depth: np.ndarray, label: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Plausible-looking RGB: a colour per box, darker with distance, a faint texture; sky blue."""
    palette = rng.integers(60, 220, size=(int(label.max()) + 1, 3))
    palette[0] = (110, 110, 105)
    rgb = palette[np.maximum(label, 0)].astype(np.float32)
    rgb *= (0.55 + 0.45 * np.exp(-depth / 40.0))[..., None]
    h, w = depth.shape
    rgb += (
        12 * np.sin(np.arange(w) / 3.0)[None, :, None] * np.cos(np.arange(h) / 5.0)[:, None, None]
    )
    rgb[label < 0] = (135, 185, 235)
    return np.asarray(np.clip(rgb, 0, 255).astype(np.uint8))


def kitti_like_boxes(rng: np.random.Generator, cam_height: float = 1.65) -> tuple[Box, ...]:
    """Street canyon: ground, facades of varying set-back/height, cars, far wall."""
    g = cam_height
    boxes = [Box((-60.0, g, 0.5), (60.0, g + 1.0, 90.0))]
    for side in (-1.0, 1.0):
        z = 0.5
        while z < 70.0:
            length, offset, height = rng.uniform(8, 20), rng.uniform(6.0, 10.0), rng.uniform(5, 14)
            x0 = side * offset
            boxes.append(
                Box(
                    (min(x0, x0 + side * 8), g - height, z), (max(x0, x0 + side * 8), g, z + length)
                )
            )
            z += length + rng.uniform(0.0, 4.0)
    for _ in range(int(rng.integers(2, 5))):
        x, z = rng.uniform(-4.5, 4.5), rng.uniform(8.0, 40.0)
        boxes.append(Box((x - 0.9, g - 1.5, z), (x + 0.9, g, z + 4.2)))
    boxes.append(Box((-40.0, g - 6.0, 75.0), (40.0, g, 80.0)))
    return tuple(boxes)


def kitti_like_scene(
    seed: int = 0, hw: tuple[int, int] = (352, 1216), K: np.ndarray | None = None
) -> Scene:
    """Seeded KITTI-like street scene rendered at KITTI intrinsics (352 x 1216 crop by default)."""
    rng = np.random.default_rng(seed)
    K = KITTI_K_1216x352 if K is None else np.asarray(K, np.float64)
    boxes = kitti_like_boxes(rng)
    depth, label = render_boxes(hw, K, boxes)
    return Scene(depth=depth, label=label, rgb=_shade(depth, label, rng), K=K, boxes=boxes)
