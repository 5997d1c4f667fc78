"""Fast backend: exact first hits on a 2.5-D grid mesh by walking each ray's image trace.

The grid mesh is the camera's depth map, so every triangle is a 2-D triangle between pixel
centres whose inverse depth q is affine in (u, v). A ray's image trace is affine in its own
inverse depth s (see ``trace``), so within one triangle ``q(p(s)) = s`` is a linear equation.
The walk is two-level: rays first visit T x T pixel tiles and keep only those whose
[min q, max q] overlaps the ray's s over the tile; the surviving pieces of trace are then
walked cell by cell and intersected exactly with both triangles of each cell. Same triangles
and culling rule as ``pipeline.mesh.grid_faces``, so it agrees with Embree up to float
rounding. A layered mesh (``pipeline.mesh.LayeredGridMesh``) is cast layer by layer, front
first; a later layer only needs the part of each ray nearer than the hit found so far.
All steps are vectorised numpy over (ray, cell) pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.mesh import GridMesh, LayeredGridMesh, triangle_keep
from pipeline.raycast import parse_rays
from pipeline.raycast.trace import Traces, image_traces, s_to_t

TILE_PX = 16
"""Side of the coarse tiles (pixels)."""
S_TOLERANCE = 1e-6
"""Relative slack on inverse depth for hits on a cell's border (shared by two cells)."""
DIAGONAL_TOLERANCE_PX = 1e-6
"""Slack (pixels) when deciding on which side of a cell's diagonal a hit lies."""
_NONZERO = 1e-300
"""Added to rates before dividing so that a trace parallel to an axis gives inf, not NaN."""


@dataclass(frozen=True)
class TraceSegments:
    """The walk state: pieces of ray traces p(s) = p_inf + slope * s, s in [s_far, s_near]."""

    ray: np.ndarray
    """(M,) index of the ray each piece belongs to."""
    u_inf: np.ndarray
    """(M,) column of the ray's vanishing point (px)."""
    v_inf: np.ndarray
    """(M,) row of the ray's vanishing point (px)."""
    du_ds: np.ndarray
    """(M,) change of column per unit of inverse depth (px * m)."""
    dv_ds: np.ndarray
    """(M,) change of row per unit of inverse depth (px * m)."""
    s_near: np.ndarray
    """(M,) inverse depth (1/m) where the piece starts (nearest end)."""
    s_far: np.ndarray
    """(M,) inverse depth where it ends (farthest end), <= s_near."""

    @classmethod
    def of_traces(cls, traces: Traces, rays: np.ndarray) -> TraceSegments:
        """One segment per ray in ``rays`` (indices into ``traces``)."""
        return cls(rays, traces.p_inf[rays, 0], traces.p_inf[rays, 1], traces.slope[rays, 0],
                   traces.slope[rays, 1], traces.s_near[rays], traces.s_far[rays])

    def take(self, idx: np.ndarray, s_near: np.ndarray | None = None,
             s_far: np.ndarray | None = None) -> TraceSegments:
        """Segments ``idx``, optionally with narrowed s-intervals."""
        return TraceSegments(
            self.ray[idx], self.u_inf[idx], self.v_inf[idx], self.du_ds[idx], self.dv_ds[idx],
            self.s_near[idx] if s_near is None else s_near,
            self.s_far[idx] if s_far is None else s_far,
        )

    def __len__(self) -> int:
        return len(self.ray)


@dataclass(frozen=True)
class CellVisits:
    """The (segment, cell) pairs of a walk and the s-interval the segment spends in each cell."""

    segment: np.ndarray
    """(P,) index into the walked ``TraceSegments``."""
    row: np.ndarray
    """(P,) cell row."""
    col: np.ndarray
    """(P,) cell column."""
    s_enter: np.ndarray
    """(P,) inverse depth where the segment enters the cell (>= s_exit)."""
    s_exit: np.ndarray
    """(P,) inverse depth where it leaves."""


