"""BP-Net benchmark: exact kNN (ours vs brute force, same run) and whole-network timings.

Run: ``.venv/bin/python benchmarks/bench_bpnet.py`` (CPU, about 2-3 minutes on 2 cores).
``--device cuda --batch 2 --amp bf16`` times the network on a GPU instead.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch import Tensor

from train.model import BPNet, sparse_knn

HEIGHT, WIDTH = 256, 1216
KITTI_POINTS = 18_000
EMPTY_TOP_ROWS = 60  # the LiDAR sees nothing above this row in a KITTI crop


def kitti_like_mask(seed: int = 0) -> Tensor:
    """[H, W] bool with ~18k valid pixels below an empty top band (KITTI-like density)."""
    gen = torch.Generator().manual_seed(seed)
    valid = torch.zeros(HEIGHT, WIDTH, dtype=torch.bool)
    density = KITTI_POINTS / ((HEIGHT - EMPTY_TOP_ROWS) * WIDTH)
    valid[EMPTY_TOP_ROWS:] = torch.rand(HEIGHT - EMPTY_TOP_ROWS, WIDTH, generator=gen) < density
    return valid


def brute_force_knn(valid: Tensor, k: int = 4, chunk: int = 1024) -> Tensor:
    """Every pixel against every valid point (the official kernel's method), chunked; same
    ranking (distance, then later raster index first). valid [H, W] -> indices [k, N]."""
    width = valid.shape[1]
    points = torch.nonzero(valid.reshape(-1)).squeeze(1)
    qx, qy = (points % width).float(), (points // width).float()
    out = torch.empty(k, valid.numel(), dtype=torch.long)
    for start in range(0, valid.numel(), chunk):
        pix = torch.arange(start, min(start + chunk, valid.numel()))
        d2 = (qx[None] - (pix % width).float()[:, None]) ** 2
        d2 += (qy[None] - (pix // width).float()[:, None]) ** 2  # exact integers in float32
        kth = torch.topk(d2, k, dim=1, largest=False).values[:, -1:]
        rows, cols = torch.nonzero(d2 <= kth, as_tuple=True)
        key = rows * 2**44 + d2[rows, cols].long() * 2**20 + (2**20 - 1 - points[cols])
        order = torch.argsort(key)
        first = torch.searchsorted(rows[order], torch.arange(pix.numel()))
        out[:, pix] = points[cols[order][first[:, None] + torch.arange(k)]].T
    return out


def timed(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``repeats`` calls, seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_knn(repeats: int) -> None:
    valid = kitti_like_mask()
    mask = valid[None, None]
    sparse_knn(mask)  # warm-up
    ours_s = timed(lambda: sparse_knn(mask), repeats)
    start = time.perf_counter()
    reference = brute_force_knn(valid)
    brute_s = time.perf_counter() - start
    assert torch.equal(sparse_knn(mask).indices[0], reference), "kNN differs from brute force"
    print(
        f"kNN 256x1216, {int(valid.sum())} valid points, k=4, threads={torch.get_num_threads()}:"
        " identical to brute force"
    )
    print(f"  ours        {ours_s * 1e3:9.1f} ms (median of {repeats})")
    print(f"  brute force {brute_s * 1e3:9.1f} ms")
    print(f"  speed-up    {brute_s / ours_s:9.1f} x")


def network_inputs(batch: int, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """Normalised rgb, KITTI-like sparse depth (metres) and K for a 256 x 1216 batch."""
    gen = torch.Generator().manual_seed(0)
    rgb = torch.randn(batch, 3, HEIGHT, WIDTH, generator=gen)
    depth = 2 + 78 * torch.rand(batch, 1, HEIGHT, WIDTH, generator=gen)
    sparse = depth * torch.stack([kitti_like_mask(seed) for seed in range(batch)])[:, None]
    K = torch.tensor([[721.5, 0.0, 609.6], [0.0, 721.5, 172.9 - 96], [0.0, 0.0, 1.0]])
    return rgb.to(device), sparse.to(device), K.expand(batch, 3, 3).contiguous().to(device)


def bench_network(batch: int, device: torch.device, amp: str | None) -> None:
    net = BPNet().to(device)
    inputs = network_inputs(batch, device)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp or "")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def forward() -> list[Tensor]:
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            return net(*inputs)

    def train_step() -> None:
        net.zero_grad(set_to_none=True)
        sum(o.mean() for o in forward()).backward()
        sync()

    def eval_step() -> None:
        with torch.no_grad():
            forward()
        sync()

    repeats = 3 if device.type == "cuda" else 1
    net.eval()
    eval_step() if device.type == "cuda" else None  # warm-up where it is cheap
    fwd_s = timed(eval_step, repeats)
    net.train()
    train_step() if device.type == "cuda" else None
    train_s = timed(train_step, repeats)
    label = f"batch {batch}, {device.type}, amp={amp or 'off'}, threads={torch.get_num_threads()}"
    print(f"BPNet 256x1216 ({label}):")
    print(f"  forward (eval, no_grad)   {fwd_s:8.2f} s")
    print(f"  forward+backward (train)  {train_s:8.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--batch", type=int, default=1, help="network batch size")
    parser.add_argument("--amp", choices=["bf16", "fp16"], default=None, help="autocast dtype")
    parser.add_argument(
        "--knn-threads",
        type=int,
        default=1,
        help="torch threads for the kNN comparison (both methods); 1 by default: our kNN is a"
        " chain of small ops and on a shared 2-core box OpenMP spinning dominates them",
    )
    parser.add_argument("--knn-repeats", type=int, default=5, help="timed runs of our kNN")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    parser.add_argument("--skip-knn", action="store_true", help="network timings only")
    parser.add_argument("--skip-network", action="store_true", help="kNN comparison only")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if not args.skip_knn:
        default_threads = torch.get_num_threads()
        torch.set_num_threads(args.knn_threads or default_threads)
        bench_knn(args.knn_repeats)
        torch.set_num_threads(default_threads)
    if not args.skip_network:
        bench_network(args.batch, torch.device(args.device), args.amp)


if __name__ == "__main__":
    main()
