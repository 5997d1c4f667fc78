"""Batch assembly: BP-Net normalisation with the colour jitter applied in one pass."""

from __future__ import annotations

import numpy as np

from train.data.augment import SampleView
from train.data.batch import collate, rgb_tensor
from train.model.inputs import RGB_MEAN, RGB_STD


def test_rgb_tensor_matches_the_reference_formula() -> None:
    rng = np.random.default_rng(0)
    rgbs = [rng.integers(0, 256, (4, 6, 3), dtype=np.uint8) for _ in range(2)]
    offsets = [np.array([0.3, -0.2, 0.0], np.float32), np.zeros(3, np.float32)]
    got = rgb_tensor(rgbs, offsets)
    for rgb, offset, out in zip(rgbs, offsets, got, strict=True):
        jittered = np.clip(rgb / 255.0 + offset, 0, 1) * 255.0
        expected = ((jittered - np.array(RGB_MEAN)) / np.array(RGB_STD)).transpose(2, 0, 1)
        np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_collate_shapes_and_keys() -> None:
    views = [SampleView(np.zeros((4, 6, 3), np.uint8), np.ones((4, 6), np.float32),
                        np.full((4, 6), 2.0, np.float32), np.eye(3, dtype=np.float32), f"k{i}")
             for i in range(3)]
    batch = collate(views, epoch=2, index=7)
    assert batch.rgb.shape == (3, 3, 4, 6) and batch.sparse.shape == (3, 1, 4, 6)
    assert batch.keys == ("k0", "k1", "k2") and (batch.epoch, batch.index) == (2, 7)
    assert batch.rgb.is_contiguous() and float(batch.target.mean()) == 2.0