def slab_interval(
    cell: np.ndarray, position: np.ndarray, rate: np.ndarray, s_near: np.ndarray,
    s_far: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """s-interval in which ``position + rate * s`` (cell units) lies in [cell, cell + 1),
    clipped to [s_far, s_near]; returns (s_enter, s_exit), empty when s_enter < s_exit."""
    s_at_cell = (cell - position) / rate
    s_at_next = s_at_cell + 1.0 / rate
    return (np.minimum(s_near, np.maximum(s_at_cell, s_at_next)),
            np.maximum(s_far, np.minimum(s_at_cell, s_at_next)))


def walk_cells(segments: TraceSegments, cell_px: int, grid_hw: tuple[int, int]) -> CellVisits:
    """Cells of ``cell_px`` pixels crossed by each segment, clipped to ``grid_hw`` cells.

    Steps along the segment's major axis (the image axis it crosses faster) one cell at a time;
    within one such step the minor axis moves by at most one cell, so a step is one cell, or
    two split where the minor coordinate crosses a cell border.
    """
    along_rows = np.abs(segments.dv_ds) > np.abs(segments.du_ds)
    major_pos = np.where(along_rows, segments.v_inf, segments.u_inf) / cell_px
    minor_pos = np.where(along_rows, segments.u_inf, segments.v_inf) / cell_px
    major_rate = np.where(along_rows, segments.dv_ds, segments.du_ds) / cell_px + _NONZERO
    minor_rate = np.where(along_rows, segments.du_ds, segments.dv_ds) / cell_px + _NONZERO
    first = np.floor(major_pos + major_rate * segments.s_near)
    last = np.floor(major_pos + major_rate * segments.s_far)
    count = (np.abs(last - first) + 1).astype(np.intp)
    seg = np.repeat(np.arange(len(count)), count)
    step = np.arange(len(seg)) - np.repeat(np.cumsum(count) - count, count)
    major_cell = first[seg] + np.sign(last - first)[seg] * step
    s_enter, s_exit = slab_interval(major_cell, major_pos[seg], major_rate[seg],
                                    segments.s_near[seg], segments.s_far[seg])
    keep = np.flatnonzero(s_enter >= s_exit)
    seg, major_cell, s_enter, s_exit = seg[keep], major_cell[keep], s_enter[keep], s_exit[keep]
    position, rate = minor_pos[seg], minor_rate[seg]
    minor_enter = np.floor(position + rate * s_enter)
    minor_exit = np.floor(position + rate * s_exit)
    split = np.flatnonzero(minor_exit != minor_enter)
    border = np.maximum(minor_enter[split], minor_exit[split])
    s_split = np.clip((border - position[split]) / rate[split], s_exit[split], s_enter[split])
    first_part_exit = s_exit.copy()
    first_part_exit[split] = s_split
    seg = np.concatenate([seg, seg[split]])
    major_cell = np.concatenate([major_cell, major_cell[split]])
    minor_cell = np.concatenate([minor_enter, minor_exit[split]])
    rows_first = along_rows[seg]
    rows = np.where(rows_first, major_cell, minor_cell)
    cols = np.where(rows_first, minor_cell, major_cell)
    return CellVisits(seg, np.clip(rows, 0, grid_hw[0] - 1).astype(np.intp),
                      np.clip(cols, 0, grid_hw[1] - 1).astype(np.intp),
                      np.concatenate([s_enter, s_split]),
                      np.concatenate([first_part_exit, s_exit[split]]))


@dataclass(frozen=True)
class CellTrace:
    """Each visit's piece of trace in cell-local pixels: x = u - col, y = v - row."""

    x_inf: np.ndarray
    y_inf: np.ndarray
    dx_ds: np.ndarray
    dy_ds: np.ndarray
    s_enter: np.ndarray
    s_exit: np.ndarray


def cell_hits(mesh: GridMesh, segments: TraceSegments, visits: CellVisits) -> np.ndarray:
    """(P,) inverse depth of the nearest hit of each visit in its cell's two triangles, -inf.

    In cell-local pixels (x = u - col, y = v - row) the upper triangle (x >= y) has
    q = q_tl + (q_tr - q_tl) x + (q_br - q_tr) y and the lower one (y >= x)
    q = q_tl + (q_br - q_bl) x + (q_bl - q_tl) y; along the trace x = x_inf + dx_ds s (same
    for y), so each hit solves one linear equation in s, kept when the triangle exists, the
    hit lies in the visit's s-interval and on the triangle's side of the diagonal.
    """
    w = mesh.inv_depth.shape[1]
    q = mesh.inv_depth.ravel()
    corner = visits.row * w + visits.col
    q_tl, q_tr, q_bl, q_br = q[corner], q[corner + 1], q[corner + w], q[corner + w + 1]
    seg = visits.segment
    trace = CellTrace(segments.u_inf[seg] - visits.col, segments.v_inf[seg] - visits.row,
                      segments.du_ds[seg], segments.dv_ds[seg], visits.s_enter, visits.s_exit)
    rel = mesh.max_rel_jump
    upper = plane_hits(q_tl, q_tr - q_tl, q_br - q_tr, triangle_keep(q_tl, q_tr, q_br, rel),
                       1.0, trace)
    lower = plane_hits(q_tl, q_br - q_bl, q_bl - q_tl, triangle_keep(q_tl, q_br, q_bl, rel),
                       -1.0, trace)
    return np.asarray(np.maximum(upper, lower))


def plane_hits(q_corner: np.ndarray, dq_dx: np.ndarray, dq_dy: np.ndarray, kept: np.ndarray,
               side: float, trace: CellTrace) -> np.ndarray:
    """Solve q_corner + dq_dx x(s) + dq_dy y(s) = s on one triangle per visit; -inf where the
    triangle does not exist or the hit is not in it (``side``: +1 upper, -1 lower)."""
    numerator = q_corner + dq_dx * trace.x_inf + dq_dy * trace.y_inf
    denominator = 1.0 - dq_dx * trace.dx_ds - dq_dy * trace.dy_ds
    solvable = np.abs(denominator) > 1e-12
    s = numerator / np.where(solvable, denominator, 1.0)
    in_cell = (s <= trace.s_enter * (1 + S_TOLERANCE)) & (s >= trace.s_exit * (1 - S_TOLERANCE))
    off_diagonal = (trace.x_inf - trace.y_inf) + (trace.dx_ds - trace.dy_ds) * s
    on_side = side * off_diagonal >= -DIAGONAL_TOLERANCE_PX
    return np.where(kept & solvable & in_cell & on_side, s, -np.inf)


@dataclass(frozen=True)
class TileBounds:
    """Per T x T tile of a layer: the largest and smallest valid inverse depth of its cells."""

    q_max: np.ndarray
    """(rows, cols) largest q over the tile's cell corners (0: no vertex)."""
    q_min: np.ndarray
    """(rows, cols) smallest valid q (inf: no vertex)."""
    tile_px: int

    @classmethod
    def of(cls, q: np.ndarray, tile_px: int) -> TileBounds:
        h, w = q.shape
        n_rows, n_cols = (h - 2) // tile_px + 1, (w - 2) // tile_px + 1
        padded = np.zeros((n_rows * tile_px + 1, n_cols * tile_px + 1), np.float32)
        padded[:h, :w] = q
        bounds = []
        for values, reduce in ((padded, np.maximum),
                               (np.where(padded > 0, padded, np.inf), np.minimum)):
            rows = reduce.reduce(values[: n_rows * tile_px].reshape(n_rows, tile_px, -1), axis=1)
            rows = reduce(rows, values[tile_px::tile_px][:n_rows])
            cols = reduce.reduce(rows[:, : n_cols * tile_px].reshape(n_rows, n_cols, tile_px), 2)
            bounds.append(reduce(cols, rows[:, tile_px::tile_px][:, :n_cols]))
        return cls(bounds[0], bounds[1], tile_px)

    @property
    def s_range(self) -> tuple[float, float]:
        """[min, max] valid inverse depth of the layer (inf, 0 when empty)."""
        return float(self.q_min.min()), float(self.q_max.max())


def tile_bounds(q: np.ndarray, tile: int) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) inverse depth -> per-tile (max q, min valid q) over its cells' corners."""
    bounds = TileBounds.of(q, tile)
    return bounds.q_max, bounds.q_min


