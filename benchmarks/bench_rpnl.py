"""Released RPNL (``train.losses.released.rpnl``): per-crop loop vs all crops batched.

Run: ``.venv/bin/python benchmarks/bench_rpnl.py`` (CPU, ~1 minute) or ``--device cuda`` on a
GPU. Times forward + backward of one scale's 32 crops at the released crop (2 x 256 x 1216)
and prints min/median/max of each path and their ratio, measured in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from train.losses.released import draw_crops, rpnl


def _time(device: torch.device, batched: bool, repeats: int) -> list[float]:
    pred = torch.rand(2, 1, 256, 1216, device=device, requires_grad=True)
    target = torch.rand(2, 1, 256, 1216, device=device)
    crops = draw_crops(256, 1216, generator=torch.Generator().manual_seed(0))
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        rpnl(pred, target, crops, batched).backward()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times[1:]  # the first run warms up


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    device = torch.device(args.device)
    medians = {}
    for batched in (False, True):
        times = _time(device, batched, args.repeats)
        medians[batched] = statistics.median(times)
        name = "batched" if batched else "loop"
        print(f"{name:8s} min {min(times) * 1e3:8.1f} ms  median {medians[batched] * 1e3:8.1f} ms"
              f"  max {max(times) * 1e3:8.1f} ms  ({device})")
    print(f"batched / loop = {medians[True] / medians[False]:.2f}")


if __name__ == "__main__":
    main()
