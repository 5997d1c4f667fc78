"""The sample store against a KITTI-style PNG folder, on the same samples at 352 x 1216.

Used by ``bench_pretrain.py`` and ``bench_generate.py``; prints, in one run:

* bytes per sample: the store (every array) vs the PNG folder (rgb PNG, 16-bit PNGs of the
  two depth maps at 1/256 m like KITTI, the teacher output as a 16-bit PNG over its own
  range (it has no fixed unit), K / pose / key as text), same samples;
* write ms per sample on one core: CPU time of ``write_shard`` (encode + checksum + commit);
* loader samples/s in one process (DataLoader without workers, one thread each for torch
  and OpenCV), store stream vs PNG folder, 3 repeats: min / median / max, ratio of the
  medians; the store twice: as it runs by default (zarrs' decoder threads on every core,
  the next shard read ahead on a background thread) and with the whole process pinned to
  one core (one zarrs thread: per core, as in one DataLoader worker per core). The PNG
  loader decodes on one thread either way (``cv2.imread`` of a PNG has no threads). Both
  loaders do the same per-sample work after decoding: the augmentation's random crop, flip
  and PCA colour offset, then stack the raw batch (uint8 rgb, uint16 depth at 1/256 m,
  pending offsets); the per-pixel float work (offset, clip, normalisation, depth to float32
  m: ``Batch.finish``) runs where training runs it, on the device after
  ``batch.to(device)``, for both; its CPU cost is printed beside, in neither number. Each
  loader is timed in its steady state, after one whole pass (a training run reads for
  hours; a process's first shard reads cost 2-3x the later ones, measured: memory the
  process touches first);
* the depth error of the store against the float32 values written (documented bound).

Samples: the real KITTI frames of ``../shared/data/kitti_sample`` (rgb, cropped to the KITTI
352 x 1216 window; a KITTI-like synthetic street scene when absent) with the generator's own
per-sample computation (``pipeline.simulate``: metric teacher depth, K, HDL-64E scan) on a
street-scene teacher output with smooth patch-level (14 px) variation like a ViT's.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import torch
import zarr
from torch.utils.data import DataLoader, Dataset

from data_schemas import SampleStore, StoreInfo, StoreLayout, create_store, write_shard
from pipeline.sensors import load_sensor
from pipeline.simulate import simulate
from pipeline.synthetic import kitti_like_scene
from train.datasets import (
    AugmentConfig,
    Sample,
    StoreIndex,
    StoreStream,
    StreamConfig,
    StreamPlan,
    train_loader,
)
from train.datasets.augment import augment
from train.datasets.sample import Batch, stack
from train.datasets.sampling import sample_rng

HW = (352, 1216)
SHARD_SIZE = 64
"""The store's default: the per-shard costs of a write spread over 64 samples."""
BATCH = 4
KITTI_FRAMES = Path(__file__).resolve().parents[2] / "shared" / "data" / "kitti_sample"


def _rgb_frames() -> list[np.ndarray]:
    frames = []
    for path in sorted(KITTI_FRAMES.glob("raw/*/*/image_0[23]/data/*.png")):
        image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        h, w = image.shape[:2]
        left = (w - HW[1]) // 2
        frames.append(np.ascontiguousarray(image[h - HW[0]:, left:left + HW[1]]))
    return frames


