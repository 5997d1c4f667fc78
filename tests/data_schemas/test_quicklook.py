"""The ``inspect --png`` montage: rows on one depth scale and a colour bar in metres."""

from __future__ import annotations

import numpy as np

from data_schemas.quicklook import BAR_HEIGHT_PX, colorize_depth, colour_bar, montage


def _sample(far_m: float) -> dict[str, np.ndarray]:
    depth = np.tile(np.linspace(1.0, far_m, 40, dtype=np.float32), (20, 1))
    return {"rgb": np.zeros((20, 40, 3), np.uint8), "teacher_depth": depth,
            "sparse_depth": np.zeros((20, 40), np.float32)}


def test_colour_bar_shows_the_depth_colours_from_zero_to_the_scale_top() -> None:
    bar = colour_bar(200, 50.0)
    assert bar.shape == (BAR_HEIGHT_PX, 200, 3)
    strip = colorize_depth(np.linspace(50.0 / 200, 50.0, 200, dtype=np.float32)[None], 50.0)
    np.testing.assert_array_equal(bar[5], strip[0])
    labels = bar[16:]
    assert (labels.min(axis=2) > 128).sum() > 20  # white tick labels under the strip


def test_montage_rows_share_one_scale_and_end_with_its_bar() -> None:
    near, far = _sample(20.0), _sample(80.0)
    image = montage([near, far])
    assert image.shape == (2 * 20 + BAR_HEIGHT_PX, 3 * 40, 3)
    top = float(np.percentile(far["teacher_depth"], 99))
    np.testing.assert_array_equal(image[:20, 80:], colorize_depth(near["teacher_depth"], top))
    np.testing.assert_array_equal(image[40:], colour_bar(120, top))
