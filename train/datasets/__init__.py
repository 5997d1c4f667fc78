"""Every dataset of the training room, over one :class:`Sample` type and one batch.

``sample`` (Sample, Batch, collate), ``augment`` (the one crop/flip/jitter module),
``sampling`` (the one resumable sampler and the per-sample RNG), ``store`` (stage 1: the
stream over a Zarr sample store, with ``store_index`` and ``shard_reader``), ``kitti/``
(stage 2: KITTI depth completion), ``nyu`` (stage 2: NYUv2), ``synthetic`` (small
synthetic stores for tests and benchmarks), ``panel`` (TensorBoard image of a batch).
"""

from train.datasets.augment import AugmentConfig, augment, parse_crop
from train.datasets.sample import Batch, Item, Sample, collate, collate_items
from train.datasets.sampling import (
    PlanBatchSampler,
    SampleRef,
    StreamPlan,
    epoch_order,
    rank_share,
    sample_rng,
)
from train.datasets.shard_reader import ShardReader
from train.datasets.store import StoreStream, StreamConfig, train_loader, val_batches
from train.datasets.store_index import StoreIndex

__all__ = [
    "AugmentConfig",
    "Batch",
    "Item",
    "PlanBatchSampler",
    "Sample",
    "SampleRef",
    "ShardReader",
    "StoreIndex",
    "StoreStream",
    "StreamConfig",
    "StreamPlan",
    "augment",
    "collate",
    "collate_items",
    "epoch_order",
    "parse_crop",
    "rank_share",
    "sample_rng",
    "train_loader",
    "val_batches",
]
