"""Stage-1 input pipeline and training step: the Zarr store vs a KITTI-style PNG folder.

Prints, in one run (``store_io``): bytes per sample of the store vs the same samples as a
PNG folder, write ms per sample on one core, loader samples/s of the training stream over
each in one process (3 repeats: min / median / max), the stored depth error, all at
352 x 1216; then the CPU time of one BP-Net training step at a small size.

    .venv/bin/python benchmarks/bench_pretrain.py [--samples 128] [--repeats 3]

Targets (issue 12): store bytes <= PNG folder; write <= 25 ms/sample/core; loader >= 5x the
PNG loader (median of 3); depth error within the documented bound.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from itertools import islice
from pathlib import Path

import numpy as np
import store_io
import torch

from train.datasets import StoreIndex
from train.datasets.synthetic import write_synthetic_store


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
        trainer.train_step(next(batches).to(ctx.device))  # warm-up
        times = []
        for batch in islice(batches, steps):
            start = time.perf_counter()
            trainer.train_step(batch.to(ctx.device))  # the engine's step: finish on the device
            times.append(time.perf_counter() - start)
    print(f"-- BP-Net training step on CPU ({torch.get_num_threads()} threads), batch 1, "
          f"{size[0]}x{size[1]}, fp32, AdamW + clip + EMA: median {np.median(times):.2f} s "
          f"over {steps} steps")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=128, help="store / PNG folder samples")
    parser.add_argument("--repeats", type=int, default=3, help="loader measurements")
    parser.add_argument("--step-size", type=int, nargs=2, default=(64, 128))
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    store_io.run(args.samples, args.repeats)
    with tempfile.TemporaryDirectory() as tmp:
        write_synthetic_store(Path(tmp) / "step.zarr", 8, tuple(args.step_size), shard_size=4)
        bench_step(StoreIndex.open(Path(tmp) / "step.zarr"), tuple(args.step_size), args.steps)


if __name__ == "__main__":
    main()
