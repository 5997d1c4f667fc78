"""What the trainer needs to know about a sample store, as plain picklable data.

The parent process reads only this metadata (root attributes and commit records); the
arrays are opened lazily inside each DataLoader worker (see :mod:`train.datasets.shard_reader`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from data_schemas import SampleStore, StoreError
from data_schemas.errors import ConfigError


@dataclass(frozen=True)
class StoreIndex:
    """Committed shards of a store; ``keys[i]``: the sample keys of ``shards[i]`` in row order."""

    url: str
    height: int
    width: int
    shard_size: int
    shards: tuple[int, ...]
    keys: tuple[tuple[str, ...], ...]

    @classmethod
    def open(cls, url: str | os.PathLike[str]) -> StoreIndex:
        """Read the metadata of the store at ``url``; refuses stores with no committed sample."""
        store = SampleStore.open(url)
        shards = tuple(s for s in store.committed_shards if store.records[s].count > 0)
        if not shards:
            raise StoreError(
                store.url,
                "no committed shard with samples: nothing to train on "
                "(run `dmd3c generate` first or wait for shards)",
            )
        keys = tuple(tuple(store.records[s].keys) for s in shards)
        layout = store.layout
        return cls(store.url, layout.height, layout.width, layout.shard_size, shards, keys)

    @property
    def counts(self) -> tuple[int, ...]:
        return tuple(len(k) for k in self.keys)

    @property
    def num_samples(self) -> int:
        return sum(self.counts)

    def key(self, shard: int, offset: int) -> str:
        return self.keys[self.shards.index(shard)][offset]

    def subset(self, positions: range | list[int]) -> StoreIndex:
        """The index restricted to ``shards[p] for p in positions``."""
        pos = list(positions)
        return StoreIndex(
            self.url,
            self.height,
            self.width,
            self.shard_size,
            tuple(self.shards[p] for p in pos),
            tuple(self.keys[p] for p in pos),
        )

    def split(self, val_shards: int) -> tuple[StoreIndex, StoreIndex | None]:
        """(train, val): the last ``val_shards`` committed shards are held out for validation.

        With ``val_shards == 0`` or a store of a single shard there is no validation split.
        """
        if val_shards < 0:
            raise ConfigError(f"data.val_shards must be >= 0, got {val_shards}")
        if val_shards == 0 or len(self.shards) <= 1:
            return self, None
        if val_shards >= len(self.shards):
            raise ConfigError(
                f"data.val_shards={val_shards} leaves no training shard: the store "
                f"has {len(self.shards)} committed shards"
            )
        cut = len(self.shards) - val_shards
        return self.subset(range(cut)), self.subset(range(cut, len(self.shards)))
