"""Crops and flips keep rgb, every depth map and K one consistent camera; jitter is rgb-only."""

from __future__ import annotations

import numpy as np
import pytest

from data_schemas.errors import ConfigError
from train.datasets.augment import (
    AugmentConfig,
    augment,
    bottom_center_crop,
    brightness_contrast,
    center_crop,
    frame_lidar,
    gamma,
    grey,
    hflip,
    lidar_dropout,
    lidar_noise,
    parse_crop,
    pca_jitter,
    pca_noise,
    pixel_subsample,
    random_crop,
    released_pca_jitter,
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


# -- the released order, the teacher-flip switch, DMD3C++'s colour and LiDAR ops ---------------
def _window(out: Sample) -> tuple[int, int]:
    """(top, left) of the output window in the (possibly flipped) source frame, from K."""
    return round(float(K0[1, 2] - out.K[1, 2])), round(float(K0[0, 2] - out.K[0, 2]))


@pytest.mark.parametrize("seed", range(8))
def test_teacher_flips_with_the_image_by_default(seed: int) -> None:
    source = scene()
    out, _ = augment(source, (32, 64), AugmentConfig(jitter_std=0.0),
                     sample_rng(seed, 0, source.key))
    check_consistent(out, source)  # rgb, maps and teacher all from the same mirrored pixels


def test_flip_teacher_false_pairs_the_maps_as_the_release_does() -> None:
    """The release flips rgb, LiDAR and GT of the whole frame (not the teacher), then takes
    the same window [top, left] of every map; transcribed here."""
    source, flipped_seen = scene(), 0
    for seed in range(16):
        rng = sample_rng(seed, 0, source.key)
        out, _ = augment(source, (32, 64), AugmentConfig(jitter_std=0.0), rng,
                         flip_teacher=False)
        assert out.teacher is not None and source.teacher is not None
        if out.rgb[0, 0, 0] < out.rgb[0, -1, 0]:  # not flipped: as the default
            check_consistent(out, source)
            continue
        flipped_seen += 1
        top = round(float(K0[1, 2] - out.K[1, 2]))
        left = W - 1 - int(out.rgb[0, 0, 0])  # the window's left column in the flipped frame
        mirrored = source.rgb[:, ::-1]
        np.testing.assert_array_equal(out.rgb, mirrored[top:top + 32, left:left + 64])
        np.testing.assert_array_equal(out.target, source.target[:, ::-1][top:top + 32,
                                                                         left:left + 64])
        np.testing.assert_array_equal(out.teacher, source.teacher[top:top + 32, left:left + 64])
        assert out.K[0, 2] == pytest.approx((W - 1 - K0[0, 2]) - left)
    assert flipped_seen > 3


def release_pca_jitter(rgb: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """augs.compute_pca + add_pca_jitter of the release, transcribed (rgb float32 0..255,
    ``weights`` = the randn(3) * 0.1 draw)."""
    data = (rgb.reshape(-1, 3) / 255.0).astype(np.float32)
    e_vals, e_vecs = np.linalg.eigh(np.cov(data.T))
    pca = np.sqrt(e_vals) * e_vecs
    out = np.copy(rgb).astype(np.float32) / 255.0
    out = out + (pca * weights).sum(axis=1)
    np.clip(out, 0.0, 1.0, out=out)
    return (out * 255).astype(np.uint8)


@pytest.mark.parametrize("seed", range(4))
def test_frame_jitter_equals_the_released_jitter(seed: int) -> None:
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (40, 70, 3), dtype=np.uint8)
    rgb[..., 1] = rgb[..., 0] // 2 + rgb[..., 1] // 2  # correlated channels, all eigenvalues > 0
    draw = sample_rng(seed, 0, "x")
    ours = released_pca_jitter(rgb, draw, 0.1)
    weights = sample_rng(seed, 0, "x").standard_normal(3) * 0.1
    np.testing.assert_array_equal(ours, release_pca_jitter(rgb.astype(np.float32), weights))
    assert ours.dtype == np.uint8 and (ours != rgb).any()


def test_frame_jitter_happens_before_the_crop() -> None:
    source = scene()
    cfg = AugmentConfig(flip_prob=0.0, jitter_std=0.3, jitter_on="frame")
    out, colour = augment(source, (32, 64), cfg, sample_rng(5, 0, source.key))
    assert not colour.any()  # nothing left for the batch pass
    top, left = _window(out)
    whole = released_pca_jitter(source.rgb, sample_rng(5, 0, source.key), 0.3)
    np.testing.assert_array_equal(out.rgb, whole[top:top + 32, left:left + 64])


def test_grey_brightness_contrast_gamma_as_dmd3cpp() -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (6, 9, 3), dtype=np.uint8)
    g = grey(rgb)
    expected = (0.299 * rgb[:, :, 0] + 0.587 * rgb[:, :, 1] + 0.114 * rgb[:, :, 2]).astype(
        np.uint8)
    np.testing.assert_array_equal(g, np.stack([expected] * 3, axis=2))
    bc = brightness_contrast(rgb, 1.1, 0.9)
    f = rgb.astype(np.float32) * 1.1
    mean = f.mean(axis=(0, 1), keepdims=True)
    np.testing.assert_array_equal(bc, np.clip((f - mean) * 0.9 + mean, 0, 255))
    np.testing.assert_array_equal(gamma(rgb, 0.8), np.clip(
        (np.power(rgb.astype(np.float32) / 255.0, 0.8) * 255.0).astype(np.float32), 0, 255))


