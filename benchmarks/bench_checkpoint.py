"""How long a checkpoint save stalls training: synchronous ``torch.save`` (before) against
the background :class:`~train.engine.checkpoint.CheckpointWriter` (after).

The payload is BP-Net's real resume state (weights, EMA, AdamW moments, rng, config):
~1.44 GB as ``last.pt``, plus ``weights.pt`` (the EMA weights, 0.36 GB). "Stall" is the time
the training thread is blocked in the save call; "on disk" the time until both files are
fsynced and renamed. Between saves an AdamW + EMA update touches the state, as training
does. The stall after is a CPU memory copy of the state (one copy of the EMA for both
files): on a GPU run a device-to-host copy, here a host copy, so it scales with the memory
bandwidth the benchmark prints.

    .venv/bin/python benchmarks/bench_checkpoint.py [--repeats 3] [--dir /tmp]

Goal (issue 14): the stall per save well under a second (it was 4-5 s).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from train.engine import EMA
from train.engine.checkpoint import (
    CheckpointWriter,
    atomic_save,
    capture_rng,
    make_payload,
    weights_payload,
)
from train.model import BPNet


class RunState:
    """BP-Net, its EMA and AdamW with moments: the state a save copies."""

    def __init__(self) -> None:
        self.model = BPNet()
        self.ema = EMA(self.model, 0.9999)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-3)
        for p in self.model.parameters():
            p.grad = torch.randn_like(p) * 1e-3
        self.step()

    def step(self) -> float:
        """An optimizer + EMA update: touches every tensor a save copies, as training does
        between two saves (a tensor untouched since its creation is slower to read)."""
        start = time.perf_counter()
        self.optimizer.step()
        self.ema.update(self.model)
        return time.perf_counter() - start

    def jobs(self, tmp: Path) -> list[tuple[dict, list[Path]]]:
        """(last.pt payload, weights.pt payload), as the trainer saves them."""
        ema = self.ema.module.state_dict()
        last = make_payload(net=self.model.state_dict(), step=1, epoch=0, ema=ema,
                            optimizer=self.optimizer.state_dict(), rng=[capture_rng()],
                            config="engine: {}\n")
        return [(last, [tmp / "last.pt"]), (weights_payload(ema, "ema", 1, 0),
                                             [tmp / "weights.pt"])]


def copy_bandwidth(gigabytes: float = 0.4) -> float:
    """GB/s of one large in-memory copy on this machine now (the snapshot is such a copy)."""
    src = torch.randn(int(gigabytes * 2.5e8))
    dst = torch.empty_like(src)
    dst.copy_(src)
    start = time.perf_counter()
    dst.copy_(src)
    return gigabytes / (time.perf_counter() - start)


def spread(values: list[float]) -> str:
    return (f"min {min(values):.3f} s, median {statistics.median(values):.3f} s, "
            f"max {max(values):.3f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="where to write (a temp dir)")
    args = parser.parse_args()
    state = RunState()
    with tempfile.TemporaryDirectory(dir=args.dir) as name:
        tmp = Path(name)
        size = sum(t.numel() * t.element_size() for t in _tensors(state.jobs(tmp)[0][0])) / 1e9
        before, stall, write, steps = [], [], [], []
        for _ in range(args.repeats):
            steps.append(state.step())
            start = time.perf_counter()
            for payload, paths in state.jobs(tmp):
                atomic_save(payload, paths[0])
            before.append(time.perf_counter() - start)
        writer = CheckpointWriter()
        for _ in range(args.repeats):
            steps.append(state.step())
            start = time.perf_counter()
            writer.save(*state.jobs(tmp))
            stall.append(time.perf_counter() - start)
            writer.wait()
            write.append(time.perf_counter() - start)
        writer.close()
        print(f"last.pt {(tmp / 'last.pt').stat().st_size / 1e9:.2f} GB ({size:.2f} GB of "
              f"tensors), weights.pt {(tmp / 'weights.pt').stat().st_size / 1e9:.2f} GB; "
              f"an AdamW + EMA update takes {spread(steps)}; memory copies at "
              f"{copy_bandwidth():.2f} GB/s now")
    print(f"before: synchronous torch.save of last.pt + weights.pt, training blocked "
          f"{spread(before)}")
    print(f"after:  background writer, training blocked {spread(stall)}; both files on disk "
          f"after {spread(write)}")
    print(f"stall before / after (median): "
          f"{statistics.median(before) / statistics.median(stall):.1f}x")


def _tensors(value: object) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        return [t for item in value.values() for t in _tensors(item)]
    if isinstance(value, list | tuple):
        return [t for item in value for t in _tensors(item)]
    return []


if __name__ == "__main__":
    main()