def tile_visits(segments: TraceSegments, tile_px: int, tiles_hw: tuple[int, int]) -> CellVisits:
    """Coarse walk: the tiles each segment crosses (shared by every layer of a mesh)."""
    return walk_cells(segments, tile_px, tiles_hw)


def candidate_segments(
    segments: TraceSegments, tiles: CellVisits, bounds: TileBounds, s_floor: np.ndarray | None
) -> TraceSegments:
    """Pieces of segments in tiles whose q-range meets their s-range above ``s_floor`` (per
    ray: the nearest hit so far; None = no hit yet), narrowed to that overlap."""
    tile = tiles.row * bounds.q_max.shape[1] + tiles.col
    q_hi, q_lo = bounds.q_max.ravel()[tile], bounds.q_min.ravel()[tile]
    s_low = np.maximum(tiles.s_exit, q_lo)
    if s_floor is not None:
        np.maximum(s_low, s_floor[segments.ray[tiles.segment]], out=s_low)
    s_high = np.minimum(tiles.s_enter, q_hi)
    keep = np.flatnonzero(s_high >= s_low)
    return segments.take(tiles.segment[keep], s_high[keep], s_low[keep])


def layer_hits(mesh: GridMesh, pieces: TraceSegments, n_rays: int) -> np.ndarray:
    """(n_rays,) inverse depth of each ray's nearest hit on one layer among ``pieces``, -inf."""
    h, w = mesh.inv_depth.shape
    visits = walk_cells(pieces, 1, (h - 1, w - 1))
    best = np.full(n_rays, -np.inf)
    np.maximum.at(best, pieces.ray[visits.segment], cell_hits(mesh, pieces, visits))
    return best