def test_colour_ops_fire_at_their_rates() -> None:
    source = scene()
    cfg = AugmentConfig(flip_prob=0.0, jitter_std=0.0, grey_prob=0.2)
    greys = 0
    for seed in range(400):
        out, _ = augment(source, (H, W), cfg, sample_rng(seed, 0, source.key))
        greys += bool((out.rgb[..., 0] == out.rgb[..., 2]).all())
    assert 50 <= greys <= 110  # 80 expected (binomial sd 8)


def test_lidar_dropout_and_noise_touch_valid_points_only() -> None:
    rng = np.random.default_rng(1)
    sparse = np.where(rng.random((60, 80)) < 0.3, rng.uniform(2, 80, (60, 80)), 0).astype(
        np.float32)
    valid = sparse > 0
    dropped = lidar_dropout(sparse, np.random.default_rng(2), 0.3)
    assert not dropped[~valid].any() and (dropped[valid] == sparse[valid]).sum() > 0
    kept = (dropped[valid] > 0).mean()
    ratio = np.random.default_rng(2).random() * 0.3  # the frame's drop probability
    assert kept == pytest.approx(1 - ratio, abs=0.04)
    noisy = lidar_noise(sparse, np.random.default_rng(3), 0.35, 0.1, 200.0)
    assert not noisy[~valid].any() and noisy.dtype == np.float32
    moved = noisy[valid] != sparse[valid]
    assert moved.mean() == pytest.approx(0.35, abs=0.03)
    shift = (noisy - sparse)[valid][moved]
    assert shift.std() == pytest.approx(0.1, rel=0.1) and abs(shift.mean()) < 0.02


def test_dmd3cpp_augmentation_keeps_maps_consistent() -> None:
    source = scene()
    cfg = AugmentConfig(flip_prob=0.0, jitter_std=0.1, jitter_on="frame", grey_prob=1.0,
                        brightness_contrast_prob=1.0, gamma_prob=1.0, lidar_dropout_prob=1.0,
                        lidar_noise_prob=1.0)
    out, colour = augment(source, (32, 64), cfg, sample_rng(0, 0, source.key))
    assert out.rgb.dtype == np.float32 and not colour.any()
    assert (out.rgb[..., 0] == out.rgb[..., 1]).all()  # grey survived the later float ops
    top, left = _window(out)
    window = (slice(top, top + 32), slice(left, left + 64))
    assert source.teacher is not None and out.teacher is not None
    np.testing.assert_array_equal(out.target, source.target[window])
    np.testing.assert_array_equal(out.teacher, source.teacher[window])
    before = source.sparse[window]
    assert not out.sparse[before == 0].any()  # no point appears
    kept = out.sparse > 0
    noisy_or_clipped = out.sparse[kept] - np.minimum(before[kept], 200.0)  # clipped at 200 m
    assert np.abs(noisy_or_clipped).max() < 0.8  # noise of 0.1 m, no swaps


@pytest.mark.parametrize(("flip", "window"), [(False, (slice(None), slice(None))),
                                              (True, (slice(3, 40), slice(5, 70)))])
def test_pca_noise_samples_the_pixels_of_the_reshaped_view(flip: bool, window: tuple) -> None:
    """The subsample equals ``rgb.reshape(-1, 3)[::len // 4096]`` (the formula before the copy
    was avoided) on crops and flipped views, so the offset is bit-identical."""
    frame = np.random.default_rng(3).integers(0, 256, (48, 200, 3), dtype=np.uint8)
    view = (frame[:, ::-1] if flip else frame)[window]
    flat = view.reshape(-1, 3)
    step = max(1, len(flat) // 4096)
    np.testing.assert_array_equal(pixel_subsample(view), flat[::step])
    data = flat[::step].astype(np.float64) / 255.0
    rng = np.random.default_rng(9)
    weights = rng.standard_normal(3) * 0.1
    e_vals, e_vecs = np.linalg.eigh(np.cov(data.T))
    want = (np.sqrt(np.clip(e_vals, 0, None)) * e_vecs * weights).sum(axis=1).astype(np.float32)
    np.testing.assert_array_equal(pca_noise(view, np.random.default_rng(9), 0.1), want)


def test_lidar_ops_on_stored_units_equal_those_on_metres() -> None:
    rng = np.random.default_rng(4)
    stored = rng.integers(1, 20000, (40, 64), dtype=np.uint16)
    stored[rng.random(stored.shape) < 0.8] = 0
    metres = stored.astype(np.float32) / np.float32(256)
    cfg = AugmentConfig(lidar_dropout_prob=1.0, lidar_noise_prob=0.5)
    got = frame_lidar(stored, cfg, np.random.default_rng(1))
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, frame_lidar(metres, cfg, np.random.default_rng(1)))
    assert not np.array_equal(got, metres)
