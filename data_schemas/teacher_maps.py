"""Teacher-map store ``dmd3c.teacher_maps`` 1.0: teacher outputs of KITTI images by path.

Written by ``dmd3c teach`` (pipeline), read by stage-2 fine-tuning (train)::

    <store>/zarr.json   root attributes: schema, teacher (as in sample stores), keys
    <store>/<key>       one float32 [H, W] array per image (dims y, x; fill 0) at the
                        image's path relative to the KITTI root, e.g.
                        raw/2011_09_26/2011_09_26_drive_0001_sync/image_02/data/0000000005.png

Array attributes: ``source`` (the image file), ``units`` (teacher units, see root
``teacher.output_kind``) and ``complete`` (true once the data is written: a re-run redoes
incomplete maps). Root ``keys`` lists every map after a finished run.

Codecs (1.1): float32 kept exactly, byte shuffle + zstd, and a ``crc32c`` checksum that every
read verifies (a corrupt map is a :class:`StoreError` naming the store and the key). 1.0
stores (zstd only, no checksum) are read as they are.
"""

from __future__ import annotations

import os
from typing import Literal, cast

import numpy as np
import zarr
from zarr.codecs import BloscCodec, Crc32cCodec
from zarr.core.common import JSON

from data_schemas.errors import SchemaVersionError, StoreError
from data_schemas.location import StoreLocation
from data_schemas.sample_schema import parse_schema_version
from data_schemas.store_codecs import codec_pipeline

_COMPRESSORS = (BloscCodec(cname="zstd", clevel=1, shuffle="shuffle", typesize=4),
                Crc32cCodec())

SCHEMA_NAME = "dmd3c.teacher_maps"
SCHEMA_VERSION = "1.1"


def open_teacher_maps(url: str | os.PathLike[str], mode: Literal["r", "r+"] = "r"
                      ) -> zarr.Group:
    """Open an existing teacher-map store, checking its schema."""
    location = StoreLocation.parse(url)
    if not location.exists("zarr.json"):
        raise StoreError(location.url, "no teacher maps here (no zarr.json); run `dmd3c teach "
                                       f"--kitti ROOT --out {location.url}`")
    group = zarr.open_group(location.zarr_store(read_only=mode == "r"), mode=mode)
    check_teacher_maps_schema(location.url, dict(group.attrs))
    return group


def create_teacher_maps(url: str | os.PathLike[str], teacher: dict[str, object]) -> zarr.Group:
    """Create an empty teacher-map store (replacing whatever is there)."""
    location = StoreLocation.parse(url)
    attrs = cast(dict[str, JSON], {"schema": {"name": SCHEMA_NAME, "version": SCHEMA_VERSION},
                                   "teacher": teacher, "keys": []})
    return zarr.open_group(location.zarr_store(read_only=False), mode="w", zarr_format=3,
                           attributes=attrs)


def check_teacher_maps_schema(url: str, attrs: dict[str, object]) -> None:
    found = attrs.get("schema")
    schema: dict[str, object] = found if isinstance(found, dict) else {}
    name = schema.get("name")
    if name != SCHEMA_NAME:
        raise StoreError(url, f"not a teacher-map store (schema {name!r}, expected "
                              f"{SCHEMA_NAME!r} from `dmd3c teach`)")
    version = schema.get("version")
    try:
        major, _ = parse_schema_version(version)
    except ValueError as err:
        raise StoreError(url, str(err)) from err
    if major != parse_schema_version(SCHEMA_VERSION)[0]:
        raise SchemaVersionError(url, f"teacher maps have schema version {version}, this "
                                      f"dmd3c reads version {SCHEMA_VERSION[0]}.x")


def is_complete(group: zarr.Group, key: str) -> bool:
    """Whether the map of ``key`` is fully written."""
    try:
        node = group[key]
    except KeyError:
        return False
    return isinstance(node, zarr.Array) and bool(node.attrs.get("complete"))


def write_teacher_map(group: zarr.Group, key: str, source: str, values: np.ndarray,
                      units: str) -> None:
    """One map [H, W]: data first, then ``complete`` = true. Never stores NaN."""
    if values.ndim != 2 or not np.isfinite(values).all():
        raise ValueError(f"teacher map {key}: expected a finite [H, W] array, got shape "
                         f"{values.shape}")
    parent, _, name = key.rpartition("/")
    node = group.require_group(parent) if parent else group
    array = node.create_array(name, shape=values.shape, dtype="float32", chunks=values.shape,
                              fill_value=0.0, dimension_names=("y", "x"), overwrite=True,
                              attributes={"source": source, "units": units, "complete": False},
                              compressors=_COMPRESSORS)
    array[:] = values.astype(np.float32)
    array.attrs["complete"] = True


def teacher_map_keys(group: zarr.Group) -> list[str]:
    """Keys of all complete maps (from the root ``keys`` list, else by listing)."""
    listed = [str(k) for k in group.attrs.get("keys") or []]  # type: ignore[union-attr]
    if listed:
        return listed
    return sorted(path for path, node in group.members(max_depth=None)
                  if isinstance(node, zarr.Array) and node.attrs.get("complete"))


def read_teacher_map(group: zarr.Group, key: str) -> np.ndarray:
    """The float32 [H, W] map of ``key`` (checksum verified: StoreError when corrupt)."""
    try:
        with codec_pipeline():
            return np.asarray(group[key][...], dtype=np.float32)  # type: ignore[index]
    except KeyError:
        raise
    except Exception as err:  # checksum / codec / IO error of a damaged map
        where = str(group.store_path)
        raise StoreError(where, f"teacher map {key!r}: corrupt data ({type(err).__name__}: "
                                f"{str(err).strip().splitlines()[0] if str(err).strip() else ''})"
                         ) from err
