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
_ROWS_PER_STEP = 2  # rows visited per side per step (tuned on CPU at 256 x 1216)


class KnnResult(NamedTuple):
    """Neighbours of every pixel: offsets [B, 2, k, H*W] float32 (dx, dy = neighbour - pixel,
    pixels), indices [B, k, H*W] int64 (raster index y * W + x of the neighbour)."""

    offsets: Tensor
    indices: Tensor


class _Table(NamedTuple):
    """Valid points of one image, arranged for the row search."""

    rows: Tensor  # [R] non-empty row numbers, ascending
    row_keys: Tensor  # [(R + 1) * W, k] partial keys dx^2 * N + (N - 1 - index) of the k nearest
    # points of each row per column; the last W rows are all sentinel (padding)
    num_pixels: int
    k: int


def _row_windows(points: Tensor, row_start: Tensor, rows: Tensor, width: int, k: int) -> Tensor:
    """First point (index into points) of the k-nearest window of each (non-empty row, column).

    In 1-D the k nearest points of x are a contiguous run of the sorted points; the run starting
    at i + 1 beats the one at i exactly when point i + k wins over point i, i.e. when
    x_i + x_(i+k) <= 2x (ties go to the later point). These sums increase with i, so the window
    start is a count, taken here from a cumulative histogram. Returns [R, W] int64.
    """
    row_of = points // width
    nxt = torch.arange(points.numel(), device=points.device) + k
    has_next = nxt < points.numel()
    has_next[has_next.clone()] &= row_of[nxt[has_next]] == row_of[has_next]
    first = torch.nonzero(has_next).squeeze(1)
    sums = points[first] % width + points[first + k] % width
    rank = torch.searchsorted(rows, row_of[first])
    hist = torch.zeros(rows.numel() * 2 * width, dtype=torch.long, device=points.device)
    hist.index_add_(0, rank * 2 * width + sums, torch.ones_like(sums))
    counts = hist.view(rows.numel(), 2 * width).cumsum(1)[:, 0::2]
    return row_start[rows][:, None] + counts


def _build_table(valid: Tensor, k: int) -> tuple[_Table, Tensor]:
    """valid [H, W] bool -> (row table, points [M] raster indices ascending)."""
    height, width = valid.shape
    num = height * width
    flat = valid.reshape(-1)
    points = torch.nonzero(flat).squeeze(1)
    prefix = torch.zeros(height + 1, dtype=torch.long, device=valid.device)
    prefix[1:] = torch.cumsum(valid.sum(1), 0)
    row_start, row_end = prefix[:-1], prefix[1:]
    rows = torch.nonzero(row_end > row_start).squeeze(1)
    cand = _row_windows(points, row_start, rows, width, k)[..., None]
    cand = cand + torch.arange(k, device=valid.device)
    ok = cand < row_end[rows][:, None, None]
    point = points[cand.clamp(max=points.numel() - 1)]
    cols = torch.arange(width, device=valid.device)[None, :, None]
    key = (point % width - cols) ** 2 * num + (num - 1 - point)
    key = torch.where(ok, key, torch.full_like(key, _SENTINEL))
    padding = torch.full((width, k), _SENTINEL, dtype=torch.long, device=valid.device)
    return _Table(rows, torch.cat([key.view(-1, k), padding]), num, k), points


def _side_keys(table: _Table, pos: Tensor, py: Tensor, px: Tensor, kth_d2: Tensor) -> Tensor:
    """Keys [A, S*k] of rows rows[pos] (pos [A, S]) for pixels (py, px) [A].

    Rows that do not exist or lie farther than the current k-th best distance (kth_d2 [A]) give
    sentinel keys (they read the all-sentinel padding row of the table).
    """
    count = table.rows.numel()
    width = table.row_keys.shape[0] // (count + 1)
    num = table.num_pixels
    dy = table.rows[pos.clamp(0, count - 1)] - py[:, None]
    use = (pos >= 0) & (pos < count) & (dy * dy <= kth_d2[:, None])
    flat = torch.where(use, pos, count) * width + px[:, None]
    keys = table.row_keys.index_select(0, flat.view(-1)).view(pos.shape[0], -1, table.k)
    return (keys + (dy * dy * num)[..., None]).view(pos.shape[0], -1)


def _next_live(table: _Table, pos: Tensor, py: Tensor, kth_d2: Tensor) -> Tensor:
    """Whether row rows[pos] exists and may still hold a point ranking within the top k."""
    count = table.rows.numel()
    dy = table.rows[pos.clamp(0, count - 1)] - py
    return (pos >= 0) & (pos < count) & (dy * dy <= kth_d2)


def _search(table: _Table, height: int, width: int) -> Tensor:
    """Top-k keys [N, k] (ascending; sentinel where fewer than k points exist) for all pixels."""
    device = table.rows.device
    num, k = table.num_pixels, table.k
    pix = torch.arange(num, device=device)
    py, px = pix // width, pix % width
    below = torch.searchsorted(table.rows, py)
    above = below - 1
    step = torch.arange(_ROWS_PER_STEP, device=device)
    best = torch.full((num, k), _SENTINEL, dtype=torch.long, device=device)
    out = best.clone()
    while pix.numel() > 0:
        kth_d2 = best[:, -1] // num
        keys_b = _side_keys(table, below[:, None] + step, py, px, kth_d2)
        keys_a = _side_keys(table, above[:, None] - step, py, px, kth_d2)
        merged = torch.cat([best, keys_b, keys_a], dim=1)
        best = torch.topk(merged, k, dim=1, largest=False, sorted=True).values
        kth_d2 = best[:, -1] // num
        below, above = below + _ROWS_PER_STEP, above - _ROWS_PER_STEP
        done = ~(_next_live(table, below, py, kth_d2) | _next_live(table, above, py, kth_d2))
        out[pix[done]] = best[done]
        keep = torch.nonzero(~done).squeeze(1)
        pix, px, py, below, above, best = (t[keep] for t in (pix, px, py, below, above, best))
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
    if not bool(valid.any()):
        return torch.arange(num, device=valid.device).expand(k, num).clone()
    table, _ = _build_table(valid, k)
    return _decode(_search(table, height, width), num).T.contiguous()


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
