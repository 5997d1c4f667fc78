"""The one resumable sampler of every training stream, and the one per-sample RNG.

Per-sample randomness (:func:`sample_rng`): every random choice for a sample (crop, flip,
jitter, sparse points) comes from one generator seeded by (global seed, epoch, sample key),
so it does not depend on which worker or rank reads the sample, nor on resuming.

Shard-aware sample order, DDP splitting and the batch plan of a training stream:

One epoch's order (:func:`epoch_order`): shuffle the shard order, then shuffle the samples
inside consecutive groups of ``shuffle_shards`` shards (a shuffle buffer that spans a few
shards), so reading stays whole-shard and sequential while batches still mix shards.

DDP (:func:`rank_share`): the epoch order is padded by wrapping around to a multiple of the
world size (like ``torch.utils.data.DistributedSampler``) and cut into contiguous equal
shares, so every rank sees different samples, the same count, and mostly its own shards.

Workers (:class:`StreamPlan`): a rank's share is cut into ``num_regions`` contiguous regions,
one per DataLoader worker; batch ``j`` of an epoch comes from region ``j % num_regions``.
The DataLoader hands out worker outputs round-robin, so the batch sequence is a pure
function of (seed, epoch, rank, world size, batch size, regions): independent of timing,
and resumable from any batch.

Map-style datasets (KITTI frames, NYUv2 files) are planned as one shard holding every item
(:meth:`StreamPlan.for_items`: each epoch a seeded permutation of the items) and read
through :class:`PlanBatchSampler`, which hands the DataLoader the same batches.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from data_schemas.errors import ConfigError


def sample_rng(seed: int, epoch: int, key: str) -> np.random.Generator:
    """The generator of every random choice for sample ``key`` in ``epoch`` (a pure function
    of the three; evaluation-time draws use epoch 0)."""
    digest = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little")
    return np.random.default_rng([seed, epoch, digest])


def epoch_order(
    shards: Sequence[int], counts: Sequence[int], seed: int, epoch: int, shuffle_shards: int
) -> np.ndarray:
    """``[N, 2]`` int64 (shard, offset) rows of one epoch; ``shuffle_shards=0``: store order."""
    if len(shards) != len(counts):
        raise ValueError(f"{len(shards)} shards but {len(counts)} counts")
    if shuffle_shards < 0:
        raise ConfigError(f"data.shuffle_shards must be >= 0, got {shuffle_shards}")
    rows = [_shard_rows(s, c) for s, c in zip(shards, counts, strict=True)]
    if shuffle_shards == 0:
        return np.concatenate(rows) if rows else np.zeros((0, 2), np.int64)
    rng = np.random.default_rng([seed, epoch])
    shuffled = [rows[i] for i in rng.permutation(len(rows))]
    groups = [
        np.concatenate(shuffled[i : i + shuffle_shards])
        for i in range(0, len(shuffled), shuffle_shards)
    ]
    return np.concatenate([g[rng.permutation(len(g))] for g in groups])


def _shard_rows(shard: int, count: int) -> np.ndarray:
    return np.stack([np.full(count, shard, np.int64), np.arange(count, dtype=np.int64)], axis=1)


def rank_share(order: np.ndarray, rank: int, world_size: int) -> np.ndarray:
    """This rank's contiguous share of ``order``, padded by wrap-around to equal counts."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} out of range for world size {world_size}")
    total = len(order)
    if total == 0:
        return order
    per_rank = -(-total // world_size)
    padded = np.resize(order, (per_rank * world_size, *order.shape[1:]))  # repeats from start
    return padded[rank * per_rank : (rank + 1) * per_rank]


@dataclass(frozen=True)
class StreamPlan:
    """Which samples make up batch ``j`` of epoch ``e`` on one rank."""

    shards: tuple[int, ...]
    counts: tuple[int, ...]
    batch_size: int
    seed: int = 0
    shuffle_shards: int = 4
    rank: int = 0
    world_size: int = 1
    num_regions: int = 1

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.num_regions < 1:
            raise ConfigError(f"engine.batch_size gives {self.batch_size} samples per rank; "
                              f"it must be >= 1 per rank")
        if self.share_size < self.batch_size:
            raise ConfigError(
                f"{sum(self.counts)} training samples give {self.share_size} per "
                f"rank, fewer than the per-rank batch size {self.batch_size}: "
                f"use a smaller engine.batch_size or more training data"
            )

    @classmethod
    def for_items(cls, count: int, batch_size: int, seed: int = 0, rank: int = 0,
                  world_size: int = 1) -> StreamPlan:
        """The plan of a map-style dataset of ``count`` items: one shard holding them all, so
        each epoch is a seeded permutation of the items; rows are (0, item index)."""
        return cls((0,), (count,), batch_size, seed, 1, rank, world_size, 1)

    @property
    def share_size(self) -> int:
        return -(-sum(self.counts) // self.world_size)

    @property
    def batches_per_epoch(self) -> int:
        """Full batches per rank and epoch (the incomplete tail of a share is dropped)."""
        return self.share_size // self.batch_size

    def share(self, epoch: int) -> np.ndarray:
        order = epoch_order(self.shards, self.counts, self.seed, epoch, self.shuffle_shards)
        return rank_share(order, self.rank, self.world_size)

    def batch_rows(self, share: np.ndarray, j: int) -> np.ndarray:
        """``[batch_size, 2]`` (shard, offset) rows of batch ``j`` given the epoch's share."""
        total = self.batches_per_epoch
        if not 0 <= j < total:
            raise IndexError(f"batch {j} out of range [0, {total})")
        region, m = j % self.num_regions, j // self.num_regions
        before = sum(_region_len(total, r, self.num_regions) for r in range(region))
        start = (before + m) * self.batch_size
        return share[start : start + self.batch_size]

    def locate(self, global_batch: int) -> tuple[int, int]:
        """Global batch number over the whole run -> (epoch, batch within the epoch)."""
        return divmod(global_batch, self.batches_per_epoch)


def _region_len(total: int, region: int, regions: int) -> int:
    return (total - region + regions - 1) // regions


class SampleRef(NamedTuple):
    """Sample ``item`` of a map-style dataset, drawn in ``epoch`` for global batch ``batch``."""

    epoch: int
    item: int
    batch: int


class PlanBatchSampler(Sampler[list[SampleRef]]):
    """The batches ``start, start + 1, ...`` of a one-shard :class:`StreamPlan` (see
    :meth:`StreamPlan.for_items`) as lists of :class:`SampleRef`, for a DataLoader's
    ``batch_sampler``: datasets are indexed by (epoch, index) and never hold an epoch."""

    def __init__(self, plan: StreamPlan, start: int = 0) -> None:
        if plan.shards != (0,) or plan.num_regions != 1:
            raise ValueError("PlanBatchSampler reads a one-shard plan (StreamPlan.for_items)")
        self.plan, self.start = plan, start

    def __iter__(self) -> Iterator[list[SampleRef]]:
        cached: tuple[int, np.ndarray] | None = None
        number = self.start
        while True:
            epoch, j = self.plan.locate(number)
            if cached is None or cached[0] != epoch:
                cached = (epoch, self.plan.share(epoch))
            rows = self.plan.batch_rows(cached[1], j)
            yield [SampleRef(epoch, int(offset), number) for _, offset in rows]
            number += 1


T = TypeVar("T")


def single_thread(_: int) -> None:
    """DataLoader ``worker_init_fn``: one torch and one OpenCV thread per worker process (the
    workers are the parallelism; an OpenCV thread pool left running when a worker exits
    aborts it: "terminate called without an active exception")."""
    torch.set_num_threads(1)
    cv2.setNumThreads(1)


def plan_loader(dataset: Dataset[Any], plan: StreamPlan, start: int,
                collate_fn: Callable[[list[Any]], T], num_workers: int,
                pin_memory: bool = False) -> DataLoader[T]:
    """The training stream of a map-style dataset: batches ``start, start + 1, ...`` of
    ``plan``, assembled by ``collate_fn`` (in ``spawn``ed, persistent workers when
    ``num_workers`` > 0; the DataLoader returns them in order)."""
    sampler = PlanBatchSampler(plan, start)
    if num_workers == 0:
        return DataLoader(dataset, batch_sampler=sampler, collate_fn=collate_fn,
                          pin_memory=pin_memory)
    return DataLoader(dataset, batch_sampler=sampler, collate_fn=collate_fn,
                      num_workers=num_workers, pin_memory=pin_memory,
                      multiprocessing_context="spawn", persistent_workers=True,
                      worker_init_fn=single_thread)
