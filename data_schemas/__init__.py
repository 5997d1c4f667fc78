"""dmd3c on-disk formats: the sharded Zarr v3 sample store (schema 2.0; 1.x still read).

``pipeline`` writes through :func:`create_store` and :func:`write_shard`; ``train`` and
``dmd3c inspect`` read through :class:`SampleStore`. Neither reaches into the other.

Those three and :func:`migrate_store` load zarr, so they are imported on first use: importing
any part of this package (``data_schemas.errors`` for the command line, say) does not import
zarr.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from data_schemas.commit_record import ShardRecord, SkippedSample
from data_schemas.errors import DmdError, SchemaVersionError, StoreError
from data_schemas.layout import StoreInfo, StoreLayout
from data_schemas.sample_schema import (
    DEFAULT_SHARD_SIZE,
    REQUIRED_ARRAYS,
    SCHEMA_NAME,
    SCHEMA_VERSION,
    ArraySpec,
    array_specs,
)
from data_schemas.validate import ValidationReport, validate

if TYPE_CHECKING:
    from data_schemas.migrate import MigrationReport, migrate_store
    from data_schemas.sample_store import Sample, SampleStore, create_store
    from data_schemas.shard_writer import write_shard

__all__ = [
    "DEFAULT_SHARD_SIZE", "REQUIRED_ARRAYS", "SCHEMA_NAME", "SCHEMA_VERSION", "ArraySpec",
    "DmdError", "MigrationReport", "migrate_store",
    "Sample", "SampleStore", "SchemaVersionError", "ShardRecord", "SkippedSample", "StoreError",
    "StoreInfo", "StoreLayout", "ValidationReport", "array_specs", "create_store", "validate",
    "write_shard",
]

_ON_FIRST_USE = {"Sample": "data_schemas.sample_store", "SampleStore": "data_schemas.sample_store",
                 "create_store": "data_schemas.sample_store",
                 "write_shard": "data_schemas.shard_writer",
                 "MigrationReport": "data_schemas.migrate", "migrate_store": "data_schemas.migrate"}


def __getattr__(name: str) -> Any:
    """The zarr-backed store API (:data:`_ON_FIRST_USE`), imported when first asked for."""
    if name not in _ON_FIRST_USE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_ON_FIRST_USE[name]), name)
    globals()[name] = value
    return value
