"""The codecs of every stored array (schema 2.0) and the codec pipeline that runs them.

Chosen by measurement on 352 x 1216 samples (``benchmarks/bench_store_codecs.py``; the
README's store section has the table). Every array's inner chunk (one sample) ends with a
``crc32c`` checksum that zarr verifies on every read; the shard index has its own.

* ``rgb``: ``zstd`` level 1 (lossless). Image codecs (PNG, JPEG-XL, WebP, JPEG-LS) were 25-35 %
  smaller but 4-20x slower to decode; the store wins its size back on the depth maps. Opt-in
  ``jpeg`` (quality >= 95, through imagecodecs) for corpora whose sources are JPEGs anyway.
* ``"m/256"`` depth maps: ``numcodecs.fixedscaleoffset`` to uint16 (KITTI's 1/256 m), byte
  shuffle, ``zstd`` level 1.
* ``float16`` maps: byte shuffle + ``zstd`` level 1.
* small float arrays (K, pose) and ``valid``: ``zstd``; strings: ``vlen-utf8`` + ``zstd``.

The ``zarrs`` Rust codec pipeline (PyPI ``zarrs``) encodes and decodes all of these but the
strings and JPEG (those fall back to zarr-python's pipeline, array by array); it is used for
every array the store opens when it is installed (:func:`codec_pipeline`).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from functools import cached_property
from typing import Any

import numcodecs
import numpy as np
import zarr
from zarr.codecs import BloscCodec, Crc32cCodec, ZstdCodec
from zarr.codecs.numcodecs import FixedScaleOffset
from zarr.codecs.numcodecs._codecs import _NumcodecsArrayBytesCodec

from data_schemas.sample_schema import DEPTH_SCALE, ArraySpec, RgbCodec

ZSTD_LEVEL = 1
JPEG_QUALITY = 95
"""Quality of the opt-in lossy rgb codec (>= 95: visually lossless for training)."""
JPEG_CODEC = "numcodecs.imagecodecs_jpeg"
"""Name of the opt-in JPEG rgb codec in the array metadata (and of its entry point)."""
SCALE_FILTER = "numcodecs.fixedscaleoffset"
ZARRS_PIPELINE = "zarrs.ZarrsCodecPipeline"
DEFAULT_PIPELINE = "zarr.core.codec_pipeline.BatchedCodecPipeline"

# zarrs falls back to zarr-python for the arrays it cannot run (strings, JPEG): expected here.
warnings.filterwarnings("ignore", message="Array is unsupported by ZarrsCodecPipeline")

CODEC_PACKAGES = {
    "numcodecs.imagecodecs_jpeg": "imagecodecs",
    SCALE_FILTER: "numcodecs",
    "blosc": "numcodecs",
    "zstd": "numcodecs",
}
"""Codec name in the array metadata -> the Python package that provides it."""


class ImagecodecsJpeg(_NumcodecsArrayBytesCodec, codec_name="imagecodecs_jpeg"):
    """Baseline JPEG of one ``[1, H, W, 3]`` uint8 chunk through imagecodecs (opt-in rgb)."""

    @cached_property
    def _codec(self) -> Any:
        register_codecs()  # imports imagecodecs: ModuleNotFoundError names it when missing
        return numcodecs.get_codec(dict(self.codec_config))


def register_codecs() -> None:
    """Make the imagecodecs JPEG codec known to numcodecs and zarr (idempotent).

    Also reachable from the ``zarr.codecs`` entry point of the ``dmd3c`` package, so that
    dask / xarray open stores with JPEG rgb once dmd3c and imagecodecs are installed.
    """
    import imagecodecs.numcodecs

    imagecodecs.numcodecs.register_codecs(codecs=["imagecodecs_jpeg"], verbose=False)
    zarr.registry.register_codec(JPEG_CODEC, ImagecodecsJpeg)


def array_codecs(spec: ArraySpec, rgb_codec: RgbCodec = "lossless") -> dict[str, Any]:
    """Keyword arguments of ``zarr.create_array`` (filters, serializer, compressors)."""
    checksum = Crc32cCodec()
    if spec.name == "rgb" and rgb_codec == "jpeg":
        register_codecs()
        with _quiet():
            jpeg = ImagecodecsJpeg(level=JPEG_QUALITY)
        return {"serializer": jpeg, "compressors": [checksum]}
    if spec.storage == "m/256":
        with _quiet():
            to_u16 = FixedScaleOffset(offset=0, scale=DEPTH_SCALE, dtype="<f4", astype="<u2")
        dense = spec.name != "sparse_depth"  # sparse maps are mostly zeros: plain zstd wins
        compressor = _bitshuffle_zstd(2) if dense else ZstdCodec(level=ZSTD_LEVEL)
        return {"filters": [to_u16], "compressors": [compressor, checksum]}
    if spec.storage == "float16":
        return {"compressors": [_bitshuffle_zstd(2), checksum]}
    return {"compressors": [ZstdCodec(level=ZSTD_LEVEL), checksum]}


def stored_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """A sharded array's zarr v3 metadata without its inner ``fixedscaleoffset`` filter: an
    ``"m/256"`` depth array read as the uint16 it stores (value x 256, fill 0), every other
    codec (shuffle, zstd, crc32c) unchanged. Metadata without that filter is returned as is."""
    sharding = metadata["codecs"][0]["configuration"]
    inner = sharding["codecs"]
    scales = [c for c in inner if c["name"] == SCALE_FILTER]
    if not scales:
        return metadata
    codecs = [c for c in inner if c["name"] != SCALE_FILTER]
    outer = {**metadata["codecs"][0], "configuration": {**sharding, "codecs": codecs}}
    dtype = np.dtype(scales[0]["configuration"]["astype"])
    return {**metadata, "data_type": dtype.name, "fill_value": 0,
            "codecs": [outer, *metadata["codecs"][1:]]}


def _bitshuffle_zstd(typesize: int) -> BloscCodec:
    return BloscCodec(cname="zstd", clevel=ZSTD_LEVEL, shuffle="bitshuffle", typesize=typesize)


def to_stored(spec: ArraySpec, values: np.ndarray) -> np.ndarray:
    """``values`` ``[n, ...]`` as the array stores them. ``m/256`` depth (float32 m, checked to
    lie in [0, MAX_DEPTH_M]) -> uint16 floor(metres x 256 + 1/2) (halves rounded up, as zarrs'
    ``fixedscaleoffset`` rounds: the bytes of a write through the filter), nonzero depths
    below half a step raised to one step (no data point turns into "no data", 0); written
    through :meth:`SampleStore.stored_array`. Other arrays: ``values`` itself."""
    if spec.storage != "m/256":
        return values
    stored = np.empty(values.shape, np.uint16)
    scaled = np.empty(values.shape[1:], np.float32)  # one sample at a time: stays in cache
    for row, out in zip(values, stored, strict=True):
        np.multiply(row, np.float32(DEPTH_SCALE), out=scaled)
        scaled += np.float32(0.5)
        np.copyto(out, scaled, casting="unsafe")  # truncation: the floor of a value >= 0
        np.maximum(out, row > 0, out=out)
    return stored


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Numcodecs codecs are not in the Zarr.*")
        warnings.filterwarnings("ignore", message=".*(string|StringDType).*")
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
        warnings.filterwarnings("ignore", message=".*not recognized as a component of a Zarr.*")
        yield


def zarrs_available() -> bool:
    try:
        import zarrs  # noqa: F401
    except ImportError:
        return False
    return True


@contextlib.contextmanager
def codec_pipeline(fast: bool = True, writes: bool = False) -> Iterator[None]:
    """Arrays opened inside use the ``zarrs`` pipeline (``fast`` and installed; arrays it
    cannot run fall back to zarr-python's), else zarr-python's default pipeline.

    ``writes``: one thread, chunks encoded in order. zarrs encodes the chunks of a shard in
    parallel otherwise and lays them out in completion order, so the same shard would not
    give the same bytes twice (measured); a shard is written by one task on one core anyway.
    Writes also store chunks that hold only fill values (an all-sky sparse map, an empty
    shard), so that a committed shard has an object in every array and a missing one is
    damage, never "nothing to store".
    """
    path = ZARRS_PIPELINE if fast and zarrs_available() else DEFAULT_PIPELINE
    config: dict[str, object] = {"codec_pipeline.path": path, "codec_pipeline.strict": False}
    if writes:
        config.update({"threading.max_workers": 1, "codec_pipeline.chunk_concurrent_maximum": 1,
                       "array.write_empty_chunks": True})
    with zarr.config.set(config), _quiet():
        yield


def missing_codec(err: BaseException, codecs: tuple[str, ...] = ()) -> str | None:
    """One line naming the codec and the package to install, when ``err`` says a codec (or
    its package) is missing; else None. ``codecs``: the codec names of the array."""
    if isinstance(err, ModuleNotFoundError) and err.name:
        package = err.name.split(".")[0]
        used = [c for c in codecs if CODEC_PACKAGES.get(c) == package] or list(codecs)
        return (f"codec {', '.join(used) or '?'} needs the Python package {package!r}, which "
                f"is not installed: pip install {package}")
    text = str(err)
    for name, package in CODEC_PACKAGES.items():
        if name in text:
            return (f"codec {name!r} is not available: install the Python package {package!r} "
                    f"(pip install {package} dmd3c)")
    return None


def codec_names(metadata: dict[str, Any]) -> tuple[str, ...]:
    """Every codec name in a zarr v3 array's metadata, inner (sharded) codecs included."""
    names: list[str] = []
    for codec in metadata.get("codecs", ()):
        names.append(str(codec.get("name")))
        inner = codec.get("configuration", {}).get("codecs", ())
        names += [str(c.get("name")) for c in inner]
    return tuple(names)
