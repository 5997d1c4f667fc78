"""Exact k nearest valid sparse pixels for every pixel, in the official BP-Net kernel's order.

Order contract (the released CUDA kernel scans valid points in raster order and inserts a point
before the first kept one whose distance is ``>=`` its own): neighbours are sorted by squared pixel
distance, and among equal distances the point with the *larger* raster index ranks first. With
fewer than ``k`` valid points the last found neighbour repeats. With no valid point at all (the
official kernel reads out of bounds there) we define the neighbour of a pixel as itself, offset 0.

Method (exact, cost independent of pixels x points): within one image row the points ranked for
pixel (y, x) are ranked by |dx| alone, so the row contributes at most the k points left of x and
the k points at or right of x; a prefix count of valid pixels finds them in O(1). Each pixel then
visits the non-empty rows below and above it, one of each per step, and stops on a side once
dy^2 exceeds its current k-th best distance (rows further out cannot contain a better point, and
``<=`` keeps equal-distance points with larger indices in play). Keys ``d2 * N + (N - 1 - index)``
make the tie order a plain integer minimum.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

_SENTINEL = 2**62


class KnnResult(NamedTuple):
    """Neighbours of every pixel: offsets [B, 2, k, H*W] float32 (dx, dy = neighbour - pixel,
    pixels), indices [B, k, H*W] int64 (raster index y * W + x of the neighbour)."""

    offsets: Tensor
    indices: Tensor


class _Table(NamedTuple):
    """Valid points of one image: raster indices, prefix counts, row ranges, non-empty rows."""

    points: Tensor  # [M] raster indices, ascending
    prefix: Tensor  # [N + 1] number of valid pixels before each raster index
    row_start: Tensor  # [H] index into points of the first point of each row
    row_end: Tensor  # [H] one past the last point of each row
    rows: Tensor  # [R] non-empty row numbers, ascending


def _build_table(valid: Tensor) -> _Table:
    """valid [H, W] bool -> lookup table of its points."""
    height, width = valid.shape
    flat = valid.reshape(-1)
    prefix = torch.zeros(flat.numel() + 1, dtype=torch.long, device=valid.device)
    prefix[1:] = torch.cumsum(flat, 0)
    row_bounds = prefix[torch.arange(height + 1, device=valid.device) * width]
    row_start, row_end = row_bounds[:-1], row_bounds[1:]
    rows = torch.nonzero(row_end > row_start).squeeze(1)
    return _Table(torch.nonzero(flat).squeeze(1), prefix, row_start, row_end, rows)


def _row_keys(
    table: _Table, row_pos: Tensor, live: Tensor, px: Tensor, py: Tensor, k: int, width: int
) -> Tensor:
    """Keys [A, 2k] of the k points left of and k points at/right of px in row rows[row_pos].

    row_pos [A] (may be out of range where ``live`` is False), px/py [A] pixel coordinates.
    """
    num = table.prefix.numel() - 1
    row = table.rows[row_pos.clamp(0, table.rows.numel() - 1)]
    first = table.prefix[row * width + px]
    span = torch.arange(-k, k, device=px.device)
    cand = first[:, None] + span[None, :]
    ok = (cand >= table.row_start[row, None]) & (cand < table.row_end[row, None]) & live[:, None]
    point = table.points[cand.clamp(0, table.points.numel() - 1)]
    d2 = (point % width - px[:, None]) ** 2 + (row - py)[:, None] ** 2
    key = d2 * num + (num - 1 - point)
    return torch.where(ok, key, torch.full_like(key, _SENTINEL))


def _side_live(table: _Table, row_pos: Tensor, py: Tensor, kth_d2: Tensor) -> Tensor:
    """Whether row rows[row_pos] exists and may still hold a point ranking within the top k."""
    inside = (row_pos >= 0) & (row_pos < table.rows.numel())
    row = table.rows[row_pos.clamp(0, max(table.rows.numel() - 1, 0))]
    return inside & ((row - py) ** 2 <= kth_d2)


def _search(table: _Table, height: int, width: int, k: int) -> Tensor:
    """Top-k keys [N, k] (ascending; sentinel where fewer than k points exist) for all pixels."""
    device = table.points.device
    num = height * width
    pix = torch.arange(num, device=device)
    py, px = pix // width, pix % width
    below = torch.searchsorted(table.rows, py)
    above = below - 1
    best = torch.full((num, k), _SENTINEL, dtype=torch.long, device=device)
    out = best.clone()
    huge = torch.full_like(py, _SENTINEL)
    live_b = _side_live(table, below, py, huge)
    live_a = _side_live(table, above, py, huge)
    while pix.numel() > 0:
        keys_b = _row_keys(table, below, live_b, px, py, k, width)
        keys_a = _row_keys(table, above, live_a, px, py, k, width)
        merged = torch.cat([best, keys_b, keys_a], dim=1)
        best = torch.topk(merged, k, dim=1, largest=False, sorted=True).values
        kth_d2 = best[:, -1] // num
        below, above = below + 1, above - 1
        live_b = live_b & _side_live(table, below, py, kth_d2)
        live_a = live_a & _side_live(table, above, py, kth_d2)
        done = ~(live_b | live_a)
        out[pix[done]] = best[done]
        keep = torch.nonzero(~done).squeeze(1)
        pix, px, py, below, above = (t[keep] for t in (pix, px, py, below, above))
        best, live_b, live_a = best[keep], live_b[keep], live_a[keep]
    return out


def _decode(keys: Tensor, num: int) -> Tensor:
    """Keys [N, k] -> raster indices [N, k]; missing slots repeat the previous one (slot 0 must
    exist)."""
    index = num - 1 - keys % num
    missing = keys >= _SENTINEL
    for slot in range(1, keys.shape[1]):
        index[:, slot] = torch.where(missing[:, slot], index[:, slot - 1], index[:, slot])
    return index


def _knn_single(valid: Tensor, k: int) -> Tensor:
    """valid [H, W] bool -> neighbour raster indices [k, H*W] int64."""
    height, width = valid.shape
    num = height * width
    table = _build_table(valid)
    if table.points.numel() == 0:
        return torch.arange(num, device=valid.device).expand(k, num).clone()
    return _decode(_search(table, height, width, k), num).T.contiguous()


def parse_valid_mask(valid: Tensor) -> Tensor:
    """Accept a [B, 1, H, W] bool mask; return it as [B, H, W] bool, or raise naming the problem."""
    if not isinstance(valid, Tensor):
        raise TypeError(f"valid must be a torch.Tensor, got {type(valid).__name__}")
    if valid.dtype != torch.bool:
        raise TypeError(f"valid must be a bool mask, got dtype {valid.dtype}")
    if valid.dim() != 4 or valid.shape[1] != 1:
        raise ValueError(f"valid must have shape [B, 1, H, W], got {tuple(valid.shape)}")
    return valid[:, 0]


def sparse_knn(valid: Tensor, k: int = 4) -> KnnResult:
    """k nearest valid pixels of every pixel (exact, official tie order, see module docstring).

    valid [B, 1, H, W] bool -> KnnResult(offsets [B, 2, k, H*W] float32, indices [B, k, H*W]).
    Not differentiable (the official op has no gradient either).
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    masks = parse_valid_mask(valid)
    height, width = masks.shape[-2:]
    with torch.no_grad():
        indices = torch.stack([_knn_single(m, k) for m in masks])
        pix = torch.arange(height * width, device=valid.device)
        dx = indices % width - pix % width
        dy = indices // width - pix // width
        offsets = torch.stack([dx, dy], dim=1).to(torch.float32)
    return KnnResult(offsets, indices)
