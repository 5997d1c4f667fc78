"""``dmd3c migrate SRC DST``: copy a sample store (schema 1.x or 2.x) into a new 2.0 store.

Every committed shard is read (checksums verified where the source has them) and written
with the current codecs, commit record (keys, skips, extras) included; the generator's
attributes are kept, so ``dmd3c generate`` with the same config resumes the new store.
Depth values change only within the 2.0 precision (README: "The sample store").
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from tqdm import tqdm

from data_schemas.errors import StoreError
from data_schemas.layout import StoreInfo, StoreLayout
from data_schemas.sample_schema import RgbCodec
from data_schemas.sample_store import SampleStore, create_store
from data_schemas.shard_writer import write_shard

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MigrationReport:
    """What :func:`migrate_store` copied."""

    source: str
    target: str
    source_version: str
    shards: int
    samples: int
    pending: int


def migrate_store(source: str | os.PathLike[str], target: str | os.PathLike[str],
                  rgb_codec: RgbCodec = "lossless", overwrite: bool = False,
                  progress: bool = False) -> MigrationReport:
    """Write every committed shard of ``source`` into a new schema-2.0 store ``target``."""
    src = SampleStore.open(source)
    if os.fspath(source) == os.fspath(target):
        raise StoreError(src.url, "migrate needs a new target store, not the source itself")
    old = src.layout
    layout = StoreLayout(old.height, old.width, old.num_shards, old.shard_size, rgb_codec)
    dst = create_store(target, layout, _info(src), overwrite=overwrite)
    for shard in tqdm(src.committed_shards, desc="migrate", unit="shard", disable=not progress):
        record = src.records[shard]
        batch = src.read_shard(shard, tuple(n for n in src.specs if n != "valid"))
        write_shard(dst, shard, batch if record.count else {}, skipped=record.skipped,
                    extra=record.extra)
    if src.pending_shards:
        log.warning("%s: %d uncommitted shards were not copied (re-run the generator on %s)",
                    src.url, len(src.pending_shards), dst.url)
    return MigrationReport(src.url, dst.url, src.schema_version, len(src.committed_shards),
                           src.num_samples, len(src.pending_shards))


def _info(store: SampleStore) -> StoreInfo:
    def part(name: str) -> dict[str, object]:
        value = store.attrs.get(name)
        return dict(value) if isinstance(value, dict) else {}

    return StoreInfo(part("generator"), part("teacher"), part("sensor"))
