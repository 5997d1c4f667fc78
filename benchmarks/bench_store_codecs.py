"""How the sample store's codecs and codec pipeline were chosen (schema 2.0), measured.

    .venv/bin/python benchmarks/bench_store_codecs.py [--samples 16]

Part 1, per array: size and one-core encode / decode time per 352 x 1216 sample of the codec
candidates, as whole shards of one-sample chunks through zarr (the access pattern: a shard
written once, whole shards read), with the chosen codecs marked. Candidates zarrs cannot run
(numcodecs delta) go through zarr-python.

Part 2, per pipeline: the chosen codecs of every array written and read as whole shards by
zarr-python's default pipeline, the ``zarrs`` Rust pipeline (one thread for writes, as the
store uses it; all threads for reads) and tensorstore (same metadata, read from disk; arrays
with a codec it lacks are marked), CPU ms per sample (and wall ms for reads).
Samples: ``store_io.realistic_batch`` (real KITTI rgb, simulated HDL-64E scans).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from store_io import realistic_batch
from zarr.codecs import BloscCodec, Crc32cCodec, TransposeCodec, ZstdCodec
from zarr.codecs.numcodecs import Delta, FixedScaleOffset

from data_schemas.sample_schema import array_specs
from data_schemas.store_codecs import array_codecs, codec_pipeline

warnings.filterwarnings("ignore")
CRC = Crc32cCodec()


def _u16() -> FixedScaleOffset:
    return FixedScaleOffset(offset=0, scale=256, dtype="<f4", astype="<u2")


def _blosc(shuffle: str, level: int = 1) -> BloscCodec:
    return BloscCodec(cname="zstd", clevel=level, shuffle=shuffle, typesize=2)


def candidates() -> dict[str, dict[str, dict[str, Any]]]:
    """array -> label -> create_array codec kwargs (float32 / float16 variants by label)."""
    zstd1, zstd3 = ZstdCodec(level=1), ZstdCodec(level=3)
    planar_delta = [TransposeCodec(order=(0, 3, 1, 2)), Delta(dtype="|u1")]
    return {
        "rgb": {
            "zstd1 (chosen)": {"compressors": [zstd1, CRC]},
            "zstd3": {"compressors": [zstd3, CRC]},
            "planar + delta + zstd1 (zarr-python only)": {
                "filters": planar_delta, "compressors": [zstd1, CRC]},
            "blosc lz4": {"compressors": [BloscCodec(cname="lz4", clevel=5, shuffle="noshuffle",
                                                     typesize=1), CRC]},
        },
        "sparse_depth": {
            "float32 zstd1 (lossless)": {"compressors": [zstd1, CRC]},
            "m/256 zstd1 (chosen)": {"filters": [_u16()], "compressors": [zstd1, CRC]},
            "m/256 shuffle zstd1": {"filters": [_u16()], "compressors": [_blosc("shuffle"), CRC]},
        },
        "teacher_depth": {
            "float32 shuffle zstd1 (lossless)": {"compressors": [BloscCodec(
                cname="zstd", clevel=1, shuffle="shuffle", typesize=4), CRC]},
            "m/256 shuffle zstd1": {"filters": [_u16()], "compressors": [_blosc("shuffle"), CRC]},
            "m/256 bitshuffle zstd1 (chosen)": {"filters": [_u16()],
                                                "compressors": [_blosc("bitshuffle"), CRC]},
            "m/256 shuffle blosc-zstd level 2": {
                "filters": [_u16()], "compressors": [_blosc("shuffle", 2), CRC]},
            "m/256 shuffle blosc-zstd level 3": {"filters": [_u16()],
                                    "compressors": [_blosc("shuffle", 3), CRC]},
            "m/256 delta zstd1 (zarr-python only)": {
                "filters": [_u16(), Delta(dtype="<u2")], "compressors": [zstd1, CRC]},
        },
        "teacher_output": {
            "float32 shuffle zstd1 (lossless)": {"compressors": [BloscCodec(
                cname="zstd", clevel=1, shuffle="shuffle", typesize=4), CRC]},
            "float16 shuffle zstd1": {"compressors": [_blosc("shuffle"), CRC]},
            "float16 bitshuffle zstd1 (chosen)": {"compressors": [_blosc("bitshuffle"), CRC]},
            "float16 shuffle blosc-zstd level 3": {"compressors": [_blosc("shuffle", 3), CRC]},
        },
    }


def _values(batch: dict[str, object], name: str, label: str) -> np.ndarray:
    values = np.asarray(batch[name])
    return values.astype(np.float16) if label.startswith("float16") else values


def _cpu(action: Callable[[], object]) -> float:
    start = time.process_time()
    action()
    return time.process_time() - start


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _measure(path: Path, values: np.ndarray, kwargs: dict[str, Any], fast: bool,
             repeats: int = 3) -> tuple[int, float, float]:
    """(bytes, best write CPU s, best read CPU s) of ``values`` as one whole shard."""
    shutil.rmtree(path, ignore_errors=True)
    with codec_pipeline(fast=fast, writes=True):
        array = zarr.create_array(str(path), shape=values.shape, dtype=values.dtype,
                                  chunks=(1, *values.shape[1:]), shards=values.shape, **kwargs)
    writes, reads = [], []
    for _ in range(repeats):
        writes.append(_cpu(lambda: array.__setitem__(slice(None), values)))
        with codec_pipeline(fast=fast):
            reader = zarr.open_array(str(path), mode="r")
        reads.append(_cpu(lambda r=reader: r[:]))
    return _size(path), min(writes), min(reads)


def part_codecs(batch: dict[str, object], tmp: Path) -> None:
    count = len(np.asarray(batch["key"]))
    print(f"-- codec candidates per array, {count} samples 352x1216, whole-shard write/read, "
          f"one core (zarrs where it runs the codecs, else zarr-python); per sample")
    for name, options in candidates().items():
        for label, kwargs in options.items():
            values = _values(batch, name, label)
            fast = "zarr-python only" not in label
            size, write, read = _measure(tmp / "c.zarr", values, kwargs, fast)
            print(f"   {name:<15}{label:<44}{size / count / 1e3:8.1f} KB  encode "
                  f"{1e3 * write / count:6.2f} ms  decode {1e3 * read / count:6.2f} ms")


def _tensorstore_read(path: Path) -> tuple[float, float] | str:
    """(CPU s, wall s) of a whole read with tensorstore, or why it cannot open the array."""
    try:
        import tensorstore as ts
    except ImportError:
        return "tensorstore not installed"
    try:
        array = ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": str(path)}},
                        read=True).result()
    except Exception as err:  # a codec tensorstore does not implement
        return f"unsupported ({str(err).splitlines()[0][:60]})"
    wall = time.perf_counter()
    cpu = _cpu(lambda: array.read().result())
    return cpu, time.perf_counter() - wall


def part_pipelines(batch: dict[str, object], tmp: Path) -> None:
    count = len(np.asarray(batch["key"]))
    print("-- codec pipelines on the chosen codecs (whole shards), per sample: write CPU | "
          "read CPU (wall)")
    specs = array_specs(352, 1216)
    for name in ("rgb", "sparse_depth", "teacher_depth", "teacher_output"):
        values = np.asarray(batch[name], dtype=specs[name].numpy_dtype)
        kwargs = array_codecs(specs[name])
        row = []
        for fast in (False, True):
            _, write, _ = _measure(tmp / "p.zarr", values, kwargs, fast)
            with codec_pipeline(fast=fast):
                reader = zarr.open_array(str(tmp / "p.zarr"), mode="r")
            wall = time.perf_counter()
            read = _cpu(lambda r=reader: r[:])
            wall = time.perf_counter() - wall
            row.append(f"{1e3 * write / count:5.2f} | {1e3 * read / count:5.2f} "
                       f"({1e3 * wall / count:5.2f})")
        ts_read = _tensorstore_read(tmp / "p.zarr")
        ts_text = ts_read if isinstance(ts_read, str) else (
            f"read {1e3 * ts_read[0] / count:5.2f} ({1e3 * ts_read[1] / count:5.2f})")
        codecs = json.loads((tmp / "p.zarr" / "zarr.json").read_text())["codecs"]
        inner = [c["name"] for c in codecs[0]["configuration"]["codecs"]]
        print(f"   {name:<15}zarr-python {row[0]}  zarrs {row[1]}  tensorstore {ts_text}")
        print(f"   {'':<15}codecs: {' -> '.join(inner)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=16)
    args = parser.parse_args()
    batch = realistic_batch(args.samples)
    with tempfile.TemporaryDirectory() as tmp:
        part_codecs(batch, Path(tmp))
        part_pipelines(batch, Path(tmp))


if __name__ == "__main__":
    main()
