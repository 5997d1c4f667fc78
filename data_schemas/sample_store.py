"""Create and read the sharded Zarr v3 sample store.

Layout on disk (``<store>/``)::

    zarr.json                 root group, attributes: schema, canvas, shard_size, ...
    rgb/ sparse_depth/ ...    one array per :func:`array_specs` entry, [N, ...] with
                              chunks of one sample and shards of ``shard_size`` samples
    commits/shard-000012.json commit record of shard 12 (see :mod:`commit_record`)

Only rows of committed shards are samples. While a job runs the arrays have
``num_shards * shard_size`` rows; rows after a shard's ``count`` and rows of uncommitted
shards hold fill values (or the leftovers of an interrupted write) and are never returned by
:class:`SampleStore`. Once every shard is committed the arrays are trimmed to the last
sample (:meth:`SampleStore.finish`), and the ``valid`` array marks the rows that hold a
sample (False only on the empty rows a shard with skipped inputs leaves at its end).

Schema 1.x stores (float32 depth, no checksums, no ``valid``, never trimmed) are read
through the same API; writing into one asks for ``dmd3c migrate``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal, cast

import numpy as np
import zarr
from zarr.core.array import Array, AsyncArray
from zarr.core.buffer.cpu import NDBuffer
from zarr.core.common import JSON
from zarr.core.metadata.v3 import ArrayV3Metadata
from zarr.core.sync import sync

from data_schemas.commit_record import COMMITS_GROUP, ShardRecord, parse_record_name, record_name
from data_schemas.errors import SchemaVersionError, StoreError
from data_schemas.layout import StoreInfo, StoreLayout, layout_from_attributes, root_attributes
from data_schemas.location import StoreLocation
from data_schemas.sample_schema import (
    READABLE_MAJORS,
    SCHEMA_NAME,
    SCHEMA_VERSION,
    WRITABLE_MAJOR,
    ArraySpec,
    array_specs,
    parse_schema_version,
)
from data_schemas.store_codecs import (
    array_codecs,
    codec_names,
    codec_pipeline,
    missing_codec,
    stored_metadata,
)

Sample = dict[str, np.ndarray]
"""One sample: array name -> value without the sample axis (``key``/``source``: 0-d str)."""


def create_store(url: str | os.PathLike[str], layout: StoreLayout, info: StoreInfo,
                 overwrite: bool = False) -> SampleStore:
    """Create an empty store (driver side, once): all arrays, the commits group, attributes."""
    location = StoreLocation.parse(url)
    if location.exists("zarr.json") and not overwrite:
        raise StoreError(location.url, "a store already exists here (pass overwrite=True)")
    root = zarr.open_group(location.zarr_store(read_only=False), mode="w", zarr_format=3,
                           attributes=cast(dict[str, JSON], root_attributes(layout, info)))
    for spec in array_specs(layout.height, layout.width).values():
        _create_array(root, spec, layout)
    root.create_group(COMMITS_GROUP, attributes={
        "description": "one JSON commit record per written shard: shard-NNNNNN.json"})
    _consolidate(location)
    return SampleStore.open(location.url, mode="r+")


def _create_array(root: zarr.Group, spec: ArraySpec, layout: StoreLayout) -> None:
    dtype: object = str if spec.dtype == "str" else spec.numpy_dtype
    with codec_pipeline(writes=True):
        root.create_array(
            spec.name, shape=spec.full_shape(layout.capacity), dtype=dtype,  # type: ignore[arg-type]
            chunks=(1, *spec.sample_shape), shards=(layout.shard_size, *spec.sample_shape),
            fill_value=spec.fill_value, dimension_names=spec.dims,
            attributes={"units": spec.units, "description": spec.description,
                        "precision": spec.storage, "error_bound": spec.error_bound},
            **array_codecs(spec, layout.rgb_codec))


def _consolidate(location: StoreLocation) -> None:
    """Consolidated metadata in the root ``zarr.json`` (xarray opens the store without a
    warning); rewritten whenever array shapes change (:meth:`SampleStore.finish`)."""
    with codec_pipeline():
        zarr.consolidate_metadata(location.zarr_store(read_only=False))


def _open_root(location: StoreLocation, mode: Literal["r", "r+"]) -> zarr.Group:
    try:
        with codec_pipeline():
            return zarr.open_group(location.zarr_store(read_only=mode == "r"), mode=mode)
    except Exception as err:  # zarr raises several types for broken metadata
        raise StoreError(location.url, f"cannot open as a Zarr group: {err}") from err


@dataclass(frozen=True)
class _Row:
    shard: int
    offset: int


class SampleStore:
    """A store opened for reading (and, through :mod:`shard_writer`, for shard writes)."""

    def __init__(self, location: StoreLocation, root: zarr.Group) -> None:
        self.location = location
        self.root = root
        self.attrs: dict[str, object] = dict(root.attrs)
        self.major = check_schema(location.url, self.attrs)
        try:
            self.layout: StoreLayout = layout_from_attributes(self.attrs)
        except ValueError as err:
            raise StoreError(location.url, str(err)) from err
        self.specs: dict[str, ArraySpec] = array_specs(self.layout.height, self.layout.width,
                                                       self.major)
        self._arrays: dict[tuple[str, bool, bool], zarr.Array[Any]] = {}

    @classmethod
    def open(cls, url: str | os.PathLike[str], mode: Literal["r", "r+"] = "r") -> SampleStore:
        """Open an existing store (``mode`` "r", or "r+" to write shards); refuses
        non-stores and unknown schema majors."""
        if mode not in ("r", "r+"):
            raise ValueError(f"mode must be 'r' or 'r+', got {mode!r}")
        location = StoreLocation.parse(url)
        if not location.exists():
            raise StoreError(location.url, "no such store")
        if not location.exists("zarr.json"):
            raise StoreError(location.url, "not a Zarr v3 store (no zarr.json)")
        return cls(location, _open_root(location, mode))

    @property
    def read_only(self) -> bool:
        return bool(self.root.read_only)

    @property
    def url(self) -> str:
        return self.location.url

    @property
    def schema_version(self) -> str:
        return str(self.attrs["schema"]["version"])  # type: ignore[index]

    def require_current_schema(self, action: str) -> None:
        """SchemaVersionError (one line, how to migrate) unless the store is schema 2.x."""
        if self.major != WRITABLE_MAJOR:
            raise SchemaVersionError(
                self.url, f"{action} needs schema {WRITABLE_MAJOR}.x, this store has "
                          f"{self.schema_version}: convert it with `dmd3c migrate {self.url} "
                          f"NEW_STORE` (reading it works as it is)")

    def array(self, name: str) -> zarr.Array[Any]:
        """The zarr array ``name`` through zarr-python's codec pipeline (every read of any
        selection verifies each inner chunk's checksum)."""
        return self._handle(name, fast=False)

    def fast_array(self, name: str) -> zarr.Array[Any]:
        """The zarr array ``name`` through the ``zarrs`` pipeline (when installed): for
        writes and for reads of whole shards only. zarrs 0.2 verifies inner-chunk checksums
        when it decodes a whole shard, not on partial reads (measured), so every other
        selection goes through :meth:`array`."""
        return self._handle(name, fast=True)

    def _handle(self, name: str, fast: bool, stored: bool = False) -> zarr.Array[Any]:
        if name not in self.specs:
            raise KeyError(f"unknown array {name!r}; arrays: {', '.join(self.specs)}")
        stored = stored and self.specs[name].storage == "m/256"
        if (name, fast, stored) not in self._arrays:
            array = self._open_array(name, fast)
            if stored:
                array = _stored_view(array, fast, writes=not self.read_only)
            self._arrays[name, fast, stored] = array
        return self._arrays[name, fast, stored]

    def stored_array(self, name: str, fast: bool = True) -> zarr.Array[Any]:
        """The array ``name`` in its stored units (``"m/256"`` depth: the uint16 metres x 256
        on disk, see :func:`store_codecs.stored_metadata`; any other array as it is), through
        the fast pipeline unless ``fast`` is false (same rules as :meth:`fast_array`)."""
        return self._handle(name, fast=fast, stored=True)

    def _open_array(self, name: str, fast: bool) -> zarr.Array[Any]:
        try:
            with codec_pipeline(fast=fast, writes=not self.read_only):
                node = self.root[name]
        except Exception as err:  # missing, an unregistered codec, malformed metadata
            hint = missing_codec(err)
            if hint is None and isinstance(err, KeyError):
                raise StoreError(self.url, f"array {name!r} is missing") from err
            raise StoreError(self.url, f"array {name!r}: {hint or _one_line(err)}") from err
        if not isinstance(node, zarr.Array):
            raise StoreError(self.url, f"{name!r} is a group, not an array")
        return node

    # -- shard objects (keys from zarr, never built here) -----------------------------------
    def shard_key(self, name: str, shard: int) -> str:
        """Store key (relative to the store root) of the object holding ``shard`` of ``name``."""
        array = self.array(name)
        coords = (shard,) + (0,) * len(self.specs[name].sample_shape)
        return f"{array.path}/{array.metadata.encode_chunk_key(coords)}"

    def shard_exists(self, name: str, shard: int) -> bool:
        store = self.array(name).store_path.store
        return bool(sync(store.exists(self.shard_key(name, shard))))

    def delete_shard(self, name: str, shard: int) -> None:
        """Delete the object of ``shard`` of array ``name`` (through zarr's store API)."""
        store = self.array(name).store_path.store
        sync(store.delete(self.shard_key(name, shard)))

    # -- commit records -----------------------------------------------------------------
    @cached_property
    def records(self) -> dict[int, ShardRecord]:
        """Commit records by shard index (read once; :meth:`refresh` re-reads)."""
        found: dict[int, ShardRecord] = {}
        for name in self.location.list_names(COMMITS_GROUP):
            shard = parse_record_name(name)
            if shard is not None:
                found[shard] = self._read_record(shard)
        return found

    def _read_record(self, shard: int) -> ShardRecord:
        path = record_name(shard)
        try:
            record = ShardRecord.from_json(self.location.read_bytes(path))
        except (ValueError, KeyError, TypeError) as err:
            raise StoreError(self.location.path(path), f"corrupt commit record: {err}") from err
        if record.shard != shard or record.count > self.layout.shard_size:
            raise StoreError(self.location.path(path), "commit record does not match its shard")
        return record

    def refresh(self) -> None:
        """Forget cached commit records and array metadata (after another process wrote)."""
        self.__dict__.pop("records", None)
        self.__dict__.pop("_rows", None)
        self._arrays.clear()
        self.root = _open_root(self.location, "r" if self.read_only else "r+")

    def is_committed(self, shard: int) -> bool:
        return shard in self.records

    @property
    def committed_shards(self) -> list[int]:
        return sorted(self.records)

    @property
    def pending_shards(self) -> list[int]:
        return [s for s in range(self.layout.num_shards) if s not in self.records]

    @cached_property
    def _rows(self) -> list[_Row]:
        return [_Row(shard, offset) for shard in self.committed_shards
                for offset in range(self.records[shard].count)]

    @property
    def num_samples(self) -> int:
        """Samples in committed shards."""
        return len(self._rows)

    def keys(self) -> list[str]:
        return [key for shard in self.committed_shards for key in self.records[shard].keys]

    def locate(self, index: int) -> tuple[int, int]:
        """Sample ``index`` (0..num_samples-1 over committed shards) -> (shard, offset)."""
        if not -self.num_samples <= index < self.num_samples:
            raise IndexError(f"sample {index} out of range [0, {self.num_samples})")
        row = self._rows[index]
        return row.shard, row.offset

    # -- finished stores: no padding rows ---------------------------------------------------
    @property
    def finished_rows(self) -> int:
        """Rows of a finished store: up to its last sample (trailing empty rows dropped)."""
        size = self.layout.shard_size
        ends = [s * size + r.count for s, r in self.records.items() if r.count]
        return max(ends, default=0)

    @property
    def num_rows(self) -> int:
        """Current length of the arrays (capacity while a job runs, trimmed when finished)."""
        return int(self.array("key").shape[0])

    def finish(self) -> bool:
        """Trim every array to :attr:`finished_rows` once all shards are committed (schema
        2.x); returns whether the store is finished. Idempotent."""
        self.refresh()
        if self.major < WRITABLE_MAJOR or self.pending_shards:
            return False
        self._resize(self.finished_rows)
        return True

    def reopen_for_writes(self) -> None:
        """Grow trimmed arrays back to the full capacity before a shard is (re)written."""
        if self.num_rows != self.layout.capacity:
            self._resize(self.layout.capacity)

    def _resize(self, rows: int) -> None:
        if self.num_rows == rows:
            return
        for name, spec in self.specs.items():
            self.fast_array(name).resize(spec.full_shape(rows))
        _consolidate(self.location)
        self.refresh()

    # -- reads ------------------------------------------------------------------------
    def read_sample(self, index: int) -> Sample:
        """One sample by its index over committed shards."""
        shard, offset = self.locate(index)
        return {name: values[0] for name, values in
                self.read_rows(shard, offset, offset + 1, tuple(self.specs)).items()}

    def read_shard(self, shard: int, names: Sequence[str] | None = None,
                   stored: bool = False, out: Mapping[str, np.ndarray] | None = None) -> Sample:
        """The committed samples of one shard, ``[count, ...]`` per array (whole-shard reads).

        Every inner chunk's checksum is verified; a damaged or missing shard object is a
        :class:`StoreError` naming the store, array, shard, sample key and row. ``stored``:
        ``"m/256"`` depth maps in their stored units (uint16, metres x 256, exactly the
        integers on disk) instead of float32 metres: half the bytes, no conversion pass.
        ``out``: array name -> a C-contiguous ``[shard_size, ...]`` buffer of the array's
        dtype (see :meth:`shard_buffer`) to decode into instead of new memory; the returned
        array is then a view of it. A reader that reuses its buffers shard after shard spares
        the kernel zeroing fresh pages (the largest cost of a whole-shard read, measured).
        """
        if shard not in self.records:
            raise StoreError(self.url, f"shard {shard} is not committed")
        count = self.records[shard].count
        wanted = tuple(names or self.specs)
        if count:
            self._check_objects(shard, wanted)
        return self.read_rows(shard, 0, count, wanted, whole_shard=True, stored=stored, out=out)

    def shard_buffer(self, name: str, stored: bool = False) -> np.ndarray:
        """An uninitialised buffer for one whole shard of array ``name`` (``out`` of
        :meth:`read_shard`)."""
        array = self._handle(name, fast=True, stored=stored)
        return np.empty((self.layout.shard_size, *array.shape[1:]), array.dtype)

    def read_rows(self, shard: int, start: int, stop: int, names: Sequence[str],
                  whole_shard: bool = False, stored: bool = False,
                  out: Mapping[str, np.ndarray] | None = None) -> Sample:
        """Rows ``start:stop`` of committed ``shard`` (StoreError naming the bad row).

        With ``whole_shard`` a shard lying wholly inside the arrays is decoded whole by the
        fast pipeline (then sliced); other reads go through zarr-python's. Checksums are
        verified either way. ``stored``, ``out``: see :meth:`read_shard` (rows ``start:stop``
        of the shard are decoded into rows ``start:stop`` of ``out``'s buffers).
        """
        base, size = shard * self.layout.shard_size, self.layout.shard_size
        whole = whole_shard and base + size <= self.num_rows
        rows: Sample = {}
        for name in names:
            buffer = self._out_buffer(out, name, stored)
            # what is decoded (the whole shard, or the rows) and the rows of it returned
            read, keep = ((slice(base, base + size), slice(start, stop)) if whole else
                          (slice(base + start, base + stop), slice(None)))
            try:
                array = self._handle(name, fast=whole, stored=stored)
                if buffer is None:
                    rows[name] = np.asarray(array[read])[keep]
                else:
                    target = buffer if whole else buffer[start:stop]
                    array.get_basic_selection(read, out=NDBuffer.from_numpy_array(target))
                    rows[name] = buffer[start:stop]
            except StoreError:
                raise
            except Exception as err:  # codec / checksum / IO errors of a damaged object
                hint = missing_codec(err, self.codec_names(name))
                if hint is not None:
                    raise StoreError(self.url, f"array {name!r}: {hint}") from err
                raise self._diagnose(name, shard, start, stop, err) from err
        return rows

    def _out_buffer(self, out: Mapping[str, np.ndarray] | None, name: str,
                    stored: bool) -> np.ndarray | None:
        """``out[name]`` when given, checked to hold one whole shard of the array as read."""
        buffer = (out or {}).get(name)
        if buffer is None:
            return None
        array = self._handle(name, fast=True, stored=stored)
        shape = (self.layout.shard_size, *array.shape[1:])
        if buffer.shape != shape or buffer.dtype != array.dtype or not buffer.flags.c_contiguous:
            raise ValueError(f"out[{name!r}]: a {buffer.dtype} {list(buffer.shape)} buffer "
                             f"cannot hold a shard of {array.dtype} {list(shape)} "
                             f"(C-contiguous)")
        return buffer

    def codec_names(self, name: str) -> tuple[str, ...]:
        """The codecs of array ``name`` as named in its metadata."""
        return codec_names(self.array(name).metadata.to_dict())

    def _check_objects(self, shard: int, names: Sequence[str]) -> None:
        """A committed shard with samples has an object in every array (zarr would return
        fill values for a missing one)."""
        for name in names:
            if name != "valid" and not self.shard_exists(name, shard):
                keys = self.records[shard].keys
                raise StoreError(self.url, f"array {name!r}, shard {shard} (samples "
                                           f"{keys[0]!r}..{keys[-1]!r}): the shard object "
                                           f"{self.shard_key(name, shard)} is missing although "
                                           f"the shard is committed")

    def _diagnose(self, name: str, shard: int, start: int, stop: int,
                  err: Exception) -> StoreError:
        """The StoreError for a failed read: the first unreadable row, by key."""
        base = shard * self.layout.shard_size
        keys = self.records[shard].keys if shard in self.records else ()
        for offset in range(start, stop):
            try:
                np.asarray(self.array(name)[base + offset])
            except Exception as row_err:
                key = keys[offset] if offset < len(keys) else ""
                return StoreError(self.url, f"array {name!r}, shard {shard}, sample {key!r} "
                                            f"(row {base + offset}): corrupt data "
                                            f"({_one_line(row_err)})")
        return StoreError(self.url, f"array {name!r}, shard {shard} (rows {base + start}.."
                                    f"{base + stop - 1}): cannot read: {_one_line(err)}")


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"


