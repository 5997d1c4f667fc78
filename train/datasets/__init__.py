"""Datasets of the training room: the stage-1 stream over a Zarr sample store."""

from train.data.augment import AugmentConfig, SampleView, parse_crop
from train.data.batch import Batch, collate
from train.data.sampling import StreamPlan, epoch_order, rank_share
from train.data.shard_reader import ShardReader
from train.data.store_dataset import StoreStream, StreamConfig, train_loader, val_batches
from train.data.store_index import StoreIndex

__all__ = [
    "AugmentConfig",
    "Batch",
    "SampleView",
    "ShardReader",
    "StoreIndex",
    "StoreStream",
    "StreamConfig",
    "StreamPlan",
    "collate",
    "epoch_order",
    "parse_crop",
    "rank_share",
    "train_loader",
    "val_batches",
]
