"""LiDAR sensor presets as data: YAML files in ``configs/sensors/`` -> frozen ``SensorSpec``.

Angles are degrees in YAML and radians in code; distances are metres.

A preset gives one row per laser (a *laser table*), as a spinning LiDAR's factory calibration
does: ``elevations_deg`` (or ``elevation_blocks_deg`` for an idealised, evenly spaced layout)
and, optionally, ``azimuth_offsets_deg``, ``vertical_offsets_m`` and ``horizontal_offsets_m``
(zeros when absent). Laser ``l`` fires at azimuths ``azimuth_offset[l] + k * azimuth_step``
(k = 0, 1, ...) from an emitter displaced from the sensor origin by ``vertical_offset[l]``
along the laser's own "up" (perpendicular to the beam, in its vertical plane) and by
``horizontal_offset[l]`` sideways (towards increasing azimuth), the Velodyne calibration
model (``vertOffsetCorrection`` / ``horizOffsetCorrection``). See :func:`pipeline.lidar.beam_rays`.

Bad tables are refused with a :class:`~data_schemas.errors.ConfigError` naming the file and the
field: wrong length, NaN or inf, elevations outside +-90 deg.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from data_schemas.errors import ConfigError

SENSOR_DIR = Path(__file__).resolve().parents[1] / "configs" / "sensors"
"""Directory holding the preset YAMLs (repo root / configs / sensors)."""

_REQUIRED = ("name", "azimuth_step_deg", "max_range_m")
PER_LASER_FIELDS = ("azimuth_offsets_deg", "vertical_offsets_m", "horizontal_offsets_m")
"""Optional per-laser YAML columns besides the elevations (zeros when absent)."""


@dataclass(frozen=True)
class ReturnModel:
    """When a ray that hits a surface gives a return: a LiDAR link budget, seeded.

    The received signal of a hit is ``reflectance * cos(incidence) ** incidence_exponent /
    range ** 2``; it is detected with probability ``1 / (1 + (signal_50 / signal) **
    steepness)``. ``signal_50`` follows from the datasheet: a target of ``reference_reflectance``
    at normal incidence and ``reference_range_m`` is detected with probability
    ``reference_detection``. A steep curve makes losses structured (whole dark or far surfaces),
    as in real scans, not salt-and-pepper.

    Reflectance is a proxy from the camera image: the pixel's linear luminance relative to the
    local illumination (mean luminance over ~1/16 of the image width, so that shadows do not
    read as dark paint), times ``reflectance_typical``, clipped to [``reflectance_dark``,
    ``reflectance_bright``]. Surfaces without a camera pixel (behind a foreground edge, or no
    image given) get ``default_reflectance``.
    """

    reference_reflectance: float = 0.10
    """Datasheet reference target (HDL-64E S2: pavement, ~10 % reflectivity)."""
    reference_range_m: float = 50.0
    """Datasheet range of that target (HDL-64E S2: >= 50 m)."""
    reference_detection: float = 0.9
    """Probability with which the datasheet range is taken to hold."""
    steepness: float = 6.0
    """Exponent of the detection curve in the signal (6: 10 % -> 90 % over 2.1x in signal)."""
    incidence_exponent: float = 0.1
    """Signal ~ cos(incidence) ** this. 1 = Lambertian; rough surfaces (asphalt, foliage) send
    back nearly as much at grazing incidence (KITTI keeps road returns to ~50 m)."""
    reflectance_typical: float = 0.2
    """Reflectance of a surface as bright as its surroundings."""
    reflectance_dark: float = 0.02
    """Lowest reflectance the proxy gives (black paint, dark glass)."""
    reflectance_bright: float = 0.8
    """Highest reflectance the proxy gives (white paint, retro-reflectors)."""
    default_reflectance: float = 0.2
    """Reflectance where the camera gives none (behind foreground edges, or no image)."""

    def __post_init__(self) -> None:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        bad = [k for k, v in values.items() if not (math.isfinite(v) and v > 0)]
        if bad:
            raise ConfigError(f"return model: {', '.join(bad)} must be finite and > 0")
        if not self.reflectance_dark <= self.reflectance_bright or self.reference_detection >= 1:
            raise ConfigError("return model: need reflectance_dark <= reflectance_bright and "
                              "reference_detection < 1")

    @property
    def signal_50(self) -> float:
        """Signal (reflectance / m^2) detected half of the time."""
        reference = self.reference_reflectance / self.reference_range_m**2
        odds = (1.0 - self.reference_detection) / self.reference_detection
        return float(reference * odds ** (1.0 / self.steepness))


@dataclass(frozen=True)
class SensorSpec:
    """A spinning LiDAR: a table of lasers, each fired every ``azimuth_step_rad`` over 360 deg.

    Lasers are sorted top to bottom by elevation; a point's ring index is its laser's position
    here. Per-laser columns (same length as ``elevations_rad``) follow the module docstring.
    """

    name: str
    elevations_rad: tuple[float, ...]
    azimuth_step_rad: float
    max_range_m: float
    min_range_m: float = 0.5
    range_noise_std_m: float = 0.02
    drop_prob: float = 0.0
    """Independent (i.i.d.) probability that a detected return is lost anyway."""
    drop_prob_per_100m: float = 0.0
    """Added to ``drop_prob`` per 100 m of range."""
    azimuth_offsets_rad: tuple[float, ...] = ()
    """Per-laser azimuth of its first firing (its phase); () = all 0."""
    vertical_offsets_m: tuple[float, ...] = ()
    """Per-laser emitter offset along the laser's up direction (m); () = all 0."""
    horizontal_offsets_m: tuple[float, ...] = ()
    """Per-laser emitter offset sideways, towards increasing azimuth (m); () = all 0."""
    returns: ReturnModel | None = None
    """Physical return model; None = every hit within range returns (then only i.i.d. drop)."""

    def __post_init__(self) -> None:
        n = len(self.elevations_rad)
        if n == 0:
            raise ConfigError(f"sensor {self.name!r}: needs at least one laser elevation")
        for name in ("azimuth_offsets_rad", "vertical_offsets_m", "horizontal_offsets_m"):
            column = getattr(self, name)
            if len(column) == 0:
                object.__setattr__(self, name, (0.0,) * n)
            elif len(column) != n:
                raise ConfigError(f"sensor {self.name!r}: {name} has {len(column)} values, "
                                  f"expected {n} (one per laser)")
        if not 0.0 < self.azimuth_step_rad <= math.radians(5.0):
            raise ConfigError(f"sensor {self.name!r}: azimuth step must be in (0, 5] deg")
        if not 0.0 <= self.min_range_m < self.max_range_m:
            raise ConfigError(f"sensor {self.name!r}: need 0 <= min_range_m < max_range_m")
        if self.range_noise_std_m < 0 or not 0 <= self.drop_prob <= 1:
            raise ConfigError(f"sensor {self.name!r}: noise must be >= 0 and drop_prob in [0, 1]")
        if self.drop_prob_per_100m < 0:
            raise ConfigError(f"sensor {self.name!r}: drop_prob_per_100m must be >= 0")

    @property
    def beams(self) -> int:
        """Number of lasers."""
        return len(self.elevations_rad)

    @property
    def num_azimuths(self) -> int:
        """Firings per laser per revolution."""
        return int(round(2.0 * math.pi / self.azimuth_step_rad))

    @property
    def max_emitter_offset_m(self) -> float:
        """Largest distance of an emitter from the sensor origin (m)."""
        return float(np.max(np.hypot(self.vertical_offsets_m, self.horizontal_offsets_m)))


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
        raise ConfigError(
            f"unknown sensor preset {name!r}; known presets: {', '.join(known_sensors())} "
            "(or give the path of a sensor YAML)"
        )
    return candidate


