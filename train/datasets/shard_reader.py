"""Whole-shard reads from a sample store with a small per-process cache of shards."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from data_schemas import SampleStore, StoreError
from train.datasets.sample import Sample
from train.datasets.store_index import StoreIndex

TRAIN_ARRAYS = ("rgb", "sparse_depth", "teacher_depth", "intrinsics")
"""The arrays stage 1 reads (teacher_output and T_cam_from_lidar are not needed)."""


class ShardReader:
    """Reads samples shard by shard; opens the store lazily in the process that reads.

    Pickling drops the open store and the cache, so a reader built in the parent can be
    sent to ``spawn`` DataLoader workers, each of which opens its own store handle.
    """

    def __init__(self, index: StoreIndex, capacity: int = 1) -> None:
        self.index = index
        self.capacity = max(1, capacity)
        self._store: SampleStore | None = None
        self._cache: OrderedDict[int, dict[str, np.ndarray]] = OrderedDict()

    def __getstate__(self) -> tuple[StoreIndex, int]:
        return self.index, self.capacity

    def __setstate__(self, state: tuple[StoreIndex, int]) -> None:
        self.index, self.capacity = state
        self._store = None
        self._cache = OrderedDict()

    @property
    def store(self) -> SampleStore:
        if self._store is None:
            self._store = SampleStore.open(self.index.url)
        return self._store

    def sample(self, shard: int, offset: int) -> Sample:
        """Sample ``offset`` of committed ``shard`` (views into the cached shard)."""
        arrays = self.shard(shard)
        return Sample(
            arrays["rgb"][offset],
            arrays["sparse_depth"][offset],
            arrays["teacher_depth"][offset],
            arrays["intrinsics"][offset],
            self.index.key(shard, offset),
        )

    def shard(self, shard: int) -> dict[str, np.ndarray]:
        if shard in self._cache:
            self._cache.move_to_end(shard)
            return self._cache[shard]
        arrays = self._read(shard)
        self._cache[shard] = arrays
        while len(self._cache) > self.capacity:
            self._cache.popitem(last=False)
        return arrays

    def _read(self, shard: int) -> dict[str, np.ndarray]:
        """The shard's training arrays, depth maps in stored units (uint16 m x 256 in a 2.x
        store). ``read_shard`` verifies every chunk's checksum and that every shard object
        of a committed shard exists, so no fill-value scan is needed here."""
        try:
            arrays = self.store.read_shard(shard, TRAIN_ARRAYS, stored=True)
        except StoreError:
            raise
        except Exception as err:  # codec / IO errors of a damaged shard
            self._diagnose(shard, err)
            raise  # _diagnose always raises
        keys = self.index.keys[self.index.shards.index(shard)]
        if any(len(a) != len(keys) for a in arrays.values()):
            raise StoreError(self.index.url, f"shard {shard}: read fewer rows than its "
                                             f"commit record's {len(keys)} samples")
        return arrays

    def _diagnose(self, shard: int, err: Exception) -> None:
        """Find the first unreadable sample of ``shard`` and raise a StoreError naming it."""
        base = shard * self.index.shard_size
        keys = self.index.keys[self.index.shards.index(shard)]
        for offset, key in enumerate(keys):
            for name in TRAIN_ARRAYS:
                try:
                    np.asarray(self.store.array(name)[base + offset])
                except Exception as sample_err:
                    raise StoreError(
                        self.index.url,
                        f"shard {shard}, sample {key!r} "
                        f"(row {base + offset}): cannot read {name!r} (corrupt "
                        f"chunk?): {_one_line(sample_err)}",
                    ) from sample_err
        raise StoreError(
            self.index.url,
            f"shard {shard} (samples {keys[0]!r}..{keys[-1]!r}): cannot read: {_one_line(err)}",
        ) from err


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"
