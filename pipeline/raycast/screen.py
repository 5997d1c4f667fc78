"""Fast backend: exact first hits on a 2.5-D grid mesh by walking each ray's image trace.

The grid mesh is the camera's depth map, so every triangle is a 2-D triangle between pixel
centres whose inverse depth q is affine in (u, v). A ray's image trace is affine in its own
inverse depth s (see ``trace``), so within one triangle ``q(p(s)) = s`` is a linear equation.
The walk is two-level: rays first visit T x T pixel tiles and keep only those whose
[min q, max q] overlaps the ray's s over the tile; the surviving sub-segments are then walked
cell by cell and intersected exactly with both triangles of each cell. Same triangles and
culling rule as ``pipeline.mesh.grid_faces``, so it agrees with Embree up to float rounding.
All steps are vectorised numpy over (ray, cell) pairs.
"""

from __future__ import annotations

import numpy as np

from pipeline.mesh import GridMesh, triangle_keep
from pipeline.raycast import parse_rays
from pipeline.raycast.trace import image_traces, s_to_t

TILE = 16
_EPS_S = 1e-6
_EPS_PX = 1e-6
_TINY = 1e-300


def tile_bounds(q: np.ndarray, tile: int) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) inverse depth -> per-tile (max q, min valid q) over its cells' corners."""
    h, w = q.shape
    nr, nc = (h - 2) // tile + 1, (w - 2) // tile + 1
    padded = np.zeros((nr * tile + 1, nc * tile + 1), np.float32)
    padded[:h, :w] = q
    out = []
    for arr, red in ((padded, np.maximum), (np.where(padded > 0, padded, np.inf), np.minimum)):
        rows = red.reduce(arr[: nr * tile].reshape(nr, tile, -1), axis=1)
        rows = red(rows, arr[tile::tile][:nr])
        cols = red.reduce(rows[:, : nc * tile].reshape(nr, nc, tile), axis=2)
        out.append(red(cols, rows[:, tile::tile][:, :nc]))
    return out[0], out[1]


