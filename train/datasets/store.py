"""The stage-1 training stream and the validation batches over a sample store.

:class:`StoreStream` is an infinite ``IterableDataset`` of ready batches (use it with
``DataLoader(batch_size=None)``): DataLoader worker ``w`` of ``W`` builds global batches
``start + w, start + w + W, ...`` and the loader returns them round-robin, so the run sees
batches ``start, start + 1, ...`` in order whatever the timing. Resuming is starting the
stream at the next global batch. Each worker opens the store itself, lazily (``spawn``-safe).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from train.datasets.augment import AugmentConfig, augment, center_crop
from train.datasets.sample import Batch, stack
from train.datasets.sampling import StreamPlan, epoch_order, sample_rng, single_thread
from train.datasets.shard_reader import ShardReader
from train.datasets.store_index import StoreIndex


@dataclass(frozen=True)
class StreamConfig:
    """How one rank's training stream is read and augmented."""

    crop: tuple[int, int]
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    seed: int = 0


class StoreStream(IterableDataset[Batch]):
    """Infinite stream of augmented training batches for one rank (see module docstring):
    raw batches (uint8 rgb, uint16 depth crops, pending colour offsets), finished on the
    training device by the engine's ``batch.to(device)`` (:meth:`Batch.finish`)."""

    def __init__(
        self, index: StoreIndex, plan: StreamPlan, cfg: StreamConfig, start_batch: int = 0
    ) -> None:
        super().__init__()
        self.index, self.plan, self.cfg, self.start_batch = index, plan, cfg, start_batch

    def __iter__(self) -> Iterator[Batch]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        reader = ShardReader(self.index, capacity=max(1, self.plan.shuffle_shards))
        shares: dict[int, np.ndarray] = {}
        number = self.start_batch + worker
        while True:
            epoch, j = self.plan.locate(number)
            batch = self.build(reader, self._share(shares, epoch), epoch, j, number)
            if not reader.reading_ahead:
                ahead = self.next_shard(reader, shares, number, workers)
                if ahead is not None:
                    reader.prefetch(ahead)
            yield batch
            number += workers

    def _share(self, shares: dict[int, np.ndarray], epoch: int) -> np.ndarray:
        """The epoch's share of this rank, computed once (shares of epochs before
        ``epoch - 1`` are dropped: the stream and its look-ahead use two at a time)."""
        if epoch not in shares:
            shares[epoch] = self.plan.share(epoch)
            for old in [e for e in shares if e < epoch - 1]:
                del shares[old]
        return shares[epoch]

    def next_shard(self, reader: ShardReader, shares: dict[int, np.ndarray], number: int,
                   step: int) -> int | None:
        """The first shard that this worker's coming batches (``number + step``, ...; two
        shards' worth of rows at most) read and ``reader`` does not hold: the one to read
        ahead."""
        horizon = max(1, 2 * self.index.shard_size // self.plan.batch_size)
        for k in range(1, horizon + 1):
            epoch, j = self.plan.locate(number + k * step)
            for shard in self.plan.batch_rows(self._share(shares, epoch), j)[:, 0]:
                if not reader.holds(int(shard)):
                    return int(shard)
        return None

    def build(
        self, reader: ShardReader, share: np.ndarray, epoch: int, j: int, number: int
    ) -> Batch:
        """Global batch ``number`` = batch ``j`` of ``epoch``."""
        samples, offsets = [], []
        for shard, offset in self.plan.batch_rows(share, j):
            sample = reader.sample(int(shard), int(offset))
            rng = sample_rng(self.cfg.seed, epoch, sample.key)
            sample, colour = augment(sample, self.cfg.crop, self.cfg.augment, rng)
            samples.append(sample)
            offsets.append(colour)
        batch = stack(samples, offsets, epoch, number)
        reader.recycle()  # the batch holds copies: no view of an evicted shard is left
        return batch


def train_loader(
    stream: StoreStream, num_workers: int, pin_memory: bool = False, prefetch_factor: int = 2
) -> DataLoader[Batch]:
    """DataLoader over ``stream``; workers are ``spawn``ed and use one torch thread each."""
    if num_workers == 0:
        return DataLoader(stream, batch_size=None, pin_memory=pin_memory)
    return DataLoader(stream, batch_size=None, num_workers=num_workers, pin_memory=pin_memory,
                      multiprocessing_context="spawn", prefetch_factor=prefetch_factor,
                      worker_init_fn=single_thread)


def val_batches(
    index: StoreIndex,
    crop: tuple[int, int],
    batch_size: int,
    rank: int = 0,
    world_size: int = 1,
    max_samples: int = 0,
) -> Iterator[Batch]:
    """Centre-cropped, unaugmented raw batches (finished by ``.to(device)``) of this rank's
    part of the held-out shards."""
    order = epoch_order(index.shards, index.counts, 0, 0, shuffle_shards=0)
    if max_samples > 0:
        order = order[:max_samples]
    mine = np.array_split(order, world_size)[rank]
    reader = ShardReader(index, capacity=1)
    for start in range(0, len(mine), batch_size):
        samples = [
            center_crop(reader.sample(int(s), int(o)), crop)
            for s, o in mine[start : start + batch_size]
        ]
        batch = stack(samples)
        reader.recycle()
        yield batch
