"""Per-shard commit records: ``<store>/commits/shard-000012.json``, written after the data.

A shard counts as written only once its record exists. The record lists the keys stored
in the shard (in row order) and the samples that were skipped with their reasons, so a
reader needs nothing else to know which rows are real.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field

COMMITS_GROUP = "commits"
_RECORD_NAME = re.compile(r"^shard-(\d{6})\.json$")


@dataclass(frozen=True)
class SkippedSample:
    """A corpus item that produced no sample, and why (``corrupt image: ...``)."""

    key: str
    reason: str


@dataclass(frozen=True)
class ShardRecord:
    """The commit record of one shard: ``keys[i]`` is stored at row ``shard*size + i``."""

    shard: int
    keys: tuple[str, ...]
    skipped: tuple[SkippedSample, ...] = ()
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return len(self.keys)

    def to_json(self) -> bytes:
        body = asdict(self)
        body["count"] = self.count
        return json.dumps(body, sort_keys=True, indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes) -> ShardRecord:
        body = json.loads(data)
        skipped = tuple(SkippedSample(**item) for item in body.get("skipped", ()))
        keys = tuple(body["keys"])
        if body.get("count", len(keys)) != len(keys):
            raise ValueError(f"count {body['count']} != {len(keys)} keys")
        return cls(int(body["shard"]), keys, skipped, dict(body.get("extra", {})))


def record_name(shard: int) -> str:
    """Relative path of a shard's record inside the store."""
    return f"{COMMITS_GROUP}/shard-{shard:06d}.json"


def parse_record_name(name: str) -> int | None:
    """``shard-000012.json`` -> 12; other names (temporary files, zarr.json) -> None."""
    match = _RECORD_NAME.match(name)
    return int(match.group(1)) if match else None
