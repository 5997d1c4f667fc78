"""Teacher maps of KITTI images, looked up by image path, from a ``dmd3c teach`` output or the
released DMD3C's ``disp`` PNG folders (:func:`open_teacher`).

Three sources are read (the stores defined in ``data_schemas``, never through ``pipeline``):

* ``dmd3c.teacher_maps`` (what ``dmd3c teach`` writes, :mod:`data_schemas.teacher_maps`):
  one float32 [H,W] array per image at the image's path relative to the KITTI root, and with
  ``--align lidar`` its LiDAR-aligned metric depth;
* a ``dmd3c.sample_store`` (``data_schemas.SampleStore``) whose sample ``key`` is the image
  path, array ``teacher_output``;
* a folder (usually the KITTI root) holding the authors' 8-bit maps as the release reads them,
  ``raw/<date>/<drive>/image_0x/disp/<frame>.png`` (:class:`DispPngTeacher`).

Each is read in one *form* (``data.teacher_form``): ``released`` (what the release trains on:
the map as DA-V2's 8-bit grey PNG / 255, per-image min-max over the whole uncropped frame,
:mod:`train.datasets.kitti.released_teacher`), ``raw`` (the stored values, 0 = invalid) or
``aligned`` (the LiDAR-aligned metric depth in m, DMD3C++'s metric teacher).

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
from pathlib import Path, PurePosixPath

import cv2
import numpy as np
import zarr

from data_schemas import SampleStore
from data_schemas.errors import ConfigError, InputError, InputNotFoundError
from data_schemas.location import StoreLocation
from data_schemas.sample_schema import SCHEMA_NAME as SAMPLE_STORE_SCHEMA
from data_schemas.teacher_maps import (
    check_teacher_maps_schema,
    is_complete,
    read_aligned_map,
    read_teacher_map,
    teacher_map_keys,
)
from train.datasets.kitti.layout import KittiFrame
from train.datasets.kitti.released_teacher import (
    check_disp_maps,
    disp_path_of_image,
    read_disp_png,
    released_teacher01,
)

MAX_SUFFIX_PARTS = 5
TEACHER_FORMS: tuple[str, ...] = ("released", "raw", "aligned")


def parse_teacher_form(form: str) -> str:
    """``form`` if known, else a ConfigError naming the allowed values."""
    if form not in TEACHER_FORMS:
        raise ConfigError(f"data.teacher_form must be one of {', '.join(TEACHER_FORMS)}; "
                          f"got {form!r}")
    return form


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
        raise InputNotFoundError(f"teacher maps not found: {url} is neither a `dmd3c teach` "
                                f"store (run `dmd3c teach --kitti ROOT --out {url}`) nor a "
                                f"folder of released raw/.../disp/*.png maps")
    return zarr.open_group(location.zarr_store(read_only=True), mode="r")


def _entry(attrs: dict[str, object], name: str) -> dict[str, object]:
    """The root attribute ``name`` when it is a mapping, else an empty one."""
    value = attrs.get(name)
    return dict(value) if isinstance(value, dict) else {}


class TeacherMaps:
    """Teacher output per KITTI image in ``form`` (see module docstring):
    ``read(frame, hw)`` -> float32 [H,W]; ``space`` is what the values are (the released form
    is a disparity in [0, 1])."""

    def __init__(self, url: str | os.PathLike[str], form: str = "raw") -> None:
        self.url, self.form = os.fspath(url), parse_teacher_form(form)
        self.group = _open_group(self.url)
        attrs: dict[str, object] = dict(self.group.attrs)
        is_sample_store = _entry(attrs, "schema").get("name") == SAMPLE_STORE_SCHEMA
        self.sample_store = SampleStore.open(self.url) if is_sample_store else None
        if not is_sample_store:
            check_teacher_maps_schema(self.url, attrs)
        self.space = parse_output_kind(_entry(attrs, "teacher").get("output_kind"))
        self.has_aligned = not is_sample_store and "align" in attrs
        if self.form == "aligned":
            self._use_metric_maps()
        self._suffix_index: dict[str, str | None] | None = None

    def _use_metric_maps(self) -> None:
        """The aligned form: the LiDAR-aligned maps, or the stored ones when the teacher is
        metric already; a relative teacher without aligned maps cannot give metric depth."""
        if not self.has_aligned and self.space != "depth":
            raise InputError(f"data.teacher_form=aligned needs metric teacher depth, but "
                             f"{self.url} holds relative {self.space} maps without LiDAR-aligned "
                             f"ones: rerun `dmd3c teach ... --align lidar`, or choose "
                             f"data.teacher_form=raw or released")
        if not self.has_aligned:
            self.form = "raw"  # a metric teacher's own maps are metric depth already
        self.space = "depth"

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

    def unaligned(self, frames: Sequence[KittiFrame]) -> list[str]:
        """Names of ``frames`` without a LiDAR-aligned map (the aligned form reads them as
        all-invalid maps: no teacher term for them); none for the other forms."""
        if self.form != "aligned":
            return []
        return [f.name for f in frames
                if (key := self.find(f)) is None or read_aligned_map(self.group, key) is None]

    def _stored(self, key: str, hw: tuple[int, int]) -> np.ndarray:
        if self.form == "aligned":
            aligned = read_aligned_map(self.group, key)
            return np.zeros(hw, np.float32) if aligned is None else aligned[0]
        return self._values(key)

    def read(self, frame: KittiFrame, hw: tuple[int, int]) -> np.ndarray:
        """Teacher map of ``frame`` at image size ``hw`` in this source's form, float32
        (raw and aligned: 0 = invalid; released: in [0, 1], min-max over the whole frame)."""
        key = self.find(frame)
        if key is None:
            raise InputError(f"no teacher map for KITTI image {frame.name} in {self.url}")
        values = np.nan_to_num(self._stored(key, hw), nan=0.0, posinf=0.0, neginf=0.0)
        resized = resize_map(values, hw)
        return released_teacher01(resized) if self.form == "released" else resized


class DispPngTeacher:
    """The authors' 8-bit teacher maps beside the KITTI images, read as the release reads them
    (``<root>/raw/<date>/<drive>/image_0x/disp/<frame>.png``, grey / 255): the released form
    (``raw`` reads the same values; there is no aligned form)."""

    def __init__(self, root: str | os.PathLike[str], form: str = "released") -> None:
        self.url, self.form, self.space = os.fspath(root), parse_teacher_form(form), "disparity"
        if self.form == "aligned":
            raise ConfigError(f"{self.url} holds 8-bit relative disparity PNGs (disp/); "
                              f"data.teacher_form=aligned needs `dmd3c teach --align lidar` maps")

    def path(self, frame: KittiFrame) -> Path:
        return disp_path_of_image(Path(self.url) / frame.key)

    def check_covers(self, frames: Sequence[KittiFrame]) -> None:
        """InputNotFoundError naming the count and the first missing PNG, if any."""
        check_disp_maps([Path(self.url) / f.key for f in frames])

    def unaligned(self, frames: Sequence[KittiFrame]) -> list[str]:
        return []

    def read(self, frame: KittiFrame, hw: tuple[int, int]) -> np.ndarray:
        values = read_disp_png(self.path(frame))
        if values.shape != tuple(hw):
            raise InputError(f"{self.path(frame)}: teacher map is {values.shape[1]}x"
                             f"{values.shape[0]}, its image {hw[1]}x{hw[0]}")
        return values


TeacherSource = TeacherMaps | DispPngTeacher


def open_teacher(url: str | os.PathLike[str], form: str) -> TeacherSource:
    """A ``dmd3c teach`` store (it has a zarr.json), else a folder of released ``disp`` PNGs."""
    location = StoreLocation.parse(os.fspath(url))
    if not location.exists("zarr.json") and Path(os.fspath(url)).is_dir():
        return DispPngTeacher(url, form)
    return TeacherMaps(url, form)


def resize_map(values: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a map with 0 = invalid; pixels touching an invalid one become 0."""
    if values.shape == tuple(hw):
        return values
    valid = (values > 0).astype(np.float32)
    size = (int(hw[1]), int(hw[0]))
    resized = cv2.resize(values, size, interpolation=cv2.INTER_LINEAR)
    keep = cv2.resize(valid, size, interpolation=cv2.INTER_LINEAR) > 0.999
    return np.where(keep, resized, 0.0).astype(np.float32)
