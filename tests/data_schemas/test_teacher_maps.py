"""The teacher-map store: write, complete flags, schema refusal."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from data_schemas import SchemaVersionError, StoreError
from data_schemas.teacher_maps import (
    LidarFit,
    create_teacher_maps,
    is_complete,
    open_teacher_maps,
    read_aligned_map,
    read_teacher_map,
    teacher_map_keys,
    write_aligned_map,
    write_teacher_map,
)

KEY = "raw/2011_09_26/drive/image_02/data/0000000005.png"


def test_round_trip_and_complete_flag(tmp_path: Path) -> None:
    group = create_teacher_maps(tmp_path / "t.zarr", {"name": "x", "output_kind": "disparity"})
    values = np.random.default_rng(0).random((5, 7), dtype=np.float32)
    assert not is_complete(group, KEY)
    write_teacher_map(group, KEY, "/data/0000000005.png", values, "relative disparity")
    reopened = open_teacher_maps(tmp_path / "t.zarr")
    assert is_complete(reopened, KEY)
    assert teacher_map_keys(reopened) == [KEY]
    np.testing.assert_array_equal(read_teacher_map(reopened, KEY), values)


def test_nan_maps_are_refused(tmp_path: Path) -> None:
    group = create_teacher_maps(tmp_path / "t.zarr", {})
    with pytest.raises(ValueError, match="finite"):
        write_teacher_map(group, KEY, "s", np.full((2, 2), np.nan, np.float32), "m")


def test_schema_is_checked(tmp_path: Path) -> None:
    create_teacher_maps(tmp_path / "t.zarr", {})
    meta_path = tmp_path / "t.zarr" / "zarr.json"
    meta = json.loads(meta_path.read_text())
    meta["attributes"]["schema"]["version"] = "3.1"
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(SchemaVersionError, match="3.1"):
        open_teacher_maps(tmp_path / "t.zarr")
    with pytest.raises(StoreError, match="no teacher maps"):
        open_teacher_maps(tmp_path / "none.zarr")


def test_aligned_map_and_fit_round_trip(tmp_path: Path) -> None:
    group = create_teacher_maps(tmp_path / "t.zarr", {"output_kind": "disparity"})
    raw = np.full((4, 6), 2.0, np.float32)
    metric = np.full((4, 6), 9.5, np.float32)
    fit = LidarFit("disparity", 0.05, 0.01, 120, 110, 0.25)
    write_aligned_map(group, KEY, metric, fit)
    write_teacher_map(group, KEY, "src.png", raw, "relative disparity", {"align": "fitted"})
    reopened = open_teacher_maps(tmp_path / "t.zarr")
    assert teacher_map_keys(reopened) == [KEY]  # the aligned copy is not a key of its own
    values, back = read_aligned_map(reopened, KEY)  # type: ignore[misc]
    np.testing.assert_array_equal(values, metric)
    assert back == fit and reopened[KEY].attrs["align"] == "fitted"
    assert read_aligned_map(reopened, "raw/none.png") is None


def test_version_1_0_stores_are_read(tmp_path: Path) -> None:
    group = create_teacher_maps(tmp_path / "t.zarr", {})
    write_teacher_map(group, KEY, "s", np.ones((2, 2), np.float32), "m")
    meta_path = tmp_path / "t.zarr" / "zarr.json"
    meta = json.loads(meta_path.read_text())
    meta["attributes"]["schema"]["version"] = "1.0"
    meta_path.write_text(json.dumps(meta))
    reopened = open_teacher_maps(tmp_path / "t.zarr")
    assert read_aligned_map(reopened, KEY) is None and teacher_map_keys(reopened) == [KEY]


def test_malformed_fit_attributes_are_refused() -> None:
    with pytest.raises(ValueError, match="neither disparity nor depth"):
        LidarFit.from_attrs({"space": "log", "scale": 1, "shift": 0, "points": 1, "inliers": 1})
    with pytest.raises(ValueError, match="'scale' is not a number"):
        LidarFit.from_attrs({"space": "depth", "scale": "x", "shift": 0, "points": 1,
                             "inliers": 1})
