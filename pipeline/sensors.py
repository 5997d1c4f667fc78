"""LiDAR sensor presets as data: YAML files in ``configs/sensors/`` -> frozen ``SensorSpec``.

Angles are degrees in YAML and radians in code; distances are metres.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import yaml

SENSOR_DIR = Path(__file__).resolve().parents[1] / "configs" / "sensors"
"""Directory holding the preset YAMLs (repo root / configs / sensors)."""

_REQUIRED = ("name", "azimuth_step_deg", "max_range_m")


@dataclass(frozen=True)
class SensorSpec:
    """A spinning LiDAR: one laser per elevation, fired every ``azimuth_step_rad`` over 360 deg.

    ``elevations_rad`` is sorted top to bottom; a point's ring index is its position here.
    """

    name: str
    elevations_rad: tuple[float, ...]
    azimuth_step_rad: float
    max_range_m: float
    min_range_m: float = 0.5
    range_noise_std_m: float = 0.02
    drop_prob: float = 0.0
    drop_prob_per_100m: float = 0.0

    def __post_init__(self) -> None:
        if len(self.elevations_rad) == 0:
            raise ValueError(f"sensor {self.name!r}: needs at least one laser elevation")
        if not 0.0 < self.azimuth_step_rad <= math.radians(5.0):
            raise ValueError(f"sensor {self.name!r}: azimuth step must be in (0, 5] deg")
        if not 0.0 <= self.min_range_m < self.max_range_m:
            raise ValueError(f"sensor {self.name!r}: need 0 <= min_range_m < max_range_m")
        if self.range_noise_std_m < 0 or not 0 <= self.drop_prob <= 1:
            raise ValueError(f"sensor {self.name!r}: noise must be >= 0 and drop_prob in [0, 1]")
        if self.drop_prob_per_100m < 0:
            raise ValueError(f"sensor {self.name!r}: drop_prob_per_100m must be >= 0")

    @property
    def beams(self) -> int:
        """Number of lasers."""
        return len(self.elevations_rad)

    @property
    def num_azimuths(self) -> int:
        """Firings per revolution."""
        return int(round(2.0 * math.pi / self.azimuth_step_rad))


def known_sensors() -> list[str]:
    """Names of the presets shipped in ``configs/sensors/``."""
    return sorted(p.stem for p in SENSOR_DIR.glob("*.yaml"))


def parse_sensor_name(name: str) -> Path:
    """Preset name (e.g. ``"hdl64e"``) or path to a YAML file -> YAML path."""
    path = Path(name)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return path
    candidate = SENSOR_DIR / f"{name}.yaml"
    if not candidate.is_file():
        raise ValueError(
            f"unknown sensor preset {name!r}; known presets: {', '.join(known_sensors())}"
        )
    return candidate


def _elevations_deg(cfg: dict) -> np.ndarray:
    """Per-laser elevations (deg) from ``elevations_deg`` or ``elevation_blocks_deg``."""
    if "elevations_deg" in cfg:
        return np.asarray(cfg["elevations_deg"], dtype=np.float64)
    if "elevation_blocks_deg" in cfg:
        blocks = [
            np.linspace(top, bottom, int(n)) for top, bottom, n in cfg["elevation_blocks_deg"]
        ]
        return np.concatenate(blocks)
    raise ValueError(f"sensor {cfg.get('name')!r}: needs elevations_deg or elevation_blocks_deg")


def sensor_from_dict(cfg: dict) -> SensorSpec:
    """Build a ``SensorSpec`` from a preset mapping (degrees/metres); applies its ``beams:``."""
    missing = [k for k in _REQUIRED if k not in cfg]
    if missing:
        raise ValueError(f"sensor config lacks {missing}; required keys: {list(_REQUIRED)}")
    elevations = np.sort(np.radians(_elevations_deg(cfg)))[::-1]
    spec = SensorSpec(
        name=str(cfg["name"]),
        elevations_rad=tuple(float(e) for e in elevations),
        azimuth_step_rad=math.radians(float(cfg["azimuth_step_deg"])),
        max_range_m=float(cfg["max_range_m"]),
        min_range_m=float(cfg.get("min_range_m", 0.5)),
        range_noise_std_m=float(cfg.get("range_noise_std_m", 0.02)),
        drop_prob=float(cfg.get("drop_prob", 0.0)),
        drop_prob_per_100m=float(cfg.get("drop_prob_per_100m", 0.0)),
    )
    return thin_beams(spec, int(cfg.get("beams", spec.beams)))


def thin_beams(spec: SensorSpec, beams: int) -> SensorSpec:
    """Keep every k-th laser (top first) so ``beams`` lasers remain (must divide the count)."""
    if beams <= 0 or spec.beams % beams != 0:
        allowed = [d for d in range(1, spec.beams + 1) if spec.beams % d == 0]
        raise ValueError(f"sensor {spec.name!r}: beams={beams} invalid; allowed: {allowed}")
    if beams == spec.beams:
        return spec
    step = spec.beams // beams
    return replace(spec, name=f"{spec.name}@{beams}", elevations_rad=spec.elevations_rad[::step])


def load_sensor(
    name: str,
    *,
    beams: int | None = None,
    azimuth_step_deg: float | None = None,
    **overrides: float,
) -> SensorSpec:
    """Load a preset by name or YAML path, optionally thinned to ``beams`` lasers.

    ``azimuth_step_deg`` and keyword ``overrides`` (any YAML key, e.g. ``drop_prob=0``)
    replace the preset's values before the spec is built.
    """
    with parse_sensor_name(name).open() as f:
        cfg = dict(yaml.safe_load(f))
    if azimuth_step_deg is not None:
        cfg["azimuth_step_deg"] = azimuth_step_deg
    cfg.update(overrides)
    if beams is not None:
        cfg["beams"] = beams
    return sensor_from_dict(cfg)
