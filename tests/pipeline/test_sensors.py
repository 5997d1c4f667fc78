import math

import numpy as np
import pytest
import yaml

from data_schemas.errors import ConfigError
from pipeline.sensors import (
    SENSOR_DIR,
    known_sensors,
    load_sensor,
    read_sensor_yaml,
    sensor_from_dict,
    thin_beams,
)

PRESETS = ["hdl64e", "hdl64e-uniform", "hdl64e-nonuniform", "vlp32c", "vlp16", "os1-64",
           "os1-128"]
BEAMS = {
    "hdl64e": 64,
    "hdl64e-uniform": 64,
    "hdl64e-nonuniform": 64,
    "vlp32c": 32,
    "vlp16": 16,
    "os1-64": 64,
    "os1-128": 128,
}


def test_presets_are_shipped_next_to_the_package():
    assert SENSOR_DIR.is_dir()
    assert set(PRESETS) <= set(known_sensors())


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_loads(name):
    spec = load_sensor(name)
    assert spec.beams == BEAMS[name]
    assert list(spec.elevations_rad) == sorted(spec.elevations_rad, reverse=True)
    assert spec.max_range_m > spec.min_range_m > 0


def test_hdl64e_uniform_is_the_idealised_layout():
    spec = load_sensor("hdl64e-uniform")
    assert math.degrees(spec.elevations_rad[0]) == pytest.approx(2.0)
    assert math.degrees(spec.elevations_rad[-1]) == pytest.approx(-24.9)
    assert math.degrees(spec.azimuth_step_rad) == pytest.approx(0.17)
    assert spec.max_range_m == 120.0 and spec.range_noise_std_m == pytest.approx(0.02)
    assert np.allclose(np.diff(spec.elevations_rad), np.diff(spec.elevations_rad)[0])
    assert not any(spec.azimuth_offsets_rad) and spec.max_emitter_offset_m == 0.0


def test_hdl64e_is_the_calibrated_kitti_table():
    """Facts of the HDL-64E S2 as mounted in KITTI (issue 10): two blocks of 32 lasers, ~1/3 and
    ~1/2 deg apart, from about +2 to about -25 deg; emitters offset by ~0.2 m (upper block) and
    ~0.12 m (lower block) and +-2.6 cm sideways; each laser on its own phase."""
    spec = load_sensor("hdl64e")
    el = np.degrees(spec.elevations_rad)
    assert spec.beams == 64 and el[0] == pytest.approx(1.94, abs=0.05)
    assert el[-1] == pytest.approx(-25.0, abs=0.05)
    steps = -np.diff(el)
    assert np.median(steps[:31]) == pytest.approx(1 / 3, abs=0.05)
    assert np.median(steps[32:]) == pytest.approx(1 / 2, abs=0.06)
    v = np.asarray(spec.vertical_offsets_m)
    assert np.all((v[:32] > 0.19) & (v[:32] < 0.22)) and np.all((v[32:] > 0.10) & (v[32:] < 0.13))
    assert np.allclose(np.abs(spec.horizontal_offsets_m), 0.026, atol=0.002)
    phases = np.degrees(spec.azimuth_offsets_rad)
    assert np.all((phases >= 0) & (phases < 0.09)) and len(np.unique(np.round(phases, 4))) > 50
    assert math.degrees(spec.azimuth_step_rad) == pytest.approx(0.1676, abs=0.001)
    assert spec.returns is not None and spec.drop_prob == 0.0


def test_hdl64e_nonuniform_has_two_blocks():
    steps = -np.degrees(np.diff(load_sensor("hdl64e-nonuniform").elevations_rad))
    assert steps[:31] == pytest.approx(np.full(31, steps[0]))
    assert steps[0] < 0.4 < steps[-1]


def test_unknown_preset_lists_known_ones():
    with pytest.raises(ValueError, match="hdl64e.*vlp16|vlp16.*hdl64e"):
        load_sensor("hdl-99")


