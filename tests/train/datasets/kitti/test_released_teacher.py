"""Released teacher-map form: DA-V2 run.py's 8-bit grey PNG, read back as the release does."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from data_schemas.errors import InputError, InputNotFoundError
from train.datasets.kitti.released_teacher import (
    check_disp_maps,
    disp_path_of_image,
    read_disp_png,
    released_disp_path,
    released_teacher01,
    released_uint8,
)


def write_like_run_py(depth: np.ndarray, path: Path) -> None:
    """DA-V2 run.py with --pred-only --grayscale, step by step (float32 in, PNG out)."""
    depth = (depth - depth.min()) / (depth.max() - depth.min()) * 255.0
    depth = depth.astype(np.uint8)
    depth = np.repeat(depth[..., np.newaxis], 3, axis=-1)
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), depth)


@pytest.mark.parametrize("seed", range(3))
def test_png_round_trip_equals_the_conversion_bit_for_bit(tmp_path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    depth = (rng.gamma(2.0, 3.0, (37, 61)) + rng.uniform(-1, 1)).astype(np.float32)
    png = tmp_path / "disp" / "0000000005.png"
    write_like_run_py(depth, png)
    ours = released_teacher01(depth)
    assert ours.dtype == np.float32
    np.testing.assert_array_equal(read_disp_png(png), ours)
    assert ours.min() == 0.0 and ours.max() == 1.0


def test_float32_arithmetic_and_truncation() -> None:
    depth = np.array([[0.0, 0.5, 1.0, 0.99]], dtype=np.float32)
    q = released_uint8(depth)
    np.testing.assert_array_equal(q, [[0, 127, 255, 252]])  # 127.5 -> 127, 252.45 -> 252
    # float32 and float64 arithmetic give different 8-bit values for some pixels
    rng = np.random.default_rng(0)
    depth = rng.uniform(0.3, 7.0, 200_000).astype(np.float32).reshape(400, 500)
    as64 = ((depth.astype(np.float64) - depth.min()) / (float(depth.max()) - depth.min())
            * 255.0).astype(np.uint8)
    q = released_uint8(depth)
    assert (q != as64).any()  # the float32 path matters ...
    f32 = ((depth - depth.min()) / (depth.max() - depth.min()) * np.float32(255)).astype(np.uint8)
    np.testing.assert_array_equal(q, f32)  # ... and it is the one taken


def test_constant_map_is_a_defined_finite_target() -> None:
    out = released_teacher01(np.full((4, 5), 3.25, dtype=np.float32))
    np.testing.assert_array_equal(out, np.zeros((4, 5), np.float32))


def test_bad_maps() -> None:
    with pytest.raises(InputError, match="NaN"):
        released_uint8(np.array([[1.0, np.nan]], dtype=np.float32))
    with pytest.raises(InputError, match=r"\[H, W\]"):
        released_uint8(np.zeros((2, 3, 3), dtype=np.float32))


def test_released_layout_paths() -> None:
    root = Path("/k")
    drive = "2011_09_26_drive_0001_sync"
    expected = root / "raw/2011_09_26" / drive / "image_02/disp/0000000005.png"
    assert released_disp_path(root, drive, "image_02", "0000000005") == expected
    image = root / "raw/2011_09_26" / drive / "image_02/data/0000000005.png"
    assert disp_path_of_image(image) == expected
    with pytest.raises(InputError, match="not a KITTI raw image"):
        disp_path_of_image(root / "val_selection_cropped/image/x.png")


def test_check_names_first_missing_and_count(tmp_path: Path) -> None:
    images = [tmp_path / f"d/image_02/data/{i:010d}.png" for i in range(5)]
    for image in images[:3]:
        write_like_run_py(np.arange(12, dtype=np.float32).reshape(3, 4),
                          disp_path_of_image(image))
    with pytest.raises(InputNotFoundError, match=r"2 of 5 .*0000000003\.png"):
        check_disp_maps(images)
    assert check_disp_maps(images[:3]) == [disp_path_of_image(i) for i in images[:3]]


def test_real_frame_round_trip(tmp_path: Path, kitti_sample: Path) -> None:
    """A real KITTI image's grey values stand in for a teacher map at full frame size."""
    image = next((kitti_sample / "raw").rglob("image_02/data/*.png"))
    rgb = cv2.imread(str(image))
    assert rgb is not None
    depth = (cv2.GaussianBlur(rgb[..., 1].astype(np.float32), (0, 0), 3) / 37.0) ** 0.7
    png = tmp_path / "raw" / image.relative_to(kitti_sample / "raw").parent.parent / "disp"
    png = png / image.name
    write_like_run_py(depth, png)
    np.testing.assert_array_equal(read_disp_png(png), released_teacher01(depth))
    assert check_disp_maps([tmp_path / "raw" / image.relative_to(kitti_sample / "raw")]) == [png]
