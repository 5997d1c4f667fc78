"""Crops and flips keep rgb, every depth map and K one consistent camera; jitter is rgb-only."""

from __future__ import annotations

import numpy as np
import pytest

from data_schemas.errors import ConfigError
from train.datasets.augment import (
    AugmentConfig,
    augment,
    bottom_center_crop,
    center_crop,
    hflip,
    parse_crop,
    pca_jitter,
    random_crop,
)
from train.datasets.sample import Sample
from train.datasets.sampling import sample_rng
from train.datasets.synthetic import plane_depth

H, W = 48, 96
K0 = np.array([[70.0, 0.0, 30.5], [0.0, 70.0, 20.0], [0.0, 0.0, 1.0]], np.float32)
NORMAL = np.array([0.35, -1.0, -0.1])  # tilted left-right: the depth map is asymmetric in u


def scene(with_teacher: bool = True) -> Sample:
    """rgb encodes the source pixel (u in R, v in G); target is the plane's depth, teacher
    its disparity (as a relative teacher would give)."""
    v, u = np.mgrid[0:H, 0:W]
    rgb = np.stack([u, v, np.full_like(u, 7)], axis=-1).astype(np.uint8)
    target = plane_depth(K0, NORMAL, -1.6, (H, W))
    sparse = np.where((u % 5 == 0) & (v % 3 == 0), target, 0.0).astype(np.float32)
    teacher = np.where(target > 0, 1.0 / np.maximum(target, 1e-3), 0.0).astype(np.float32)
    return Sample(rgb, sparse, target, K0.copy(), "scene/0001.png",
                  teacher if with_teacher else None)


def check_consistent(out: Sample, source: Sample) -> None:
    u0 = out.rgb[..., 0].astype(int)
    v0 = out.rgb[..., 1].astype(int)
    flipped = u0[0, 0] > u0[0, -1]
    np.testing.assert_array_equal(out.target, source.target[v0, u0])
    np.testing.assert_array_equal(out.sparse, source.sparse[v0, u0])
    if source.teacher is None:
        assert out.teacher is None
    else:
        assert out.teacher is not None
        np.testing.assert_array_equal(out.teacher, source.teacher[v0, u0])
    normal = NORMAL * np.array([-1.0, 1.0, 1.0]) if flipped else NORMAL
    np.testing.assert_allclose(out.target, plane_depth(out.K, normal, -1.6, out.hw), rtol=1e-4)


def test_hflip_mirrors_every_map_and_the_intrinsics() -> None:
    source = scene()
    out = hflip(source)
    assert out.K[0, 2] == pytest.approx(W - 1 - K0[0, 2])
    np.testing.assert_array_equal(out.target, source.target[:, ::-1])
    np.testing.assert_array_equal(out.sparse, source.sparse[:, ::-1])
    assert not np.allclose(out.target, source.target)  # the pattern really is asymmetric
    check_consistent(out, source)


@pytest.mark.parametrize("seed", range(12))
def test_random_crop_and_flip_keep_the_sample_consistent(seed: int) -> None:
    source = scene()
    cfg = AugmentConfig(flip_prob=0.5, jitter_std=0.0)
    out, colour = augment(source, (32, 64), cfg, sample_rng(seed, 0, source.key))
    assert out.hw == (32, 64)
    assert not colour.any()
    check_consistent(out, source)


def test_both_flip_outcomes_occur() -> None:
    source = scene()
    flips = set()
    for seed in range(16):
        out, _ = augment(source, (32, 64), AugmentConfig(), sample_rng(seed, 0, source.key))
        flips.add(bool(out.rgb[0, 0, 0] > out.rgb[0, -1, 0]))
    assert flips == {True, False}


@pytest.mark.parametrize("top_min", [0, 10])
def test_random_crop_top_offset_range(top_min: int) -> None:
    source = scene()
    tops = set()
    for seed in range(64):
        out = random_crop(source, (32, 64), sample_rng(seed, 0, source.key), top_min)
        tops.add(round(float(K0[1, 2] - out.K[1, 2])))
        check_consistent(out, source)
    assert tops == set(range(min(top_min, H - 32), H - 32 + 1))


def test_crops_without_teacher_keep_none() -> None:
    check_consistent(hflip(center_crop(scene(with_teacher=False), (32, 64))),
                     scene(with_teacher=False))


def test_bottom_center_crop_takes_the_bottom_rows() -> None:
    out = bottom_center_crop(scene(), (32, 64))
    assert out.K[1, 2] == pytest.approx(K0[1, 2] - (H - 32))
    assert out.K[0, 2] == pytest.approx(K0[0, 2] - 16)
    assert int(out.rgb[-1, 0, 1]) == H - 1
    check_consistent(out, scene())


def test_crop_outside_the_sample_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"crop 64x64 at \(-8, 16\) does not fit sample "
                                          r"scene/0001.png of 48x96"):
        center_crop(scene(), (64, 64))


def test_center_crop_shifts_the_principal_point() -> None:
    out = center_crop(scene(), (32, 64))
    assert out.K[0, 2] == pytest.approx(K0[0, 2] - 16)
    assert out.K[1, 2] == pytest.approx(K0[1, 2] - 8)
    check_consistent(out, scene())


def test_jitter_changes_rgb_only_and_is_reproducible() -> None:
    source = scene()
    cfg = AugmentConfig(flip_prob=0.0, jitter_std=0.5)
    a, colour_a = augment(source, (H, W), cfg, sample_rng(3, 1, source.key))
    b, colour_b = augment(source, (H, W), cfg, sample_rng(3, 1, source.key))
    np.testing.assert_array_equal(colour_a, colour_b)
    rgb_a = pca_jitter(source.rgb, sample_rng(3, 1, source.key), 0.5)
    assert np.abs(rgb_a * 255 - source.rgb).max() > 1.0
    np.testing.assert_array_equal(a.target, source.target)
    np.testing.assert_array_equal(a.sparse, source.sparse)
    np.testing.assert_array_equal(a.K, source.K)
    assert rgb_a.min() >= 0.0 and rgb_a.max() <= 1.0


def test_pca_jitter_off_is_identity() -> None:
    rgb = scene().rgb
    out = pca_jitter(rgb, np.random.default_rng(0), 0.0)
    np.testing.assert_allclose(out * 255.0, rgb, atol=1e-4)


def test_parse_crop() -> None:
    assert parse_crop(None, (352, 1216)) == (256, 1216)
    assert parse_crop(None, (100, 200)) == (96, 192)
    assert parse_crop((64, 128), (96, 160)) == (64, 128)
    with pytest.raises(ValueError, match="larger than the store canvas 96x160"):
        parse_crop((128, 128), (96, 160))
    with pytest.raises(ValueError, match="multiples of 32"):
        parse_crop((60, 128), (96, 160))
    with pytest.raises(ValueError, match="smaller than the network"):
        parse_crop(None, (20, 200))
