"""dmd3c on-disk formats: the sharded Zarr v3 sample store (schema 2.0; 1.x still read).

``pipeline`` writes through :func:`create_store` and :func:`write_shard`; ``train`` and
``dmd3c inspect`` read through :class:`SampleStore`. Neither reaches into the other.
"""

from data_schemas.commit_record import ShardRecord, SkippedSample
from data_schemas.errors import DmdError, SchemaVersionError, StoreError
from data_schemas.layout import StoreInfo, StoreLayout
from data_schemas.migrate import MigrationReport, migrate_store
from data_schemas.sample_schema import (
    DEFAULT_SHARD_SIZE,
    REQUIRED_ARRAYS,
    SCHEMA_NAME,
    SCHEMA_VERSION,
    ArraySpec,
    array_specs,
)
from data_schemas.sample_store import Sample, SampleStore, create_store
from data_schemas.shard_writer import write_shard
from data_schemas.validate import ValidationReport, validate

__all__ = [
    "DEFAULT_SHARD_SIZE", "REQUIRED_ARRAYS", "SCHEMA_NAME", "SCHEMA_VERSION", "ArraySpec",
    "DmdError", "MigrationReport", "migrate_store",
    "Sample", "SampleStore", "SchemaVersionError", "ShardRecord", "SkippedSample", "StoreError",
    "StoreInfo", "StoreLayout", "ValidationReport", "array_specs", "create_store", "validate",
    "write_shard",
]
