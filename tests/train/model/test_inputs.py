"""RGB normalisation constants and helper."""

from __future__ import annotations

import pytest
import torch

from train.model import RGB_MEAN, RGB_STD, normalize_rgb


def test_constants_are_the_kitti_statistics() -> None:
    assert RGB_MEAN == (90.9950, 96.2278, 94.3213)
    assert RGB_STD == (79.2382, 80.5267, 82.1483)


def test_normalize_rgb_maps_mean_to_zero_and_keeps_batch_shape() -> None:
    mean_image = torch.tensor(RGB_MEAN).view(3, 1, 1).expand(3, 4, 5)
    assert torch.allclose(normalize_rgb(mean_image), torch.zeros(3, 4, 5), atol=1e-6)
    batch = torch.full((2, 3, 4, 5), 255, dtype=torch.uint8)
    out = normalize_rgb(batch)
    assert out.dtype == torch.float32 and out.shape == (2, 3, 4, 5)
    expected = (255 - torch.tensor(RGB_MEAN)) / torch.tensor(RGB_STD)
    torch.testing.assert_close(out[1, :, 2, 3], expected)


def test_normalize_rgb_rejects_non_rgb() -> None:
    with pytest.raises(ValueError, match=r"\[\.\.\., 3, H, W\]"):
        normalize_rgb(torch.zeros(4, 8, 8))
