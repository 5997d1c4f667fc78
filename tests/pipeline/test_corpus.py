"""Corpus listing, keys, shard assignment, decoding and skip reasons."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data_schemas.errors import ConfigError, InputNotFoundError
from pipeline.builtin_corpus import BUILTIN_IMAGES
from pipeline.corpus import (
    CanvasConfig,
    CorpusConfig,
    CorpusItem,
    SkipSample,
    corpus_fingerprint,
    decode_image,
    keep_key,
    key_to_name,
    list_corpus,
    load_item,
    name_to_key,
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
    with pytest.raises(InputNotFoundError, match="does not exist"):
        list_corpus(CorpusConfig((str(tmp_path / "nope"),)))


def test_canvas_limits_are_config_errors_quoting_the_values() -> None:
    with pytest.raises(ConfigError, match="--height 4 --width 96"):
        CanvasConfig(4, 96)
    with pytest.raises(ConfigError, match="--max-pixels 400000000 is above the 178956970 px"):
        CanvasConfig(max_pixels=400_000_000)


@pytest.mark.parametrize(("name", "key"), [
    ("plain/name.png", "plain/name.png"),
    ("caf\u00e9 \u65e5\u672c.jpg", "caf\u00e9 \u65e5\u672c.jpg"),  # valid UTF-8: unchanged
    ("100%.png", "100%.png"),
    ("a%C3b.png", "a%25C3b.png"),  # a literal % that would read as an escape
    (os.fsdecode(b"latin1-\xe9t\xe9.png"), "latin1-%E9t%E9.png"),
    (os.fsdecode(b"cut-\xe2\x82.png"), "cut-%E2%82.png"),  # truncated UTF-8 sequence
    (os.fsdecode(b"mix-%41\xff%.png"), "mix-%2541%FF%.png"),
])
def test_names_map_to_utf8_keys_reversibly(name: str, key: str) -> None:
    assert name_to_key(name) == key
    key.encode("utf-8")  # strict: storable in zarr strings and JSON
    assert key_to_name(key) == name


def test_random_byte_names_round_trip() -> None:
    rng = np.random.default_rng(0)
    alphabet = [b for b in range(1, 256) if b != ord("/")]
    for _ in range(2000):
        raw = bytes(rng.choice(alphabet, size=int(rng.integers(1, 12))).tolist())
        name = os.fsdecode(raw)
        key = name_to_key(name)
        key.encode("utf-8")
        assert key_to_name(key) == name and os.fsencode(key_to_name(key)) == raw


@pytest.mark.skipif(os.name != "posix", reason="non-UTF-8 file names need a POSIX file system")
def test_non_utf8_file_name_is_listed_decoded_and_its_key_round_trips(tmp_path: Path) -> None:
    make_corpus(tmp_path, 2)
    raw_name = b"photo-\xe9t\xe9-\xff.png"
    with open(os.path.join(os.fsencode(tmp_path), raw_name), "wb") as handle:
        handle.write(png_bytes(scene_image(5)))
    items = list_corpus(CorpusConfig((str(tmp_path),)))
    [item] = [i for i in items if i.key.startswith("photo-")]
    assert item.key == "photo-%E9t%E9-%FF.png"
    assert os.fsencode(key_to_name(item.key)) == raw_name
    assert os.fsencode(key_to_name(item.source)) == os.fsencode(tmp_path) + b"/" + raw_name
    assert load_item(item, CANVAS).shape == (48, 96, 3)
    assert len(corpus_fingerprint(items)) == 64


def test_a_file_that_cannot_be_read_is_skipped_with_a_reason_naming_it(tmp_path: Path) -> None:
    make_corpus(tmp_path, 1)
    (tmp_path / "dangling.png").symlink_to(tmp_path / "gone.png")
    item = CorpusItem("dangling.png", name_to_key(str(tmp_path / "dangling.png")))
    with pytest.raises(SkipSample) as caught:
        load_item(item, CANVAS)
    assert str(caught.value) == (f"file vanished: {tmp_path / 'dangling.png'}: "
                                 f"No such file or directory")


def png_header(width: int, height: int) -> bytes:
    """A PNG of ``width`` x ``height`` 1-bit pixels with no image data (header only)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk
            + struct.pack(">I", zlib.crc32(chunk)) + struct.pack(">I", 0) + b"IEND"
            + struct.pack(">I", zlib.crc32(b"IEND")))


@pytest.mark.parametrize(("size", "reason"), [
    ((12_000, 10_000), "decompression bomb: 12000x10000 = 120000000 px > limit 100000000"),
    ((20_000, 10_000), "decompression bomb: 200000000 px > limit 100000000"),
])
def test_pixel_limit_quoted_is_the_one_enforced(size: tuple[int, int], reason: str) -> None:
    with pytest.raises(SkipSample) as caught:
        decode_image(png_header(*size), CanvasConfig())
    assert str(caught.value) == reason


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
