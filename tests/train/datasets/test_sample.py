"""The one Sample type and the Batch: BP-Net normalisation with the colour jitter applied in
one pass, teacher maps, padding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from train.datasets.sample import Sample, collate, pad_batch, stack, stack_views
from train.model.inputs import RGB_MEAN, RGB_STD


def test_finished_rgb_matches_the_reference_formula() -> None:
    rng = np.random.default_rng(0)
    rgbs = [rng.integers(0, 256, (4, 6, 3), dtype=np.uint8) for _ in range(2)]
    offsets = [np.array([0.3, -0.2, 0.0], np.float32), np.zeros(3, np.float32)]
    maps = np.zeros((4, 6), np.float32)
    got = collate([Sample(r, maps, maps, np.eye(3, dtype=np.float32), "k") for r in rgbs],
                  offsets).rgb.numpy()
    for rgb, offset, out in zip(rgbs, offsets, got, strict=True):
        jittered = np.clip(rgb / 255.0 + offset, 0, 1) * 255.0
        expected = ((jittered - np.array(RGB_MEAN)) / np.array(RGB_STD)).transpose(2, 0, 1)
        np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_raw_batch_keeps_the_loader_dtypes_and_finishes_on_the_way_to_a_device() -> None:
    depth = np.array([[0, 1, 256, 65535]], np.uint16)
    sample = Sample(np.full((1, 4, 3), 7, np.uint8), depth, depth[:, ::-1],
                    np.eye(3, dtype=np.float32), "k")
    raw = stack([sample], [np.array([0.5, 0.0, -0.5], np.float32)])
    assert raw.raw and raw.rgb.dtype == torch.uint8 and raw.rgb.shape == (1, 1, 4, 3)
    assert raw.sparse.dtype == torch.uint16 and raw.sparse.shape == (1, 1, 1, 4)
    done = raw.to("cpu")
    assert not done.raw and done.finish() is done
    np.testing.assert_array_equal(done.sparse[0, 0, 0].numpy(), [0, 1 / 256, 1, 65535 / 256])
    np.testing.assert_array_equal(done.target[0, 0, 0].numpy(), [65535 / 256, 1, 1 / 256, 0])
    rgb = np.clip(np.array([7 + 127.5, 7, 7 - 127.5]), 0, 255)
    np.testing.assert_allclose(done.rgb[0, :, 0, 0].numpy(),
                               (rgb - np.array(RGB_MEAN)) / np.array(RGB_STD), rtol=1e-6)
    with pytest.raises(ValueError, match="mixes sparse dtypes"):
        stack([sample, Sample(sample.rgb, depth.astype(np.float32), depth, sample.K, "f")])


def test_collate_shapes_and_keys() -> None:
    views = [Sample(np.zeros((4, 6, 3), np.uint8), np.ones((4, 6), np.float32),
                        np.full((4, 6), 2.0, np.float32), np.eye(3, dtype=np.float32), f"k{i}")
             for i in range(3)]
    batch = collate(views, epoch=2, index=7)
    assert batch.rgb.shape == (3, 3, 4, 6) and batch.sparse.shape == (3, 1, 4, 6)
    assert batch.keys == ("k0", "k1", "k2") and (batch.epoch, batch.index) == (2, 7)
    assert batch.rgb.is_contiguous() and float(batch.target.mean()) == 2.0


def _sample(key: str, teacher: bool) -> Sample:
    rng = np.random.default_rng(len(key))
    return Sample(rng.integers(0, 256, (4, 6, 3), dtype=np.uint8),
                  rng.random((4, 6), dtype=np.float32), rng.random((4, 6), dtype=np.float32),
                  np.array([[5.0, 0, 2.5], [0, 5.0, 1.5], [0, 0, 1]], np.float32), key,
                  rng.random((4, 6), dtype=np.float32) if teacher else None)


def test_collate_stacks_teacher_maps_only_when_every_sample_has_one() -> None:
    with_teacher = [_sample("a", True), _sample("bb", True)]
    batch = collate(with_teacher)
    assert batch.teacher is not None and batch.teacher.shape == (2, 1, 4, 6)
    np.testing.assert_array_equal(batch.teacher[1, 0].numpy(), with_teacher[1].teacher)
    assert collate([_sample("a", False)]).teacher is None
    with pytest.raises(ValueError, match="mixes samples with and without teacher"):
        collate([_sample("a", True), _sample("b", False)])


def test_pad_batch_keeps_the_camera() -> None:
    batch = collate([_sample("a", True)])
    padded = pad_batch(batch, (8, 10))
    assert padded.rgb.shape == (1, 3, 8, 10) and padded.teacher is not None
    np.testing.assert_array_equal(padded.target[..., 2:6, 2:8], batch.target)
    np.testing.assert_array_equal(padded.rgb[..., 2:6, 2:8], batch.rgb)
    assert float(padded.rgb[..., :2, :].abs().sum()) == 0.0  # the mean colour
    assert float(padded.sparse.sum()) == pytest.approx(float(batch.sparse.sum()))
    np.testing.assert_allclose(padded.K[0, :2, 2].numpy(), [2.5 + 2, 1.5 + 2])
    # a pixel keeps its ray: (u - cx) is unchanged by the shift
    assert float(padded.K[0, 0, 2]) - 2 == float(batch.K[0, 0, 2])


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float16])
def test_stack_views_equals_numpy_stack_on_crops_and_mirrored_crops(dtype: type) -> None:
    frame = (np.random.default_rng(1).random((10, 37, 3)) * 200).astype(dtype)
    mirrored, plain = frame[2:8, ::-1][:, 3:30], frame[1:7, 4:31]
    for views in ([mirrored, plain], [plain, mirrored], [mirrored[..., 0], plain[..., 1]]):
        got = stack_views(views)
        assert got.dtype == np.dtype(dtype) and got.flags.c_contiguous
        np.testing.assert_array_equal(got, np.stack(views))
    with pytest.raises(ValueError, match="cannot stack maps of shapes"):
        stack_views([plain, plain[1:]])
