"""Teacher-map store ``dmd3c.teacher_maps`` 1.2: teacher outputs of KITTI images by path.

Written by ``dmd3c teach`` (pipeline), read by stage-2 fine-tuning (train)::

    <store>/zarr.json          root attributes: schema, teacher (as in sample stores), keys,
                               and with ``--align lidar``: align (the fit's settings) and
                               unaligned ({key: reason} of maps left without a fit)
    <store>/<key>              one float32 [H, W] array per image (dims y, x; fill 0) at the
                               image's path relative to the KITTI root, e.g.
                               raw/2011_09_26/2011_09_26_drive_0001_sync/image_02/data/0000000005.png
    <store>/aligned/<key>      (1.1, ``--align lidar``) the same map fitted to that frame's
                               LiDAR: float32 metric depth (m, 0 = invalid); attribute ``fit``
                               (:class:`LidarFit`: space, scale, shift, points, inliers,
                               residual_m)

Array attributes: ``source`` (the image file), ``units`` (teacher units, see root
``teacher.output_kind``), optional ``inputs`` (what the teacher was given besides the image,
e.g. ``focal_px``), ``align`` (``"fitted"`` or why not) and ``complete`` (true once the data,
and the aligned map if any, are written: a re-run redoes incomplete maps). Root ``keys`` lists
every map after a finished run. Readers of 1.0 stores see no aligned maps.

Codecs (1.2): float32 kept exactly, byte shuffle + zstd, and a ``crc32c`` checksum on every
map that every read verifies (a corrupt map is a :class:`StoreError` naming the store and the
key). 1.0 / 1.1 stores (zstd only, no checksum) are read as they are.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
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
SCHEMA_VERSION = "1.2"
ALIGNED = "aligned"
"""Group holding the LiDAR-aligned metric maps, at the same keys."""


@dataclass(frozen=True)
class LidarFit:
    """A teacher map's affine fit to its frame's LiDAR (``dmd3c teach --align lidar``).

    ``space == "disparity"``: ``1 / depth = scale * teacher + shift`` (relative teachers);
    ``space == "depth"``: ``depth = scale * teacher + shift`` (metric teachers).
    """

    space: Literal["disparity", "depth"]
    scale: float
    shift: float
    points: int
    """LiDAR returns used (on pixels with a valid teacher value)."""
    inliers: int
    """Returns whose depth residual is within the Huber threshold."""
    residual_m: float
    """RMS depth residual of the inliers (m); NaN without inliers."""

    def attrs(self) -> dict[str, JSON]:
        out = cast(dict[str, JSON], asdict(self))
        out["residual_m"] = None if math.isnan(self.residual_m) else self.residual_m
        return out

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, object]) -> LidarFit:
        space = attrs.get("space")
        if space != "disparity" and space != "depth":
            raise ValueError(f"fit space {space!r} is neither disparity nor depth")
        residual = attrs.get("residual_m")
        return cls(space, _number(attrs, "scale"), _number(attrs, "shift"),
                   int(_number(attrs, "points")), int(_number(attrs, "inliers")),
                   float("nan") if residual is None else _number(attrs, "residual_m"))


def _number(attrs: Mapping[str, object], name: str) -> float:
    value = attrs.get(name)
    if not isinstance(value, (int, float)):
        raise ValueError(f"fit attribute {name!r} is not a number: {value!r}")
    return float(value)


def open_teacher_maps(url: str | os.PathLike[str],
                      mode: Literal["r", "r+"] = "r") -> zarr.Group:
    """Open an existing teacher-map store, checking its schema."""
    location = StoreLocation.parse(url)
    if not location.exists("zarr.json"):
        raise StoreError(location.url, "no teacher maps here (no zarr.json); run `dmd3c teach "
                                       f"--kitti ROOT --out {location.url}`")
    group = zarr.open_group(location.zarr_store(read_only=mode == "r"), mode=mode)
    check_teacher_maps_schema(location.url, dict(group.attrs))
    return group


def create_teacher_maps(url: str | os.PathLike[str], teacher: Mapping[str, JSON]) -> zarr.Group:
    """Create an empty teacher-map store (replacing whatever is there)."""
    location = StoreLocation.parse(url)
    attrs: dict[str, JSON] = {"schema": {"name": SCHEMA_NAME, "version": SCHEMA_VERSION},
                              "teacher": teacher, "keys": []}
    return zarr.open_group(location.zarr_store(read_only=False), mode="w", zarr_format=3,
                           attributes=attrs)


def check_teacher_maps_schema(url: str, attrs: Mapping[str, object]) -> None:
    schema = attrs.get("schema")
    schema = schema if isinstance(schema, Mapping) else {}
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


def _write_map(group: zarr.Group, key: str, values: np.ndarray,
               attrs: Mapping[str, JSON]) -> zarr.Array:  # type: ignore[type-arg]
    """One float32 [H, W] array at ``key`` with ``attrs`` and ``complete`` = false."""
    if values.ndim != 2 or not np.isfinite(values).all():
        raise ValueError(f"teacher map {key}: expected a finite [H, W] array, got shape "
                         f"{values.shape}")
    parent, _, name = key.rpartition("/")
    node = group.require_group(parent) if parent else group
    array = node.create_array(name, shape=values.shape, dtype="float32", chunks=values.shape,
                              fill_value=0.0, dimension_names=("y", "x"), overwrite=True,
                              attributes={**attrs, "complete": False},
                              compressors=_COMPRESSORS)
    array[:] = values.astype(np.float32)
    return array


def write_teacher_map(group: zarr.Group, key: str, source: str, values: np.ndarray,
                      units: str, extra: Mapping[str, JSON] | None = None) -> None:
    """One map [H, W]: data first, then ``complete`` = true. Never stores NaN.

    ``extra`` array attributes (``inputs``, ``align``) are written with the data. Write the
    aligned map (:func:`write_aligned_map`) first: ``complete`` covers both.
    """
    array = _write_map(group, key, values, {"source": source, "units": units, **(extra or {})})
    array.attrs["complete"] = True


def write_aligned_map(group: zarr.Group, key: str, depth: np.ndarray, fit: LidarFit) -> None:
    """The LiDAR-aligned metric map of ``key`` (m, 0 = invalid) with its fit."""
    array = _write_map(group, f"{ALIGNED}/{key}", depth, {"units": "m", "fit": fit.attrs()})
    array.attrs["complete"] = True


def teacher_map_keys(group: zarr.Group) -> list[str]:
    """Keys of all complete maps (from the root ``keys`` list, else by listing)."""
    listed = group.attrs.get("keys")
    if isinstance(listed, list) and listed:
        return [str(k) for k in listed]
    return sorted(path for path, node in group.members(max_depth=None)
                  if isinstance(node, zarr.Array) and node.attrs.get("complete")
                  and not path.startswith(f"{ALIGNED}/"))


def read_teacher_map(group: zarr.Group, key: str) -> np.ndarray:
    """The float32 [H, W] map of ``key``."""
    return _read(group, key)


def read_aligned_map(group: zarr.Group, key: str) -> tuple[np.ndarray, LidarFit] | None:
    """The LiDAR-aligned metric map (float32 [H, W] m, 0 = invalid) of ``key`` and its fit.

    None when the store has none for it (made without ``--align lidar``, or the frame had too
    few LiDAR points: the root attribute ``unaligned`` says why).
    """
    try:
        with codec_pipeline():
            node = group[f"{ALIGNED}/{key}"]
    except KeyError:
        return None
    if not isinstance(node, zarr.Array) or not node.attrs.get("complete"):
        return None
    fit = node.attrs.get("fit")
    if not isinstance(fit, Mapping):
        raise StoreError(str(group.store), f"aligned map {key} has no fit attribute")
    return _read(group, f"{ALIGNED}/{key}"), LidarFit.from_attrs(fit)


def _read(group: zarr.Group, key: str) -> np.ndarray:
    """The float32 [H, W] array at ``key``, its checksum verified (StoreError when corrupt)."""
    with codec_pipeline():
        node = group[key]
    if not isinstance(node, zarr.Array):
        raise StoreError(str(group.store), f"{key} is a group, not a teacher map")
    try:
        return np.asarray(node[...], dtype=np.float32)
    except Exception as err:  # checksum / codec / IO error of a damaged map
        text = str(err).strip().splitlines()
        raise StoreError(str(group.store_path), f"teacher map {key!r}: corrupt data "
                                                f"({type(err).__name__}: "
                                                f"{text[0] if text else ''})") from err
