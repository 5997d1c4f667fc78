"""The teacher-map store: write, complete flags, schema refusal."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from data_schemas import SchemaVersionError, StoreError
from data_schemas.teacher_maps import (
    create_teacher_maps,
    is_complete,
    open_teacher_maps,
    read_teacher_map,
    teacher_map_keys,
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