@pytest.mark.parametrize("beams", [32, 16, 8])
def test_beam_thinning_keeps_every_kth_laser(beams):
    full, thin = load_sensor("hdl64e"), load_sensor("hdl64e", beams=beams)
    assert thin.beams == beams
    assert thin.elevations_rad == full.elevations_rad[:: 64 // beams]
    assert thin.name == f"hdl64e@{beams}"


def test_invalid_beam_count_names_allowed_values():
    with pytest.raises(ValueError, match="allowed"):
        thin_beams(load_sensor("hdl64e"), 48)


def test_azimuth_step_and_overrides():
    spec = load_sensor("hdl64e", azimuth_step_deg=0.08, drop_prob=0.0)
    assert math.degrees(spec.azimuth_step_rad) == pytest.approx(0.08)
    assert spec.num_azimuths == 4500 and spec.drop_prob == 0.0


@pytest.mark.parametrize(
    "cfg, match",
    [
        ({"name": "x", "azimuth_step_deg": 0.2}, "required"),
        ({"name": "x", "azimuth_step_deg": 0.2, "max_range_m": 100}, "elevations"),
        (
            {"name": "x", "azimuth_step_deg": 0.0, "max_range_m": 100, "elevations_deg": [0]},
            "azimuth",
        ),
        ({"name": "x", "azimuth_step_deg": 0.2, "max_range_m": 100, "elevations_deg": []}, "laser"),
    ],
)
def test_bad_sensor_configs(cfg, match):
    with pytest.raises(ValueError, match=match):
        sensor_from_dict(cfg)


def _write(tmp_path, **changes):
    cfg = read_sensor_yaml(SENSOR_DIR / "hdl64e.yaml")
    cfg.update(changes)
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"azimuth_offsets_deg": [0.0] * 63}, "azimuth_offsets_deg"),
        ({"vertical_offsets_m": [0.1] * 65}, "vertical_offsets_m"),
        ({"horizontal_offsets_m": [float("nan")] * 64}, "horizontal_offsets_m"),
        ({"elevations_deg": [95.0] + [0.0] * 63}, "elevations_deg"),
        ({"elevations_deg": ["a"] * 64}, "elevations_deg"),
        ({"azimuth_step_deg": "fast"}, "azimuth_step_deg"),
        ({"returns": {"reference_range_m": 80.0, "gain": 2.0}}, "returns"),
        ({"returns": {"steepness": -1.0}}, "returns"),
    ],
)
def test_bad_laser_tables_are_refused_naming_file_and_field(tmp_path, changes, field):
    path = _write(tmp_path, **changes)
    with pytest.raises(ConfigError) as err:
        load_sensor(str(path))
    message = str(err.value)
    assert "\n" not in message and field in message and str(path) in message


def test_sensor_yaml_that_is_not_a_mapping_is_refused(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="list.yaml"):
        load_sensor(str(path))


def test_thinning_keeps_the_table_rows_together():
    full, thin = load_sensor("hdl64e"), load_sensor("hdl64e", beams=16)
    for column in ("elevations_rad", "azimuth_offsets_rad", "vertical_offsets_m",
                   "horizontal_offsets_m"):
        assert getattr(thin, column) == getattr(full, column)[::4]


def test_table_rows_are_sorted_top_to_bottom_with_their_columns():
    spec = sensor_from_dict({"name": "x", "azimuth_step_deg": 0.2, "max_range_m": 100,
                             "elevations_deg": [-5.0, 3.0, 0.0],
                             "azimuth_offsets_deg": [1.0, 2.0, 3.0],
                             "vertical_offsets_m": [0.1, 0.2, 0.3]})
    assert np.allclose(np.degrees(spec.elevations_rad), [3.0, 0.0, -5.0])
    assert np.allclose(np.degrees(spec.azimuth_offsets_rad), [2.0, 3.0, 1.0])
    assert np.allclose(spec.vertical_offsets_m, [0.2, 0.3, 0.1])
    assert spec.horizontal_offsets_m == (0.0, 0.0, 0.0)


def test_vlp32c_takes_the_vendor_table_with_its_azimuth_columns():
    spec = load_sensor("vlp32c")
    el, az = np.degrees(spec.elevations_rad), np.degrees(spec.azimuth_offsets_rad)
    assert el[0] == pytest.approx(15.0) and el[-1] == pytest.approx(-25.0)
    assert az[0] == pytest.approx(1.4) and az[-1] == pytest.approx(-1.4)  # rows stay together
    assert sorted(set(np.round(az, 1))) == [-4.2, -1.4, 1.4, 4.2]
