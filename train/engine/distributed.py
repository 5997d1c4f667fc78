"""torch.distributed set-up: the same code runs under ``torchrun`` or as one process."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from data_schemas.errors import ConfigError


@dataclass(frozen=True)
class DistContext:
    """This process's place in the job: rank of world_size, and the device it trains on."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


DEVICES = ("auto", "cpu", "cuda", "cuda:N")


def parse_device(device: str) -> torch.device:
    """``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``.

    Used for ``engine.device`` and every ``--device`` option; a CUDA device without CUDA
    or an unknown name is a :class:`ConfigError` naming the allowed values.
    """
    text = str(device).strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        parsed = torch.device(text)
    except RuntimeError:
        parsed = None
    if parsed is None or parsed.type not in ("cpu", "cuda") or (
            parsed.type == "cpu" and parsed.index not in (None, 0)):
        raise ConfigError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available "
                          f"(use auto or cpu)")
    return parsed


def init_distributed(device: str = "auto", timeout_min: float = 30.0) -> DistContext:
    """Join the ``torchrun`` process group (gloo on CPU, nccl on CUDA) if WORLD_SIZE > 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    kind = parse_device(device)
    if kind.type == "cuda":
        if kind.index is None or world > 1:  # under torchrun each rank takes its local GPU
            kind = torch.device("cuda", local_rank)
        torch.cuda.set_device(kind)
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if kind.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=timedelta(minutes=timeout_min),
                                device_id=kind if kind.type == "cuda" else None)
    return DistContext(rank, world, local_rank, kind)


def shutdown(ctx: DistContext) -> None:
    """Leave the process group (nothing to do in one process)."""
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    """Wait for every rank (nothing to do in one process)."""
    if ctx.distributed:
        dist.barrier()


def all_sum(ctx: DistContext, values: torch.Tensor) -> torch.Tensor:
    """Sum of ``values`` over ranks (a copy; the identity in one process)."""
    out = values.detach().clone()
    if ctx.distributed:
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


def gather_objects(ctx: DistContext, obj: object) -> list[object]:
    """``obj`` of every rank, in rank order, on every rank."""
    if not ctx.distributed:
        return [obj]
    out: list[object] = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out