def walk_cells(
    p: tuple[np.ndarray, np.ndarray],
    a: tuple[np.ndarray, np.ndarray],
    s_near: np.ndarray,
    s_far: np.ndarray,
    cell: int,
    grid: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Cells of size ``cell`` px crossed by segments p + a s, s in [s_far, s_near].

    p, a: (u, v) pixel and slope component arrays, each (M,); returns (segment index, row, col,
    s_enter, s_exit), one entry per (segment, cell) with s_enter >= s_exit, clipped to ``grid``.
    Walks the major axis one cell at a time; the minor axis moves by at most one cell per step.
    """
    v_major = np.abs(a[1]) > np.abs(a[0])
    gM, gm = np.where(v_major, p[1], p[0]) / cell, np.where(v_major, p[0], p[1]) / cell
    bM, bm = (
        np.where(v_major, a[1], a[0]) / cell + _TINY,
        np.where(v_major, a[0], a[1]) / cell + _TINY,
    )
    k0, k1 = np.floor(gM + bM * s_near), np.floor(gM + bM * s_far)
    n = (np.abs(k1 - k0) + 1).astype(np.intp)
    seg = np.repeat(np.arange(len(n)), n)
    k = k0[seg] + np.sign(k1 - k0)[seg] * (np.arange(len(seg)) - np.repeat(np.cumsum(n) - n, n))
    s0, ib = (k - gM[seg]) / bM[seg], 1.0 / bM[seg]
    s_en = np.minimum(s_near[seg], np.maximum(s0, s0 + ib))
    s_ex = np.maximum(s_far[seg], np.minimum(s0, s0 + ib))
    gm_s, bm_s = gm[seg], bm[seg]
    m_en, m_ex = np.floor(gm_s + bm_s * s_en), np.floor(gm_s + bm_s * s_ex)
    two = np.flatnonzero(m_ex != m_en)
    seg, k, m = np.r_[seg, seg[two]], np.r_[k, k[two]], np.r_[m_en, m_ex[two]]
    gm_s, bm_s = np.r_[gm_s, gm_s[two]], np.r_[bm_s, bm_s[two]]
    s0, ib = (m - gm_s) / bm_s, 1.0 / bm_s
    s_en = np.minimum(np.r_[s_en, s_en[two]], np.maximum(s0, s0 + ib))
    s_ex = np.maximum(np.r_[s_ex, s_ex[two]], np.minimum(s0, s0 + ib))
    keep = np.flatnonzero(s_en >= s_ex)
    seg, k, m = seg[keep], k[keep], m[keep]
    vm = v_major[seg]
    rows = np.clip(np.where(vm, k, m), 0, grid[0] - 1).astype(np.intp)
    cols = np.clip(np.where(vm, m, k), 0, grid[1] - 1).astype(np.intp)
    return seg, rows, cols, s_en[keep], s_ex[keep]


def _triangle_hit(
    q0: np.ndarray,
    gx: np.ndarray,
    gy: np.ndarray,
    keep: np.ndarray,
    side: float,
    x0: np.ndarray,
    y0: np.ndarray,
    au: np.ndarray,
    av: np.ndarray,
    s_en: np.ndarray,
    s_ex: np.ndarray,
) -> np.ndarray:
    """Solve q0 + gx x(s) + gy y(s) = s on one triangle per pair; -inf where no hit in the cell."""
    num = q0 + gx * x0 + gy * y0
    den = 1.0 - gx * au - gy * av
    solvable = np.abs(den) > 1e-12
    s = num / np.where(solvable, den, 1.0)
    inside = (s <= s_en * (1 + _EPS_S)) & (s >= s_ex * (1 - _EPS_S))
    diag = side * ((x0 - y0) + (au - av) * s) >= -_EPS_PX
    return np.where(keep & solvable & inside & diag, s, -np.inf)


def cell_hits(
    q: np.ndarray,
    rel: float,
    p: tuple[np.ndarray, np.ndarray],
    a: tuple[np.ndarray, np.ndarray],
    rows: np.ndarray,
    cols: np.ndarray,
    s_en: np.ndarray,
    s_ex: np.ndarray,
) -> np.ndarray:
    """(P,) inverse depth of the nearest hit of each (trace, cell) pair, -inf for none.

    p, a: (u, v) component arrays (P,) of each pair's trace; rows, cols: the cell.
    """
    w = q.shape[1]
    qf = q.ravel()
    f = rows * w + cols
    qa, qb, qc, qd = qf[f], qf[f + 1], qf[f + w], qf[f + w + 1]
    args = (p[0] - cols, p[1] - rows, a[0], a[1], s_en, s_ex)
    upper = _triangle_hit(qa, qb - qa, qd - qb, triangle_keep(qa, qb, qd, rel), 1.0, *args)
    lower = _triangle_hit(qa, qd - qc, qc - qa, triangle_keep(qa, qd, qc, rel), -1.0, *args)
    return np.maximum(upper, lower)


class ScreenSpaceCaster:
    """Fast exact first-hit caster against a ``GridMesh`` (any ray origin)."""

    name = "fast"

    def __init__(self, mesh: GridMesh, tile: int = TILE) -> None:
        self.mesh, self.tile = mesh, tile
        self._tmax, self._tmin = tile_bounds(mesh.inv_depth, tile)
        self._s_range = (float(self._tmin.min()), float(self._tmax.max()))

    def _candidate_segments(self, p, a, s_near, s_far) -> tuple[np.ndarray, ...]:
        """Coarse walk over tiles; keep (ray, tile) pairs whose s-range meets the tile's q-range."""
        seg, r, c, s_en, s_ex = walk_cells(p, a, s_near, s_far, self.tile, self._tmax.shape)
        flat = r * self._tmax.shape[1] + c
        hi, lo = self._tmax.ravel()[flat], self._tmin.ravel()[flat]
        keep = np.flatnonzero((s_ex <= hi) & (s_en >= lo))
        return seg[keep], np.minimum(s_en[keep], hi[keep]), np.maximum(s_ex[keep], lo[keep])

    def cast(self, origin: np.ndarray, dirs: np.ndarray, t_max: float) -> np.ndarray:
        """(3,) origin + (N, 3) dirs (camera frame) -> (N,) float32 distance (m), inf = miss."""
        origin, dirs = parse_rays(origin, dirs, t_max)
        out = np.full(len(dirs), np.inf, np.float32)
        lo, hi = self._s_range
        if not np.isfinite(lo) or hi <= 0 or len(dirs) == 0:
            return out
        q = self.mesh.inv_depth
        s_bounds = (lo * (1 - _EPS_S), hi * (1 + _EPS_S))
        tr = image_traces(origin, dirs, self.mesh.K, q.shape, (0.0, t_max), s_bounds)
        idx = np.flatnonzero(tr.ok)
        p, a = (tr.p_inf[idx, 0], tr.p_inf[idx, 1]), (tr.slope[idx, 0], tr.slope[idx, 1])
        seg, s_en, s_ex = self._candidate_segments(p, a, tr.s_near[idx], tr.s_far[idx])
        idx, p, a = idx[seg], (p[0][seg], p[1][seg]), (a[0][seg], a[1][seg])
        seg, r, c, s_en, s_ex = walk_cells(p, a, s_en, s_ex, 1, (q.shape[0] - 1, q.shape[1] - 1))
        pair_p, pair_a = (p[0][seg], p[1][seg]), (a[0][seg], a[1][seg])
        s_hit = cell_hits(q, self.mesh.max_rel_jump, pair_p, pair_a, r, c, s_en, s_ex)
        best = np.full(len(dirs), -np.inf)
        np.maximum.at(best, idx[seg], s_hit)
        hit = np.flatnonzero(best > 0)
        t = s_to_t(best[hit], origin, dirs[hit, 2])
        ok = (t >= 0) & (t <= t_max)
        out[hit[ok]] = t[ok]
        return out
