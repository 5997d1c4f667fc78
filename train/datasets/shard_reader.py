"""Whole-shard reads from a sample store with a small per-process cache of shards, reused
decode buffers and a read-ahead of the next shard."""

from __future__ import annotations

from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from data_schemas import SampleStore, StoreError
from train.datasets.sample import Sample
from train.datasets.store_index import StoreIndex

TRAIN_ARRAYS = ("rgb", "sparse_depth", "teacher_depth", "intrinsics")
"""The arrays stage 1 reads (teacher_output and T_cam_from_lidar are not needed)."""


class ShardReader:
    """Reads samples shard by shard; opens the store lazily in the process that reads.

    Shards are decoded into buffers the reader keeps: a shard evicted from the cache
    *retires* its buffers, and :meth:`recycle` (called where no sample of an evicted shard
    is alive any more, e.g. once a batch is stacked) lets the next shard read reuse them.
    Without ``recycle`` every shard gets new memory. Reusing them spares the kernel zeroing
    ~140 MB of fresh pages per shard at 352 x 1216 (shards of 64), the largest cost of a
    whole-shard read (measured).

    :meth:`prefetch` decodes one shard ahead on a background thread (zarrs releases the GIL
    while it decodes), so that decoding overlaps the augmentation of the samples already
    read; at most one read is in flight, and its errors are raised when that shard is asked
    for.

    Pickling drops the open store, the cache, the buffers and the read-ahead, so a reader
    built in the parent can be sent to ``spawn`` DataLoader workers, each of which opens its
    own store.
    """

    def __init__(self, index: StoreIndex, capacity: int = 1) -> None:
        self.index = index
        self.capacity = max(1, capacity)
        self._store: SampleStore | None = None
        # shard -> (its arrays: views into its buffers, the buffers)
        self._cache: OrderedDict[int, tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]
        self._cache = OrderedDict()
        self._retired: list[dict[str, np.ndarray]] = []
        self._free: list[dict[str, np.ndarray]] = []
        self._ahead: tuple[int, dict[str, np.ndarray], Future[dict[str, np.ndarray]]] | None
        self._ahead = None
        self._thread: ThreadPoolExecutor | None = None

    def __getstate__(self) -> tuple[StoreIndex, int]:
        return self.index, self.capacity

    def __setstate__(self, state: tuple[StoreIndex, int]) -> None:
        self.__init__(*state)  # type: ignore[misc]

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
            return self._cache[shard][0]
        if self._ahead is not None and self._ahead[0] == shard:
            _, buffers, future = self._ahead
            self._ahead = None
            arrays = future.result()  # raises the read's StoreError
        else:
            if self._ahead is not None:  # read ahead for later: one read at a time
                self._ahead[2].exception()
            buffers = self._free.pop() if self._free else {}
            arrays = self._read(shard, buffers)
        self._cache[shard] = arrays, buffers
        while len(self._cache) > self.capacity:
            _, (_, retired) = self._cache.popitem(last=False)
            self._retired.append(retired)
        return arrays

    def holds(self, shard: int) -> bool:
        """Whether ``shard`` is cached or being read ahead."""
        return shard in self._cache or (self._ahead is not None and self._ahead[0] == shard)

    @property
    def reading_ahead(self) -> bool:
        """Whether a read-ahead has not been taken by :meth:`shard` yet."""
        return self._ahead is not None

    def prefetch(self, shard: int) -> None:
        """Start decoding ``shard`` on the background thread, unless it is held already or
        another read-ahead has not been taken yet."""
        if self.holds(shard) or self._ahead is not None:
            return
        if self._thread is None:
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="shard-read-ahead")
        buffers = self._free.pop() if self._free else {}
        self.store  # noqa: B018 - open the store here, not on the background thread
        self._ahead = (shard, buffers, self._thread.submit(self._read, shard, buffers))

    def recycle(self) -> None:
        """Let later reads reuse the buffers of evicted shards: call only when no sample of
        an evicted shard (a view into its buffers) will be used again."""
        self._free += self._retired
        self._retired = []
        del self._free[self.capacity:]

    def _read(self, shard: int, buffers: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The shard's training arrays, depth maps in stored units (uint16 m x 256 in a 2.x
        store), decoded into ``buffers`` (filled here when empty). ``read_shard`` verifies
        every chunk's checksum and that every shard object of a committed shard exists, so no
        fill-value scan is needed here."""
        for name in TRAIN_ARRAYS:
            if name not in buffers:
                buffers[name] = self.store.shard_buffer(name, stored=True)
        try:
            arrays = self.store.read_shard(shard, TRAIN_ARRAYS, stored=True, out=buffers)
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