class ScreenSpaceCaster:
    """Fast exact first-hit caster against a grid mesh or a layered one (any ray origins)."""

    name = "fast"

    def __init__(self, mesh: GridMesh | LayeredGridMesh, tile: int = TILE_PX) -> None:
        self.layers = mesh.layers if isinstance(mesh, LayeredGridMesh) else (mesh,)
        self.K, self.hw = mesh.K, mesh.hw
        self._bounds = [TileBounds.of(layer.inv_depth, tile) for layer in self.layers]
        ranges = [b.s_range for b in self._bounds]
        self._s_range = (min(lo for lo, _ in ranges), max(hi for _, hi in ranges))

    def cast(self, origins: np.ndarray, dirs: np.ndarray, t_max: float) -> np.ndarray:
        """(3,) or (N, 3) origins + (N, 3) dirs (camera frame) -> (N,) float32 distance, inf."""
        origins, dirs = parse_rays(origins, dirs, t_max)
        out = np.full(len(dirs), np.inf, np.float32)
        lo, hi = self._s_range
        if not np.isfinite(lo) or hi <= 0 or len(dirs) == 0:
            return out
        s_bounds = (lo * (1 - S_TOLERANCE), hi * (1 + S_TOLERANCE))
        traces = image_traces(origins, dirs, self.K, self.hw, (0.0, t_max), s_bounds)
        segments = TraceSegments.of_traces(traces, np.flatnonzero(traces.ok))
        tiles = tile_visits(segments, self._bounds[0].tile_px, self._bounds[0].q_max.shape)
        best = np.full(len(dirs), -np.inf)
        for i, (layer, bounds) in enumerate(zip(self.layers, self._bounds, strict=True)):
            pieces = candidate_segments(segments, tiles, bounds, best if i else None)
            np.maximum(best, layer_hits(layer, pieces, len(dirs)), out=best)
        hit = np.flatnonzero(best > 0)
        t = s_to_t(best[hit], origins[hit, 2], dirs[hit, 2])
        ok = (t >= 0) & (t <= t_max)
        out[hit[ok]] = t[ok]
        return out
