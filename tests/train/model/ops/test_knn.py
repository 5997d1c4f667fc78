"""sparse_knn against an independent brute-force reference (exact indices and offsets)."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from train.model.ops import sparse_knn


def brute_force_knn(valid: Tensor, k: int = 4, pixels: Tensor | None = None) -> Tensor:
    """Reference: valid [H, W] bool -> neighbour raster indices [k, P] of ``pixels`` [P] (all by
    default), by comparing every pixel with every valid point, in chunks of pixels.

    Ranking: squared distance ascending, then raster index descending; fewer than k points ->
    the last found repeats; no point -> the pixel itself.
    """
    height, width = valid.shape
    num = height * width
    pixels = torch.arange(num) if pixels is None else pixels
    points = torch.nonzero(valid.reshape(-1)).squeeze(1)
    if points.numel() == 0:
        return pixels.expand(k, -1).clone()
    out = torch.empty(k, pixels.numel(), dtype=torch.long)
    for start in range(0, pixels.numel(), 1024):
        chunk = pixels[start : start + 1024]
        out[:, start : start + 1024] = _brute_chunk(chunk, points, width, k).T
    return out


def _brute_chunk(chunk: Tensor, points: Tensor, width: int, k: int) -> Tensor:
    """[P] pixels -> [P, k] neighbours; exact integer keys d2 * 2^20 + (2^20 - 1 - index)."""
    dx = (points % width).float()[None, :] - (chunk % width).float()[:, None]
    dy = (points // width).float()[None, :] - (chunk // width).float()[:, None]
    d2 = dx * dx + dy * dy  # integers < 2^24: exact in float32
    found = min(k, points.numel())
    kth = torch.topk(d2, found, dim=1, largest=False).values[:, -1:]
    rows, cols = torch.nonzero(d2 <= kth, as_tuple=True)
    key = d2[rows, cols].long() * 2**20 + (2**20 - 1 - points[cols])
    order = torch.argsort(rows * 2**44 + key)
    rows, cols = rows[order], cols[order]
    first = torch.searchsorted(rows, torch.arange(chunk.numel()))
    pick = first[:, None] + torch.arange(k).clamp(max=found - 1)[None, :]
    return points[cols[pick]]


def check_against_reference(valid: Tensor, k: int = 4, pixels: Tensor | None = None) -> None:
    """Assert sparse_knn == brute force (indices and offsets) for valid [H, W]."""
    width = valid.shape[1]
    result = sparse_knn(valid[None, None], k)
    expected = brute_force_knn(valid, k, pixels)
    pixels = torch.arange(valid.numel()) if pixels is None else pixels
    got = result.indices[0][:, pixels]
    assert torch.equal(got, expected)
    offsets = result.offsets[0][:, :, pixels]
    assert torch.equal(offsets[0], (expected % width - pixels % width).float())
    assert torch.equal(offsets[1], (expected // width - pixels // width).float())


@pytest.mark.parametrize("density", [0.002, 0.02, 0.05, 0.3, 0.9])
@pytest.mark.parametrize("seed", range(4))
def test_random_maps_match_brute_force(density: float, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    valid = torch.rand(37, 53, generator=gen) < density
    if seed % 2:
        valid[:20] = False  # empty band, as above the LiDAR's field of view
    check_against_reference(valid)


@pytest.mark.parametrize("k", [1, 2, 6])
def test_other_k(k: int) -> None:
    valid = torch.rand(24, 40, generator=torch.Generator().manual_seed(k)) < 0.05
    check_against_reference(valid, k=k)


def test_equal_distances_prefer_later_points() -> None:
    """Eight points at d^2 = 5 around the centre of a 5x5 image: the 4 latest in raster order
    win, latest first."""
    valid = torch.zeros(5, 5, dtype=torch.bool)
    ring = [(0, 1), (0, 3), (1, 0), (1, 4), (3, 0), (3, 4), (4, 1), (4, 3)]
    for y, x in ring:
        valid[y, x] = True
    centre = 2 * 5 + 2
    got = sparse_knn(valid[None, None]).indices[0, :, centre]
    assert got.tolist() == [4 * 5 + 3, 4 * 5 + 1, 3 * 5 + 4, 3 * 5 + 0]
    check_against_reference(valid)


def test_integer_lattice_ties() -> None:
    """Regular lattices create many equal distances everywhere."""
    valid = torch.zeros(30, 44, dtype=torch.bool)
    valid[::3, ::4] = True
    check_against_reference(valid)
    valid[1::6, 2::4] = True
    check_against_reference(valid)


@pytest.mark.parametrize("count", [1, 2, 3])
def test_fewer_points_than_k_repeat_the_last(count: int) -> None:
    valid = torch.zeros(8, 9, dtype=torch.bool)
    valid.view(-1)[torch.tensor([5, 40, 70][:count])] = True
    indices = sparse_knn(valid[None, None]).indices[0]
    assert torch.equal(indices[count:], indices[count - 1 : count].expand(4 - count, -1))
    check_against_reference(valid)


def test_no_points_gives_self_with_zero_offset() -> None:
    valid = torch.zeros(2, 1, 6, 7, dtype=torch.bool)
    valid[1, 0, 3, 3] = True
    result = sparse_knn(valid)
    assert torch.equal(result.indices[0], torch.arange(42).expand(4, -1))
    assert torch.equal(result.offsets[0], torch.zeros(2, 4, 42))
    assert torch.equal(result.indices[1], torch.full((4, 42), 3 * 7 + 3))


def test_batch_matches_single_images() -> None:
    gen = torch.Generator().manual_seed(7)
    density = torch.tensor([0.01, 0.1, 0.5]).view(3, 1, 1, 1)
    valid = torch.rand(3, 1, 20, 30, generator=gen) < density
    batched = sparse_knn(valid)
    for b in range(3):
        single = sparse_knn(valid[b : b + 1])
        assert torch.equal(batched.indices[b], single.indices[0])
        assert torch.equal(batched.offsets[b], single.offsets[0])


def test_kitti_like_full_resolution() -> None:
    """5% density at 256 x 1216 with an empty top band; brute force on a subset of rows
    (every 32nd row plus the rows around the band edge and the borders; the benchmark
    compares all pixels)."""
    gen = torch.Generator().manual_seed(0)
    height, width = 256, 1216
    valid = torch.zeros(height, width, dtype=torch.bool)
    valid[60:] = torch.rand(height - 60, width, generator=gen) < 0.06
    assert 0.04 < valid.float().mean() < 0.06
    rows = torch.cat([torch.arange(0, height, 32), torch.tensor([1, 58, 59, 60, 61, 255])])
    pixels = (rows[:, None] * width + torch.arange(width)[None, :]).reshape(-1)
    check_against_reference(valid, pixels=pixels)


@pytest.mark.parametrize(
    ("valid", "error"),
    [
        (torch.zeros(1, 1, 4, 4), TypeError),
        (torch.zeros(1, 4, 4, dtype=torch.bool), ValueError),
        (torch.zeros(1, 2, 4, 4, dtype=torch.bool), ValueError),
    ],
)
def test_bad_masks_raise(valid: Tensor, error: type[Exception]) -> None:
    with pytest.raises(error):
        sparse_knn(valid)


def test_bad_k_raises() -> None:
    with pytest.raises(ValueError, match="k must be"):
        sparse_knn(torch.ones(1, 1, 4, 4, dtype=torch.bool), k=0)
