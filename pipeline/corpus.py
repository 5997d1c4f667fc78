"""Image corpus: listing, stable keys, sample -> shard assignment, decoding to the canvas.

* **Roots** are local folders or fsspec URLs (``s3://bucket/photos``), listed recursively.
  The built-in corpus ``builtin`` is the scikit-image sample photographs
  (:mod:`pipeline.builtin_corpus`).
* **Keys** are the path relative to the root (POSIX separators). With several roots each
  key is prefixed by its root's folder name (``photos/a/b.jpg``), which must then differ.
  Keys and sources are valid UTF-8 whatever the file names: a byte of a name that is not
  valid UTF-8 is written ``%XX`` (its hex value), and a literal ``%`` followed by two hex
  digits is written ``%25`` (:func:`name_to_key`); ``urllib.parse.unquote(key,
  errors="surrogateescape")`` (:func:`key_to_name`) gives the name back, as Python's
  ``os`` functions spell it. Every other name is its own key.
* **Order and shards**: items are sorted by key; item ``i`` goes to shard
  ``i // shard_size``. The same corpus always maps every image to the same shard.
* **Canvas policy** (``resize-crop``): scale the image (aspect kept) so that it *covers*
  the H x W canvas, then crop the centre. Nothing is padded, nothing is distorted.
* **Decoding**: EXIF orientation applied; grayscale, RGBA/LA (alpha dropped), palette, CMYK
  and 16-bit / 32-bit / float images converted to 8-bit RGB.
* **Skips**: zero-byte, unreadable, non-image, corrupt/truncated, too-small and
  decompression-bomb files raise :class:`SkipSample` with a one-line reason; the generator
  records it.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
import urllib.parse
import warnings
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from data_schemas.errors import ConfigError, InputError, InputNotFoundError
from pipeline.builtin_corpus import BUILTIN_IMAGES, BUILTIN_LABEL, BUILTIN_NAME, builtin_root

if TYPE_CHECKING:
    import fsspec

DEFAULT_INCLUDE: tuple[str, ...] = (
    "*.jpg", "*.jpeg", "*.png", "*.bmp", "*.tif", "*.tiff", "*.webp", "*.gif", "*.ppm")
"""Default include globs (case-insensitive, matched from the right of the key)."""


class SkipSample(Exception):  # noqa: N818 - a control-flow signal, not an error
    """This corpus item yields no sample; ``str(exc)`` is the reason stored in the store."""


@dataclass(frozen=True)
class CorpusConfig:
    """Where the images are and which files count."""

    roots: tuple[str, ...] = (BUILTIN_NAME,)
    """Folders or fsspec URLs, listed recursively; ``builtin`` = scikit-image photographs."""
    include: tuple[str, ...] = DEFAULT_INCLUDE
    """Keep files whose key matches one of these globs (``*.jpg``, ``day/*.png``)."""
    exclude: tuple[str, ...] = ()
    """Drop files whose key matches one of these globs (applied after ``include``)."""


@dataclass(frozen=True)
class CanvasConfig:
    """The store canvas and the limits on input images."""

    height: int = 352
    """Canvas height (px); 352 x 1216 is the KITTI depth-completion crop."""
    width: int = 1216
    """Canvas width (px)."""
    min_side: int = 32
    """Images whose shorter side is below this (px) are skipped as too small."""
    max_pixels: int = 100_000_000
    """Images with more pixels than this are skipped (decompression-bomb guard)."""

    def __post_init__(self) -> None:
        if self.height < 8 or self.width < 8:
            raise ConfigError(f"canvas must be at least 8 x 8 px, got --height {self.height} "
                              f"--width {self.width}")
        if self.min_side < 1 or self.max_pixels < 1:
            raise ConfigError(f"--min-side and --max-pixels must be >= 1, got "
                              f"{self.min_side} and {self.max_pixels}")
        if self.max_pixels > pil_pixel_limit():
            raise ConfigError(f"--max-pixels {self.max_pixels} is above the {pil_pixel_limit()} "
                              f"px that Pillow decodes at all; choose at most that")


def pil_pixel_limit() -> int:
    """Pixels above which Pillow refuses to open an image (twice ``MAX_IMAGE_PIXELS``)."""
    limit = Image.MAX_IMAGE_PIXELS
    return 2 * int(limit) if limit else 2**62


@dataclass(frozen=True)
class CorpusItem:
    """One input image: ``key`` is stable across runs, ``source`` is its full URL/path."""

    key: str
    source: str


@dataclass(frozen=True)
class ShardPlan:
    """The items of one shard, in row order."""

    shard: int
    items: tuple[CorpusItem, ...]


@dataclass(frozen=True)
class _Root:
    url: str
    label: str
    include: tuple[str, ...]
    exclude: tuple[str, ...]


# -- listing -----------------------------------------------------------------------------
def list_corpus(cfg: CorpusConfig) -> list[CorpusItem]:
    """All items of the corpus, sorted by key; raises InputNotFoundError for a missing root."""
    if not cfg.roots:
        raise ConfigError("the corpus needs at least one root (--corpus folder, URL or "
                          "'builtin')")
    roots = [_parse_root(url, cfg) for url in cfg.roots]
    labels = [r.label for r in roots]
    if len(roots) > 1 and len(set(labels)) != len(labels):
        raise ConfigError(f"corpus roots need distinct folder names to prefix keys, got "
                          f"{labels} from --corpus {' '.join(cfg.roots)}")
    items = [item for root in roots for item in _list_root(root, prefix=len(roots) > 1)]
    return sorted(items, key=lambda item: item.key)


def _parse_root(url: str, cfg: CorpusConfig) -> _Root:
    if url == BUILTIN_NAME:
        return _Root(builtin_root(), BUILTIN_LABEL, BUILTIN_IMAGES, ())
    label = PurePosixPath(url.rstrip("/").split("://")[-1]).name or url
    return _Root(url, label, cfg.include, cfg.exclude)


def _list_root(root: _Root, prefix: bool) -> list[CorpusItem]:
    import fsspec  # with its asyncio machinery: not for `dmd3c --help`

    fs, path = fsspec.core.url_to_fs(root.url)
    if not fs.exists(path):
        raise InputNotFoundError(f"corpus root {root.url!r} does not exist")
    if not fs.isdir(path):
        raise InputError(f"corpus root {root.url!r} is not a folder")
    base = path.rstrip("/")
    items = []
    for found in sorted(fs.find(path)):
        rel = name_to_key(found[len(base):].lstrip("/"))
        if not keep_key(rel, root.include, root.exclude):
            continue
        key = f"{root.label}/{rel}" if prefix or root.label == BUILTIN_LABEL else rel
        items.append(CorpusItem(key, name_to_key(_source(fs, found))))
    return items


def _source(fs: fsspec.AbstractFileSystem, path: str) -> str:
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return path if protocol in ("file", "local") else f"{protocol}://{path}"


_LITERAL_ESCAPE = re.compile(r"%(?=[0-9A-Fa-f]{2})")
_UNDECODABLE = re.compile("[\udc80-\udcff]")


def name_to_key(name: str) -> str:
    """A file name as Python's ``os`` spells it -> valid UTF-8 text that names it reversibly.

    Bytes that are not valid UTF-8 (surrogate escapes ``\\udcXX``) become ``%XX``; a ``%``
    that would read as such an escape becomes ``%25``; anything else is unchanged.
    """
    escaped = _LITERAL_ESCAPE.sub("%25", name)
    return _UNDECODABLE.sub(lambda m: f"%{ord(m.group()) - 0xDC00:02X}", escaped)


def key_to_name(key: str) -> str:
    """Inverse of :func:`name_to_key`: the name to open (undecodable bytes as surrogates)."""
    return urllib.parse.unquote(key, encoding="utf-8", errors="surrogateescape")


def keep_key(key: str, include: tuple[str, ...], exclude: tuple[str, ...]) -> bool:
    """Whether ``key`` matches an include glob and no exclude glob (case-insensitive)."""
    path = PurePosixPath(key.lower())
    if include and not any(path.match(p.lower()) for p in include):
        return False
    return not any(path.match(p.lower()) for p in exclude)


def plan_shards(items: list[CorpusItem], shard_size: int) -> list[ShardPlan]:
    """Consecutive runs of ``shard_size`` sorted items: item ``i`` -> shard ``i // size``."""
    if shard_size < 1:
        raise ConfigError(f"--shard-size must be >= 1, got {shard_size}")
    return [ShardPlan(s, tuple(items[s * shard_size:(s + 1) * shard_size]))
            for s in range(math.ceil(len(items) / shard_size))]


def corpus_fingerprint(items: list[CorpusItem]) -> str:
    """sha256 of the sorted keys: a changed corpus is a changed generator config."""
    digest = hashlib.sha256()
    for item in items:
        digest.update(item.key.encode() + b"\0")
    return digest.hexdigest()


# -- decoding ----------------------------------------------------------------------------
def read_bytes(source: str) -> bytes:
    """The raw bytes of a corpus item (local path or fsspec URL)."""
    import fsspec

    with fsspec.open(source, "rb") as handle:
        data: bytes = handle.read()
    return data


def load_item(item: CorpusItem, canvas: CanvasConfig) -> np.ndarray:
    """Read and decode one item to a (H, W, 3) uint8 canvas; raises :class:`SkipSample`."""
    try:
        data = read_bytes(key_to_name(item.source))
    except FileNotFoundError as err:
        raise SkipSample(f"file vanished: {item.source}: {_why(err)}") from err
    except (OSError, ValueError) as err:
        raise SkipSample(f"unreadable file: {item.source}: {_why(err)}") from err
    return decode_image(data, canvas)


def _why(err: Exception) -> str:
    """The reason of an I/O error without the file name (it is named already), UTF-8 safe."""
    text = getattr(err, "strerror", None) or str(err) or type(err).__name__
    return name_to_key(str(text))


def decode_image(data: bytes, canvas: CanvasConfig) -> np.ndarray:
    """Encoded image bytes -> (H, W, 3) uint8 RGB on the canvas (see the module policy)."""
    if not data:
        raise SkipSample("empty file (0 bytes)")
    image = _open_checked(data, canvas)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = ImageOps.exif_transpose(image)
            rgb = to_rgb8(image)
    except (OSError, ValueError, SyntaxError) as err:
        raise SkipSample(f"corrupt or truncated image: {err}") from err
    return resize_crop(rgb, canvas.height, canvas.width)


def _open_checked(data: bytes, canvas: CanvasConfig) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError as err:
        raise SkipSample("not an image (format not recognised)") from err
    except Image.DecompressionBombError as err:
        raise SkipSample(f"decompression bomb: {_bomb_pixels(err)} px > limit "
                         f"{canvas.max_pixels}") from err
    except (OSError, ValueError, SyntaxError) as err:
        raise SkipSample(f"corrupt image header: {err}") from err
    width, height = image.size
    if width * height > canvas.max_pixels:
        raise SkipSample(f"decompression bomb: {width}x{height} = {width * height} px > "
                         f"limit {canvas.max_pixels}")
    if min(width, height) < canvas.min_side:
        raise SkipSample(f"too small: {width}x{height} px, shorter side < {canvas.min_side}")
    return image


def _bomb_pixels(err: Image.DecompressionBombError) -> str:
    """The image size Pillow quotes in its refusal (``Image size (N pixels) exceeds ...``)."""
    found = re.search(r"\((\d+) pixels\)", str(err))
    return found.group(1) if found else f"more than {pil_pixel_limit()}"


def to_rgb8(image: Image.Image) -> np.ndarray:
    """Any PIL mode -> (h, w, 3) uint8; >8-bit gray scaled by its type's range, alpha dropped."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        gray = _to_gray8(np.asarray(image), image.mode)
        return np.repeat(gray[..., None], 3, axis=2)
    if image.mode != "RGB":
        image = image.convert("RGBA" if "transparency" in image.info else image.mode)
        image = image.convert("RGB")
    return np.asarray(image, dtype=np.uint8)


def _to_gray8(values: np.ndarray, mode: str) -> np.ndarray:
    values = values.astype(np.float64)
    if mode == "F":
        lo, hi = float(values.min()), float(values.max())
        scaled = (values - lo) / (hi - lo) if hi > lo else np.zeros_like(values)
    else:
        scaled = values / (65535.0 if values.max() > 255 or mode.startswith("I;16") else 255.0)
    return np.clip(np.rint(scaled * 255.0), 0, 255).astype(np.uint8)


def cover_crop(hw: tuple[int, int], height: int, width: int) -> tuple[int, int, int, int]:
    """(new_h, new_w, top, left): the image scaled to cover the canvas, then its centre crop."""
    h, w = hw
    scale = max(height / h, width / w)
    new_w, new_h = max(width, round(w * scale)), max(height, round(h * scale))
    return new_h, new_w, (new_h - height) // 2, (new_w - width) // 2


def resize_crop(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """(h, w, 3) uint8 -> (height, width, 3): scale to cover (aspect kept), crop the centre."""
    new_h, new_w, top, left = cover_crop(rgb.shape[:2], height, width)
    scale = max(height / rgb.shape[0], width / rgb.shape[1])
    resample = Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.BICUBIC
    resized = np.asarray(Image.fromarray(rgb).resize((new_w, new_h), resample))
    return np.ascontiguousarray(resized[top:top + height, left:left + width])
