"""Stage-1 input pipeline and training step: the Zarr store vs a KITTI-style PNG folder.

Writes the same synthetic samples twice, as a sharded Zarr store (``data_schemas``) and as
a PNG folder (rgb PNG + 16-bit depth PNGs, metres * 256, like KITTI depth completion),
then measures DataLoader throughput (samples/s, 1 and 2 spawned workers) of the training
stream over each, and the CPU time of one BP-Net training step at a small size.

    .venv/bin/python benchmarks/bench_pretrain.py [--samples 64] [--canvas 352 1216]

Goal (issue 6): the store loader >= 5x the PNG loader's samples/s per process.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from itertools import islice
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from train.datasets import (
    AugmentConfig,
    Sample,
    StoreIndex,
    StoreStream,
    StreamConfig,
    StreamPlan,
    collate,
    train_loader,
)
from train.datasets.augment import augment
from train.datasets.sampling import sample_rng
from train.datasets.shard_reader import ShardReader
from train.datasets.synthetic import write_synthetic_store

BATCH = 4


def write_png_folder(index: StoreIndex, root: Path) -> list[Path]:
    """Every store sample as ``<root>/<n>/{rgb.png, sparse.png, teacher.png, K.txt}``."""
    reader, folders = ShardReader(index), []
    for shard, keys in zip(index.shards, index.keys, strict=True):
        for offset in range(len(keys)):
            view = reader.sample(shard, offset)
            folder = root / f"{len(folders):06d}"
            folder.mkdir(parents=True)
            cv2.imwrite(str(folder / "rgb.png"), cv2.cvtColor(view.rgb, cv2.COLOR_RGB2BGR))
            for name, depth in (("sparse", view.sparse), ("teacher", view.target)):
                png = np.clip(np.round(depth * 256.0), 0, 65535).astype(np.uint16)
                cv2.imwrite(str(folder / f"{name}.png"), png)
            np.savetxt(folder / "K.txt", view.K)
            folders.append(folder)
    return folders


class PngFolder(Dataset):
    """The usual KITTI-style loader: decode three PNGs per sample, same augmentation."""

    def __init__(self, folders: list[Path], crop: tuple[int, int], aug: AugmentConfig) -> None:
        self.folders, self.crop, self.aug = folders, crop, aug

    def __len__(self) -> int:
        return len(self.folders)

    def __getitem__(self, i: int) -> tuple[Sample, np.ndarray]:
        folder = self.folders[i]
        rgb = cv2.cvtColor(cv2.imread(str(folder / "rgb.png")), cv2.COLOR_BGR2RGB)
        sparse, teacher = (cv2.imread(str(folder / f"{n}.png"), cv2.IMREAD_UNCHANGED)
                           .astype(np.float32) / 256.0 for n in ("sparse", "teacher"))
        K = np.loadtxt(folder / "K.txt", dtype=np.float32)
        view = Sample(rgb, sparse, teacher, K, folder.name)
        return augment(view, self.crop, self.aug, sample_rng(0, 0, folder.name))


def collate_pairs(items: list[tuple[Sample, np.ndarray]]):
    return collate([v for v, _ in items], [r for _, r in items])


def _single_thread(_: int) -> None:
    torch.set_num_threads(1)
    cv2.setNumThreads(0)  # OpenCV's pool aborts spawned workers at exit otherwise


def png_loader(folders: list[Path], crop: tuple[int, int], aug: AugmentConfig,
               workers: int) -> DataLoader:
    extra = {"multiprocessing_context": "spawn", "worker_init_fn": _single_thread} \
        if workers else {}
    return DataLoader(PngFolder(folders, crop, aug), batch_size=BATCH, shuffle=True,
                      num_workers=workers, collate_fn=collate_pairs, drop_last=True, **extra)


def store_loader(index: StoreIndex, crop: tuple[int, int], aug: AugmentConfig,
                 workers: int) -> DataLoader:
    plan = StreamPlan(index.shards, index.counts, BATCH, shuffle_shards=2,
                      num_regions=max(1, workers))
    return train_loader(StoreStream(index, plan, StreamConfig(crop, aug)), workers)


def samples_per_s(loader: DataLoader, batches: int) -> float:
    """Throughput after the first batch (worker start-up excluded)."""
    iterator = iter(loader)
    next(iterator)
    start, seen = time.perf_counter(), 0
    while seen < batches:
        try:
            next(iterator)
            seen += 1
        except StopIteration:  # a new epoch of a finite loader
            iterator = iter(loader)
    rate = batches * BATCH / (time.perf_counter() - start)
    _close(iterator)
    return rate


def _close(iterator: object) -> None:
    """Stop the workers; torch 2.13 spawned workers holding big shared tensors may abort
    ("terminate called without an active exception") at shutdown: harmless here."""
    try:
        iterator._shutdown_workers()  # type: ignore[attr-defined]
    except (AttributeError, RuntimeError):
        pass


def bench_loaders(index: StoreIndex, folders: list[Path], crop: tuple[int, int],
                  batches: int) -> None:
    for label, aug in (("decode + crop + flip", AugmentConfig(jitter_std=0.0)),
                       ("full augmentation (+ PCA jitter)", AugmentConfig())):
        print(f"-- loader, {label}; batches of {BATCH}, crop {crop[0]}x{crop[1]}")
        for workers in (1, 2):
            png = samples_per_s(png_loader(folders, crop, aug, workers), batches)
            zarr = samples_per_s(store_loader(index, crop, aug, workers), batches)
            print(f"   {workers} worker(s): store {zarr:7.1f} samples/s ({zarr / workers:6.1f} "
                  f"per process) | PNG {png:6.1f} samples/s ({png / workers:5.1f} per process)"
                  f" | ratio {zarr / png:4.1f}x")


def bench_step(index: StoreIndex, size: tuple[int, int], steps: int) -> None:
    from train.engine import Trainer, init_distributed
    from train.engine.config import load_structured
    from train.stage1.config import PretrainConfig
    from train.stage1.recipe import build_recipe

    cfg = load_structured(PretrainConfig, [], [
        "engine.batch_size=1", f"data.crop=[{size[0]},{size[1]}]", "data.num_workers=0",
        "engine.device=cpu", "engine.progress=false", "data.val_shards=0"])
    ctx = init_distributed("cpu")
    recipe = build_recipe(cfg, index, ctx)
    with tempfile.TemporaryDirectory() as run:
        trainer = Trainer(recipe, cfg.engine, cfg.optim, cfg.schedule, Path(run), ctx)
        batches = iter(recipe.make_batches(0))
        trainer.train_step(next(batches))  # warm-up
        times = []
        for batch in islice(batches, steps):
            start = time.perf_counter()
            trainer.train_step(batch)
            times.append(time.perf_counter() - start)
    print(f"-- BP-Net training step on CPU ({torch.get_num_threads()} threads), batch 1, "
          f"{size[0]}x{size[1]}, fp32, AdamW + clip + EMA: median {np.median(times):.2f} s "
          f"over {steps} steps")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=48)
    parser.add_argument("--canvas", type=int, nargs=2, default=(352, 1216))
    parser.add_argument("--batches", type=int, default=10, help="timed batches per loader")
    parser.add_argument("--step-size", type=int, nargs=2, default=(64, 128))
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    canvas = tuple(args.canvas)
    crop = (min(256, canvas[0]) // 32 * 32, min(1216, canvas[1]) // 32 * 32)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_synthetic_store(root / "store.zarr", args.samples, canvas, shard_size=16)
        index = StoreIndex.open(root / "store.zarr")
        folders = write_png_folder(index, root / "png")
        size_png = sum(f.stat().st_size for f in (root / "png").rglob("*") if f.is_file())
        size_zarr = sum(f.stat().st_size for f in (root / "store.zarr").rglob("*")
                        if f.is_file())
        print(f"{args.samples} samples {canvas[0]}x{canvas[1]}: store {size_zarr / 2**20:.0f} "
              f"MiB (all arrays), PNG folder {size_png / 2**20:.0f} MiB")
        bench_loaders(index, folders, crop, args.batches)
        bench_step(index, tuple(args.step_size), args.steps)


if __name__ == "__main__":
    main()
