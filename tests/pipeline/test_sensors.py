import math

import numpy as np
import pytest

from pipeline.sensors import SENSOR_DIR, known_sensors, load_sensor, sensor_from_dict, thin_beams

PRESETS = ["hdl64e", "hdl64e-nonuniform", "vlp32c", "vlp16", "os1-64", "os1-128"]
BEAMS = {
    "hdl64e": 64,
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


def test_hdl64e_matches_datasheet():
    spec = load_sensor("hdl64e")
    assert math.degrees(spec.elevations_rad[0]) == pytest.approx(2.0)
    assert math.degrees(spec.elevations_rad[-1]) == pytest.approx(-24.9)
    assert math.degrees(spec.azimuth_step_rad) == pytest.approx(0.17)
    assert spec.max_range_m == 120.0 and spec.range_noise_std_m == pytest.approx(0.02)
    assert np.allclose(np.diff(spec.elevations_rad), np.diff(spec.elevations_rad)[0])


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