def _stored_view(array: zarr.Array[Any], fast: bool, writes: bool) -> zarr.Array[Any]:
    """``array`` in its stored units: the same shard objects and checksums, coded without
    the scale filter (see :func:`store_codecs.stored_metadata`)."""
    with codec_pipeline(fast=fast, writes=writes):
        metadata = ArrayV3Metadata.from_dict(stored_metadata(array.metadata.to_dict()))
        return Array(AsyncArray(metadata, array.store_path))


def check_schema(url: str, attrs: dict[str, object]) -> int:
    """The schema major of a store this code can read; StoreError otherwise."""
    schema = attrs.get("schema")
    if not isinstance(schema, dict) or schema.get("name") != SCHEMA_NAME:
        raise StoreError(url, f"not a dmd3c sample store (root attribute schema.name is not "
                              f"{SCHEMA_NAME!r})")
    try:
        major, _ = parse_schema_version(schema.get("version"))
    except ValueError as err:
        raise StoreError(url, str(err)) from err
    if major not in READABLE_MAJORS:
        readable = ", ".join(f"{m}.x" for m in READABLE_MAJORS)
        raise SchemaVersionError(url, f"store has schema version {schema.get('version')}, "
                                      f"this dmd3c reads versions {readable} (writes "
                                      f"{SCHEMA_VERSION}); use a dmd3c that reads it")
    for name in ("canvas", "shard_size", "num_shards"):
        if name not in attrs:
            raise StoreError(url, f"root attribute {name!r} is missing")
    return major
