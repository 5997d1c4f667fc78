import math

import numpy as np
import pytest

from data_schemas.errors import ConfigError
from pipeline.camera import (
    IntrinsicsSampler,
    KITTI_K_1216x352,
    MetricRange,
    sample_intrinsics,
    sky_mask,
    teacher_to_metric_depth,
)


def test_sampled_intrinsics_are_seeded_and_in_range():
    sampler = IntrinsicsSampler(hfov_deg=(50.0, 70.0), principal_jitter=0.02)
    Ks = [sample_intrinsics((300, 400), np.random.default_rng(s), sampler) for s in range(50)]
    assert np.array_equal(Ks[0], sample_intrinsics((300, 400), np.random.default_rng(0), sampler))
    hfov = [math.degrees(2 * math.atan(200 / K[0, 0])) for K in Ks]
    assert 50 <= min(hfov) and max(hfov) <= 70 and max(hfov) - min(hfov) > 10
    cx0, cy0 = sampler.principal_point[0] * 399, sampler.principal_point[1] * 299
    for K in Ks:
        assert K[0, 0] == K[1, 1]
        assert abs(K[0, 2] - cx0) <= 8 + 1e-9 and abs(K[1, 2] - cy0) <= 6 + 1e-9


def test_default_sampling_is_centred_on_kittis_crop():
    """KITTI's 352 x 1216 crop: HFOV 80.2 deg, principal point (596.6, 149.9)."""
    Ks = np.stack([sample_intrinsics((352, 1216), np.random.default_rng(s)) for s in range(400)])
    hfov = np.degrees(2 * np.arctan(608 / Ks[:, 0, 0]))
    kitti_hfov = math.degrees(2 * math.atan(608 / KITTI_K_1216x352[0, 0]))
    assert np.median(hfov) == pytest.approx(kitti_hfov, abs=1.5) and 75 <= hfov.min()
    assert np.median(Ks[:, 1, 2]) == pytest.approx(KITTI_K_1216x352[1, 2], abs=3)
    assert np.median(Ks[:, 0, 2]) == pytest.approx(KITTI_K_1216x352[0, 2], abs=5)
    assert np.all(np.abs(Ks[:, 1, 2] - KITTI_K_1216x352[1, 2]) <= 0.02 * 352 + 1)


@pytest.mark.parametrize("kwargs", [{"hfov_deg": (90.0, 60.0)}, {"principal_point": (0.5, 1.5)},
                                    {"principal_jitter": -0.1}])
def test_bad_sampler_is_a_config_error(kwargs):
    with pytest.raises(ConfigError):
        IntrinsicsSampler(**kwargs)


def test_disparity_maps_to_sampled_metric_range_in_disparity_space():
    disp = np.tile(np.linspace(0.0, 10.0, 200, dtype=np.float32), (20, 1))
    cfg = MetricRange(
        near_m=(4.0, 4.0), far_m=(80.0, 80.0), quantiles=(0.0, 1.0), sky_rel_threshold=0.05
    )
    depth, sky = teacher_to_metric_depth(disp, "disparity", np.random.default_rng(0), cfg)
    assert sky[:, :10].all() and not sky[:, 10:].any()
    assert depth[sky].max() == 0.0
    valid = depth[0, 10:]
    assert np.all(np.diff(valid) <= 0)  # more disparity -> nearer
    assert valid.min() == pytest.approx(4.0, rel=1e-5) and valid.max() == pytest.approx(
        80.0, rel=1e-5
    )
    inv = 1.0 / valid  # affine in disparity
    assert np.allclose(np.diff(inv), np.diff(inv)[0], rtol=1e-3)


def test_metric_range_is_sampled_from_the_seed():
    disp = np.random.default_rng(1).uniform(1, 5, (30, 40)).astype(np.float32)
    a, _ = teacher_to_metric_depth(disp, "disparity", np.random.default_rng(0))
    b, _ = teacher_to_metric_depth(disp, "disparity", np.random.default_rng(0))
    c, _ = teacher_to_metric_depth(disp, "disparity", np.random.default_rng(1))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.dtype == np.float32 and np.all(np.isfinite(a))


def test_metric_teacher_is_identity_outside_sky():
    depth = np.full((10, 10), 7.5, np.float32)
    depth[0] = 500.0
    out, sky = teacher_to_metric_depth(depth, "depth", np.random.default_rng(0))
    assert sky[0].all() and not sky[1:].any()
    assert np.array_equal(out[1:], depth[1:]) and out[0].max() == 0


def test_teacher_errors():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="allowed: disparity, depth"):
        teacher_to_metric_depth(np.ones((4, 4)), "normals", rng)
    with pytest.raises(ValueError, match="NaN"):
        teacher_to_metric_depth(np.full((4, 4), np.nan), "disparity", rng)


def test_constant_disparity_is_all_sky():
    assert sky_mask(np.ones((5, 5)), "disparity").all()
    depth, _ = teacher_to_metric_depth(np.ones((5, 5)), "disparity", np.random.default_rng(0))
    assert not depth.any()