def _teacher_output(seed: int) -> np.ndarray:
    """Relative disparity of a street scene with smooth 1-2 % patch-level variation."""
    scene = kitti_like_scene(seed, HW)
    rng = np.random.default_rng(seed)
    grid = rng.normal(0.0, 0.015, (HW[0] // 14 + 1, HW[1] // 14 + 1)).astype(np.float32)
    smooth = cv2.resize(grid, HW[::-1], interpolation=cv2.INTER_LINEAR)
    disparity = np.where(scene.depth > 0, 10.0 / np.maximum(scene.depth, 1e-3), 0.0)
    return (disparity * (1.0 + smooth)).astype(np.float32)


def realistic_batch(count: int, seed: int = 0) -> dict[str, object]:
    """``count`` samples of every store array, as ``pipeline.generate`` would write them."""
    frames = _rgb_frames() or [kitti_like_scene(i, HW).rgb for i in range(3)]
    sensor = load_sensor("hdl64e")
    rows = []
    for i in range(count):
        raw = _teacher_output(seed * 1000 + i)
        sim = simulate(raw, "disparity", sensor, seed, key=f"bench/{seed}/{i:04d}.png")
        rows.append((frames[i % len(frames)], sim, raw))
    keys = [f"bench/{seed}/{i:04d}.png" for i in range(count)]
    return {
        "rgb": np.stack([r[0] for r in rows]),
        "sparse_depth": np.stack([r[1].scan.sparse_depth for r in rows]).astype(np.float32),
        "teacher_depth": np.stack([r[1].depth for r in rows]).astype(np.float32),
        "teacher_output": np.stack([r[2] for r in rows]),
        "intrinsics": np.stack([r[1].scan.K for r in rows]).astype(np.float32),
        "T_cam_from_lidar": np.stack([r[1].scan.T_cam_from_lidar for r in rows]).astype(
            np.float32),
        "key": keys,
        "source": [f"file:///corpus/{k}" for k in keys],
    }


# -- writing -----------------------------------------------------------------------------
def create_bench_store(url: Path, count: int) -> SampleStore:
    layout = StoreLayout.for_samples(count, *HW, shard_size=SHARD_SIZE)
    return create_store(url, layout, StoreInfo(teacher={"id": "bench"},
                                                sensor={"preset": "hdl64e"}))


def timed_write(store: SampleStore, shard: int, batch: dict[str, object]) -> float:
    """CPU seconds of one ``write_shard`` (encode + checksums + commit)."""
    start = time.process_time()
    write_shard(store, shard, batch)
    return time.process_time() - start


def _png16(path: Path, metres: np.ndarray) -> None:
    cv2.imwrite(str(path), np.clip(np.round(metres * 256.0), 0, 65535).astype(np.uint16))


def _png16_scaled(path: Path, values: np.ndarray) -> None:
    """Teacher units (relative disparity: no fixed unit) as 16-bit PNG over its own range
    (full 16-bit precision, like the store's float16), the scale in a text file."""
    top = max(float(np.abs(values).max()), 1e-12)
    cv2.imwrite(str(path), np.round(values / top * 65535).astype(np.uint16))
    path.with_suffix(".scale.txt").write_text(f"{top!r}\n")


def write_png_folder(root: Path, batch: dict[str, object]) -> list[Path]:
    """Every sample as ``<root>/<n>/{rgb,sparse,teacher,teacher_output}.png`` + text files."""
    arrays = {k: np.asarray(v) for k, v in batch.items()}
    folders = []
    for i in range(len(arrays["key"])):
        folder = root / str(arrays["key"][i]).replace("/", "_")
        folder.mkdir(parents=True)
        cv2.imwrite(str(folder / "rgb.png"), cv2.cvtColor(arrays["rgb"][i], cv2.COLOR_RGB2BGR))
        for name, array in (("sparse", "sparse_depth"), ("teacher", "teacher_depth")):
            _png16(folder / f"{name}.png", arrays[array][i])
        _png16_scaled(folder / "teacher_output.png", arrays["teacher_output"][i])
        np.savetxt(folder / "K.txt", arrays["intrinsics"][i])
        np.savetxt(folder / "pose.txt", arrays["T_cam_from_lidar"][i])
        (folder / "key.txt").write_text(f"{arrays['key'][i]}\n{arrays['source'][i]}\n")
        folders.append(folder)
    return folders


def folder_bytes(root: Path) -> int:
    return sum(f.stat().st_size for f in root.rglob("*") if f.is_file())


# -- loading -----------------------------------------------------------------------------
class PngFolder(Dataset):
    """The usual KITTI-style loader: decode the three PNGs training needs (depth kept in the
    PNGs' uint16 1/256 m, like the store stream's), same augmentation, same raw batches."""

    def __init__(self, folders: list[Path], crop: tuple[int, int], aug: AugmentConfig) -> None:
        self.folders, self.crop, self.aug = folders, crop, aug

    def __len__(self) -> int:
        return len(self.folders)

    def __getitem__(self, i: int) -> tuple[Sample, np.ndarray]:
        folder = self.folders[i]
        rgb = cv2.cvtColor(cv2.imread(str(folder / "rgb.png")), cv2.COLOR_BGR2RGB)
        sparse, teacher = (cv2.imread(str(folder / f"{n}.png"), cv2.IMREAD_UNCHANGED)
                           for n in ("sparse", "teacher"))
        K = np.loadtxt(folder / "K.txt", dtype=np.float32)
        view = Sample(rgb, sparse, teacher, K, folder.name)
        return augment(view, self.crop, self.aug, sample_rng(0, 0, folder.name))


def _stack_pairs(items: list[tuple[Sample, np.ndarray]]) -> Batch:
    return stack([v for v, _ in items], [r for _, r in items])


def png_loader(folders: list[Path], crop: tuple[int, int], aug: AugmentConfig) -> DataLoader:
    return DataLoader(PngFolder(folders, crop, aug), batch_size=BATCH, shuffle=True,
                      num_workers=0, collate_fn=_stack_pairs, drop_last=True)


def store_loader(index: StoreIndex, crop: tuple[int, int], aug: AugmentConfig) -> DataLoader:
    plan = StreamPlan(index.shards, index.counts, BATCH, shuffle_shards=1, num_regions=1)
    return train_loader(StoreStream(index, plan, StreamConfig(crop, aug)), 0)


def samples_per_s(make: Callable[[], DataLoader], samples: int, warm_up: int) -> float:
    """Samples/s over ``samples`` samples (whole batches), after ``warm_up`` samples (one
    whole pass: the steady state of a long run) from the same loader."""
    batches = _endless(make)
    for _ in range(-(-warm_up // BATCH)):
        next(batches)
    timed = -(-samples // BATCH)
    start = time.perf_counter()
    for _ in range(timed):
        next(batches)
    return timed * BATCH / (time.perf_counter() - start)


def _endless(make: Callable[[], DataLoader]) -> Iterator[object]:
    """The batches of ``make()``, epoch after epoch (a finite loader is made again)."""
    while True:
        yield from make()


def finish_ms(raw: Batch, repeats: int = 5) -> float:
    """Best ms per sample of ``Batch.finish`` (jitter offset, clip, normalisation, depth to
    float32 m) of one raw batch on one CPU core (training runs it on the device)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        raw.finish()
        times.append(time.perf_counter() - start)
    return 1000 * min(times) / raw.size


@contextlib.contextmanager
def one_core() -> Iterator[None]:
    """Every thread of this process (and those it starts) on one CPU while inside: the
    store's read-ahead thread and zarrs then share that core with the loader (per core)."""
    tasks = Path("/proc/self/task")
    if not hasattr(os, "sched_setaffinity") or not tasks.is_dir():
        yield  # not Linux: unpinned
        return
    before = os.sched_getaffinity(0)
    core = {min(before)}
    threads = [int(t.name) for t in tasks.iterdir()]
    for tid in threads:
        os.sched_setaffinity(tid, core)
    try:
        yield
    finally:
        for tid in [int(t.name) for t in tasks.iterdir()]:
            with contextlib.suppress(OSError):  # a thread that ended meanwhile
                os.sched_setaffinity(tid, before)


def _zarr_threads() -> int:
    """zarr(s)' decoder threads as configured (default: every core)."""
    return int(zarr.config.get("threading.max_workers") or os.cpu_count() or 1)


def _spread(values: list[float]) -> str:
    return (f"min {min(values):6.1f} / median {statistics.median(values):6.1f} / max "
            f"{max(values):6.1f}")


# -- the report --------------------------------------------------------------------------
def depth_error(store: SampleStore, shard: int, batch: dict[str, object]) -> dict[str, float]:
    """Largest |stored - written| per depth map of a shard (m; teacher output: relative)."""
    names = ("sparse_depth", "teacher_depth", "teacher_output")
    got = store.read_shard(shard, names)
    worst = {}
    for name in names:
        want = np.asarray(batch[name], dtype=np.float64)
        diff = np.abs(got[name].astype(np.float64) - want)
        if name == "teacher_output":
            diff = diff / np.maximum(np.abs(want), 1e-30)
        assert np.array_equal(got[name] == 0, want == 0), f"{name}: zeros not preserved"
        assert np.isfinite(got[name]).all(), f"{name}: not finite"
        worst[name] = float(diff.max())
    return worst


def build(root: Path, num_samples: int) -> tuple[list[Path], float, dict[str, float]]:
    """Store + PNG folder of the same samples, shard by shard (bounded memory): the PNG
    folders, the store's write CPU seconds and its largest depth errors."""
    store = create_bench_store(root / "store.zarr", num_samples)
    folders, cpu, errors = [], 0.0, dict.fromkeys(("sparse_depth", "teacher_depth",
                                                   "teacher_output"), 0.0)
    for shard in range(store.layout.num_shards):
        batch = realistic_batch(min(SHARD_SIZE, num_samples - shard * SHARD_SIZE), seed=shard)
        cpu += timed_write(store, shard, batch)
        folders += write_png_folder(root / "png", batch)
        check = depth_error(SampleStore.open(root / "store.zarr"), shard, batch)
        errors = {k: max(v, check[k]) for k, v in errors.items()}
    return folders, cpu, errors


def run(num_samples: int = 128, repeats: int = 3, timed_samples: int = 128,
        crop: tuple[int, int] = (256, 1216)) -> dict[str, float]:
    """Print the store-vs-PNG table at 352 x 1216; return its numbers (one thread each for
    torch and OpenCV while the loaders run, as in a DataLoader worker; zarr(s) with its
    default threads and with one)."""
    if num_samples < 2 * SHARD_SIZE:  # one shard stays decoded between passes: no decode timed
        raise SystemExit(f"store_io: {num_samples} samples is one shard; use at least "
                         f"{2 * SHARD_SIZE} so that the loader decodes every shard it reads")
    threads = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    try:
        return _run(num_samples, repeats, timed_samples, crop)
    finally:
        torch.set_num_threads(threads[0])
        cv2.setNumThreads(threads[1])


def _run(num_samples: int, repeats: int, timed_samples: int,
         crop: tuple[int, int]) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folders, write_cpu, errors = build(root, num_samples)
        store_bytes, png_bytes = folder_bytes(root / "store.zarr"), folder_bytes(root / "png")
        index = StoreIndex.open(root / "store.zarr")
        rates: dict[str, list[float]] = {"store": [], "store_1": [], "png": []}
        aug = AugmentConfig()
        for _ in range(repeats):
            rates["store"].append(samples_per_s(lambda: store_loader(index, crop, aug),
                                                timed_samples, num_samples))
            with zarr.config.set({"threading.max_workers": 1}), one_core():
                rates["store_1"].append(samples_per_s(lambda: store_loader(index, crop, aug),
                                                      timed_samples, num_samples))
            rates["png"].append(samples_per_s(lambda: png_loader(folders, crop, aug),
                                              timed_samples, num_samples))
        finish = finish_ms(next(iter(store_loader(index, crop, aug))))
    numbers = {
        "finish_ms": finish,
        "store_bytes": store_bytes / num_samples, "png_bytes": png_bytes / num_samples,
        "write_ms": 1000 * write_cpu / num_samples,
        "store_rate": statistics.median(rates["store"]),
        "store_rate_1": statistics.median(rates["store_1"]),
        "png_rate": statistics.median(rates["png"]),
        **{f"error_{k}": v for k, v in errors.items()},
    }
    _print(numbers, rates, num_samples, crop)
    return numbers


def _print(n: dict[str, float], rates: dict[str, list[float]], count: int,
           crop: tuple[int, int]) -> None:
    ratio_size = n["store_bytes"] / n["png_bytes"]
    ratio_rate = n["store_rate"] / n["png_rate"]
    print(f"-- sample store vs KITTI-style PNG folder: {count} samples {HW[0]}x{HW[1]} "
          f"(real KITTI rgb, simulated HDL-64E), shards of {SHARD_SIZE}")
    print(f"   bytes/sample   store {n['store_bytes'] / 1e6:6.3f} MB | PNG folder "
          f"{n['png_bytes'] / 1e6:6.3f} MB | ratio {ratio_size:4.2f}  (target <= 1: "
          f"{'met' if ratio_size <= 1 else 'NOT met'})")
    print(f"   write          {n['write_ms']:6.1f} ms/sample CPU, one core  (target <= 25: "
          f"{'met' if n['write_ms'] <= 25 else 'NOT met'})")
    ratio_core = n["store_rate_1"] / n["png_rate"]
    print(f"   loader, one process, steady state: decode + crop {crop[0]}x{crop[1]} + flip + "
          f"PCA offset, raw batches of {BATCH} (uint8 rgb, uint16 depth), samples/s:")
    print(f"     store, {_zarr_threads()} zarrs threads + read-ahead  {_spread(rates['store'])}")
    print(f"     store, pinned to one core         {_spread(rates['store_1'])}")
    print(f"     PNG folder (one thread)           {_spread(rates['png'])}")
    print(f"     ratio of medians {ratio_rate:4.2f}x  (target >= 5: "
          f"{'met' if ratio_rate >= 5 else 'NOT met'}); per core {ratio_core:4.2f}x")
    print(f"     + on the training device, both: Batch.finish (offset, clip, normalise, depth "
          f"to m) {n['finish_ms']:.2f} ms/sample on one CPU core (not in the numbers above)")
    print(f"   depth error    sparse {n['error_sparse_depth'] * 1000:.3f} mm, teacher "
          f"{n['error_teacher_depth'] * 1000:.3f} mm (bound 1/512 m = 1.953 mm), teacher output "
          f"{n['error_teacher_output']:.2e} relative (bound 2^-11 = 4.88e-04); zeros exact, "
          f"no NaN")