def _column(cfg: Mapping[str, Any], key: str, source: str) -> np.ndarray:
    """A finite 1-D float column of the laser table; ConfigError naming file and field."""
    try:
        values = np.asarray(cfg[key], dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(f"{source}: field {key!r} must be a list of numbers") from None
    if values.ndim != 1 or not np.all(np.isfinite(values)):
        raise ConfigError(f"{source}: field {key!r} must be a flat list of finite numbers")
    return values


def _block_elevations(cfg: Mapping[str, Any], source: str) -> np.ndarray:
    """``elevation_blocks_deg`` rows [top, bottom, count] -> evenly spaced elevations (deg)."""
    try:
        blocks = [(float(t), float(b), int(n)) for t, b, n in cfg["elevation_blocks_deg"]]
    except (TypeError, ValueError):
        raise ConfigError(f"{source}: field 'elevation_blocks_deg' must be rows "
                          "[top_deg, bottom_deg, count]") from None
    if any(n < 1 or not (math.isfinite(t) and math.isfinite(b)) for t, b, n in blocks):
        raise ConfigError(f"{source}: field 'elevation_blocks_deg' needs finite angles and "
                          "counts >= 1")
    return np.concatenate([np.linspace(t, b, n) for t, b, n in blocks])


def _elevations_deg(cfg: Mapping[str, Any], source: str) -> np.ndarray:
    """Per-laser elevations (deg) from ``elevations_deg`` or ``elevation_blocks_deg``."""
    if "elevations_deg" in cfg:
        elevations = _column(cfg, "elevations_deg", source)
        field_name = "elevations_deg"
    elif "elevation_blocks_deg" in cfg:
        elevations = _block_elevations(cfg, source)
        field_name = "elevation_blocks_deg"
    else:
        raise ConfigError(f"{source}: needs elevations_deg or elevation_blocks_deg")
    if len(elevations) == 0:
        raise ConfigError(f"{source}: field {field_name!r} needs at least one laser")
    if np.any(np.abs(elevations) >= 90.0):
        raise ConfigError(f"{source}: field {field_name!r} has elevations outside (-90, 90) deg")
    return elevations


def _laser_table(cfg: Mapping[str, Any], source: str) -> dict[str, np.ndarray]:
    """The per-laser columns (deg / m), validated and sorted top to bottom by elevation."""
    elevations = _elevations_deg(cfg, source)
    table = {"elevations_deg": elevations}
    for key in PER_LASER_FIELDS:
        if key in cfg:
            column = _column(cfg, key, source)
            if len(column) != len(elevations):
                raise ConfigError(f"{source}: field {key!r} has {len(column)} values, expected "
                                  f"{len(elevations)} (one per laser, as elevations)")
            table[key] = column
        else:
            table[key] = np.zeros_like(elevations)
    order = np.argsort(-elevations, kind="stable")
    return {key: column[order] for key, column in table.items()}


def _return_model(cfg: Mapping[str, Any], source: str) -> ReturnModel | None:
    """The ``returns:`` mapping -> ``ReturnModel`` (None when absent)."""
    raw = cfg.get("returns")
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: field 'returns' must be a mapping of return-model values")
    known = {f.name for f in fields(ReturnModel)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{source}: unknown field(s) {unknown} in 'returns'; "
                          f"allowed: {sorted(known)}")
    try:
        return ReturnModel(**{k: float(v) for k, v in raw.items()})
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{source}: field 'returns': {err}") from None


def _scalar(cfg: Mapping[str, Any], key: str, default: float, source: str) -> float:
    try:
        value = float(cfg.get(key, default))
    except (TypeError, ValueError):
        raise ConfigError(f"{source}: field {key!r} must be a number") from None
    if not math.isfinite(value):
        raise ConfigError(f"{source}: field {key!r} must be finite")
    return value


def sensor_from_dict(cfg: Mapping[str, Any], source: str = "sensor config") -> SensorSpec:
    """Build a ``SensorSpec`` from a preset mapping (degrees/metres); applies its ``beams:``.

    ``source`` (the YAML path) is named in every error.
    """
    missing = [k for k in _REQUIRED if k not in cfg]
    if missing:
        raise ConfigError(f"{source}: lacks {missing}; required keys: {list(_REQUIRED)}")
    table = _laser_table(cfg, source)
    spec = SensorSpec(
        name=str(cfg["name"]),
        elevations_rad=_radians(table["elevations_deg"]),
        azimuth_step_rad=math.radians(_scalar(cfg, "azimuth_step_deg", 0.0, source)),
        max_range_m=_scalar(cfg, "max_range_m", 0.0, source),
        min_range_m=_scalar(cfg, "min_range_m", 0.5, source),
        range_noise_std_m=_scalar(cfg, "range_noise_std_m", 0.02, source),
        drop_prob=_scalar(cfg, "drop_prob", 0.0, source),
        drop_prob_per_100m=_scalar(cfg, "drop_prob_per_100m", 0.0, source),
        azimuth_offsets_rad=_radians(table["azimuth_offsets_deg"]),
        vertical_offsets_m=_floats(table["vertical_offsets_m"]),
        horizontal_offsets_m=_floats(table["horizontal_offsets_m"]),
        returns=_return_model(cfg, source),
    )
    return thin_beams(spec, int(cfg.get("beams", spec.beams)))


def _radians(degrees: np.ndarray) -> tuple[float, ...]:
    return tuple(float(v) for v in np.radians(degrees))


def _floats(values: np.ndarray) -> tuple[float, ...]:
    return tuple(float(v) for v in values)


def thin_beams(spec: SensorSpec, beams: int) -> SensorSpec:
    """Keep every k-th laser (top first) so ``beams`` lasers remain (must divide the count)."""
    if beams <= 0 or spec.beams % beams != 0:
        allowed = [d for d in range(1, spec.beams + 1) if spec.beams % d == 0]
        raise ConfigError(f"sensor {spec.name!r}: beams={beams} invalid; allowed: {allowed}")
    if beams == spec.beams:
        return spec
    step = spec.beams // beams
    return replace(
        spec,
        name=f"{spec.name}@{beams}",
        elevations_rad=spec.elevations_rad[::step],
        azimuth_offsets_rad=spec.azimuth_offsets_rad[::step],
        vertical_offsets_m=spec.vertical_offsets_m[::step],
        horizontal_offsets_m=spec.horizontal_offsets_m[::step],
    )


def read_sensor_yaml(path: Path) -> dict[str, Any]:
    """The mapping of a sensor YAML; ConfigError naming the file when it is not one."""
    try:
        with path.open() as f:
            cfg = yaml.safe_load(f)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(cfg, dict):
        raise ConfigError(f"{path}: a sensor YAML must be a mapping of fields")
    return cfg


def load_sensor(
    name: str,
    *,
    beams: int | None = None,
    azimuth_step_deg: float | None = None,
    **overrides: Any,
) -> SensorSpec:
    """Load a preset by name or YAML path, optionally thinned to ``beams`` lasers.

    ``azimuth_step_deg`` and keyword ``overrides`` (any YAML key, e.g. ``drop_prob=0`` or
    ``returns=None`` for geometry-only returns) replace the preset's values before the spec
    is built.
    """
    path = parse_sensor_name(name)
    cfg = read_sensor_yaml(path)
    if azimuth_step_deg is not None:
        cfg["azimuth_step_deg"] = azimuth_step_deg
    cfg.update(overrides)
    if beams is not None:
        cfg["beams"] = beams
    return sensor_from_dict(cfg, source=str(path))


def sensor_table_deg(spec: SensorSpec) -> dict[str, list[float]]:
    """The laser table of ``spec`` in YAML units (deg / m), for store attributes and reports."""
    return {
        "elevations_deg": [round(math.degrees(e), 4) for e in spec.elevations_rad],
        "azimuth_offsets_deg": [round(math.degrees(a), 5) for a in spec.azimuth_offsets_rad],
        "vertical_offsets_m": [round(v, 4) for v in spec.vertical_offsets_m],
        "horizontal_offsets_m": [round(h, 4) for h in spec.horizontal_offsets_m],
    }

