"""Teacher maps of KITTI images, looked up by image path, from a ``dmd3c teach`` output.

Two store formats are read (both defined in ``data_schemas``, never through ``pipeline``):

* ``dmd3c.teacher_maps`` (what ``dmd3c teach`` writes, :mod:`data_schemas.teacher_maps`):
  one float32 [H,W] array per image at the image's path relative to the KITTI root;
* a ``dmd3c.sample_store`` (``data_schemas.SampleStore``) whose sample ``key`` is the image
  path, array ``teacher_output``.

A frame is found by its path relative to the KITTI root; failing that, on the longest
unambiguous path suffix shared with a stored key (at least ``<drive>/image_02/data/<frame>.png``
for raw images, ``<set>/image/<name>.png`` for val_selection_cropped / test), so keys
made from another root still match. The teacher's space (relative *disparity* or metric
*depth*) comes from the root attribute ``teacher.output_kind``. Maps whose size differs
from the image are resized bilinearly (invalid = 0 kept out of the interpolation).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import PurePosixPath

import cv2
import numpy as np
import zarr

from data_schemas import SampleStore
from data_schemas.errors import InputError, InputNotFoundError
from data_schemas.location import StoreLocation
from data_schemas.sample_schema import SCHEMA_NAME as SAMPLE_STORE_SCHEMA
from data_schemas.teacher_maps import (
    check_teacher_maps_schema,
    is_complete,
    read_teacher_map,
    teacher_map_keys,
)
from train.datasets.kitti.layout import KittiFrame

MAX_SUFFIX_PARTS = 5


def _suffixes(path: str) -> list[str]:
    """Path suffixes that identify a KITTI image, longest first: at least
    ``<drive>/image_0x/data/<frame>.png`` (raw) or ``<set>/image/<name>.png`` (flat sets)."""
    parts = PurePosixPath(str(path).replace(os.sep, "/")).parts
    shortest = 4 if len(parts) >= 2 and parts[-2] == "data" else 3
    return ["/".join(parts[-n:]) for n in range(min(len(parts), MAX_SUFFIX_PARTS),
                                                  shortest - 1, -1)]


def parse_output_kind(kind: object) -> str:
    """Root attribute ``teacher.output_kind`` -> SSI space ``"disparity"`` or ``"depth"``."""
    text = str(kind or "disparity").lower()
    if "disp" in text or "inverse" in text or "relative" in text:
        return "disparity"
    if "depth" in text or "metric" in text:
        return "depth"
    raise InputError(f"teacher output kind {kind!r} is neither a disparity nor a depth")


def _open_group(url: str) -> zarr.Group:
    location = StoreLocation.parse(url)
    if not location.exists("zarr.json"):
        raise InputNotFoundError(f"teacher maps not found: {url} (no zarr.json; run `dmd3c "
                                f"teach --kitti ROOT --out {url}`)")
    return zarr.open_group(location.zarr_store(read_only=True), mode="r")


def _entry(attrs: dict[str, object], name: str) -> dict[str, object]:
    """The root attribute ``name`` when it is a mapping, else an empty one."""
    value = attrs.get(name)
    return dict(value) if isinstance(value, dict) else {}


class TeacherMaps:
    """Teacher output per KITTI image: ``read(frame, hw)`` -> float32 [H,W], 0 = invalid."""

    def __init__(self, url: str | os.PathLike[str]) -> None:
        self.url = os.fspath(url)
        self.group = _open_group(self.url)
        attrs: dict[str, object] = dict(self.group.attrs)
        is_sample_store = _entry(attrs, "schema").get("name") == SAMPLE_STORE_SCHEMA
        self.sample_store = SampleStore.open(self.url) if is_sample_store else None
        if not is_sample_store:
            check_teacher_maps_schema(self.url, attrs)
        self.space = parse_output_kind(_entry(attrs, "teacher").get("output_kind"))
        self._suffix_index: dict[str, str | None] | None = None

    def _keys(self) -> list[str]:
        if self.sample_store is not None:
            return self.sample_store.keys()
        return teacher_map_keys(self.group)

    def _suffix_lookup(self, suffix: str) -> str | None:
        if self._suffix_index is None:
            index: dict[str, str | None] = {}
            for key in self._keys():
                for s in _suffixes(key):
                    index[s] = None if s in index and index[s] != key else key
            self._suffix_index = index
        return self._suffix_index.get(suffix)

    def find(self, frame: KittiFrame) -> str | None:
        """The stored key of ``frame``'s teacher map, or None."""
        if self.sample_store is None and is_complete(self.group, frame.key):
            return frame.key
        for suffix in _suffixes(str(frame.image)):
            key = self._suffix_lookup(suffix)
            if key is not None and (self.sample_store is not None or is_complete(self.group, key)):
                return key
        return None

    def check_covers(self, frames: Sequence[KittiFrame]) -> None:
        """An InputError naming how many (and which first) frames lack a teacher map."""
        missing = [f.name for f in frames if self.find(f) is None]
        if missing:
            raise InputError(f"{len(missing)} of {len(frames)} KITTI images have no teacher map "
                             f"in {self.url} (first: {', '.join(missing[:3])}); run `dmd3c "
                             f"teach` on these images")

    def _values(self, key: str) -> np.ndarray:
        if self.sample_store is None:
            return read_teacher_map(self.group, key)
        store = self.sample_store
        shard, offset = store.locate(store.keys().index(key))
        row = shard * store.layout.shard_size + offset
        return np.asarray(store.array("teacher_output")[row], dtype=np.float32)

    def read(self, frame: KittiFrame, hw: tuple[int, int]) -> np.ndarray:
        """Teacher output of ``frame`` at image size ``hw``, float32, 0 = invalid."""
        key = self.find(frame)
        if key is None:
            raise InputError(f"no teacher map for KITTI image {frame.name} in {self.url}")
        values = np.nan_to_num(self._values(key), nan=0.0, posinf=0.0, neginf=0.0)
        return resize_map(values, hw)


def resize_map(values: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a map with 0 = invalid; pixels touching an invalid one become 0."""
    if values.shape == tuple(hw):
        return values
    valid = (values > 0).astype(np.float32)
    size = (int(hw[1]), int(hw[0]))
    resized = cv2.resize(values, size, interpolation=cv2.INTER_LINEAR)
    keep = cv2.resize(valid, size, interpolation=cv2.INTER_LINEAR) > 0.999
    return np.where(keep, resized, 0.0).astype(np.float32)
