"""Corpus listing, keys, shard assignment, decoding and skip reasons."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.builtin_corpus import BUILTIN_IMAGES
from pipeline.corpus import (
    CanvasConfig,
    CorpusConfig,
    CorpusItem,
    SkipSample,
    corpus_fingerprint,
    decode_image,
    keep_key,
    list_corpus,
    load_item,
    plan_shards,
    resize_crop,
    to_rgb8,
)
from tests.pipeline.generate_fixtures import (
    CANVAS,
    add_bad_files,
    make_corpus,
    png_bytes,
    scene_image,
)


def test_keys_are_relative_sorted_and_filtered(tmp_path: Path) -> None:
    keys = make_corpus(tmp_path, 5)
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "sub" / "UPPER.PNG").write_bytes(png_bytes(scene_image(0)))
    items = list_corpus(CorpusConfig((str(tmp_path),)))
    assert [i.key for i in items] == sorted([*keys, "sub/UPPER.PNG"])
    assert all(Path(i.source).is_file() for i in items)
    excluded = list_corpus(CorpusConfig((str(tmp_path),), exclude=("sub/*",)))
    assert [i.key for i in excluded] == [k for k in keys if not k.startswith("sub/")]


def test_several_roots_prefix_keys(tmp_path: Path) -> None:
    make_corpus(tmp_path / "a", 2)
    make_corpus(tmp_path / "b", 1)
    keys = [i.key for i in list_corpus(CorpusConfig((str(tmp_path / "b"), str(tmp_path / "a"))))]
    assert keys == sorted(keys) and keys[0].startswith("a/") and keys[-1].startswith("b/")


def test_fsspec_url_root(tmp_path: Path) -> None:
    make_corpus(tmp_path, 2)
    items = list_corpus(CorpusConfig((f"file://{tmp_path}",)))
    assert len(items) == 2
    assert load_item(items[0], CANVAS).shape == (48, 96, 3)


def test_missing_root_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        list_corpus(CorpusConfig((str(tmp_path / "nope"),)))


def test_shard_assignment_is_deterministic() -> None:
    items = [CorpusItem(f"k{i:02d}", f"/x/{i}") for i in range(10)]
    plans = plan_shards(items, 4)
    assert [len(p.items) for p in plans] == [4, 4, 2]
    assert [p.shard for p in plans] == [0, 1, 2]
    assert plans == plan_shards(list(items), 4)
    assert corpus_fingerprint(items) != corpus_fingerprint(items[:-1])


def test_keep_key_is_case_insensitive() -> None:
    assert keep_key("a/B.JPG", ("*.jpg",), ())
    assert not keep_key("a/b.jpg", ("*.jpg",), ("a/*",))


def test_builtin_corpus_lists_skimage_photos() -> None:
    items = list_corpus(CorpusConfig())
    assert [i.key for i in items] == sorted(f"skimage/{n}" for n in BUILTIN_IMAGES)
    assert decode_image(Path(items[0].source).read_bytes(), CANVAS).dtype == np.uint8


def test_resize_crop_covers_then_crops_centre() -> None:
    img = np.zeros((100, 100, 3), np.uint8)
    img[:, 45:55] = 255  # a vertical bar in the centre
    out = resize_crop(img, 20, 40)
    assert out.shape == (20, 40, 3)
    assert out[:, 20].min() > 200 and out[:, 0].max() < 30


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK", "LA", "1"])
def test_modes_become_rgb8(mode: str) -> None:
    out = decode_image(png_or_jpeg(scene_image(3), mode), CANVAS)
    assert out.shape == (48, 96, 3) and out.dtype == np.uint8


def png_or_jpeg(array: np.ndarray, mode: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).convert(mode).save(buffer, format="JPEG" if mode == "CMYK" else "PNG")
    return buffer.getvalue()


def test_sixteen_bit_gray_is_scaled_not_clipped() -> None:
    values = np.full((40, 40), 65535 // 2, np.uint16)
    rgb = to_rgb8(Image.fromarray(values))
    assert abs(int(rgb[0, 0, 0]) - 128) <= 1


def test_exif_orientation_is_applied() -> None:
    img = np.zeros((40, 80, 3), np.uint8)  # wide image, rotated to tall by EXIF
    img[:, :40] = 255
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW on display
    buffer = io.BytesIO()
    Image.fromarray(img).save(buffer, format="JPEG", exif=exif, quality=95)
    out = to_rgb8(Image.open(io.BytesIO(buffer.getvalue())).transpose(Image.Transpose.ROTATE_270))
    decoded = decode_image(buffer.getvalue(), CanvasConfig(80, 40, min_side=8))
    assert out.shape == decoded.shape == (80, 40, 3)
    assert decoded[:20].mean() > 200 and decoded[-20:].mean() < 50


def test_bad_files_are_skipped_with_reasons(tmp_path: Path) -> None:
    expected = add_bad_files(tmp_path)
    for item in list_corpus(CorpusConfig((str(tmp_path),))):
        with pytest.raises(SkipSample) as caught:
            load_item(item, CANVAS)
        assert str(caught.value).startswith(expected[item.key]), str(caught.value)
