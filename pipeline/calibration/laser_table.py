"""Derive a per-laser HDL-64E table from a real KITTI scan -> ``configs/sensors/hdl64e.yaml``.

Run: ``python -m pipeline.calibration.laser_table --kitti ../shared/data/kitti_sample
--out configs/sensors/hdl64e.yaml``

Model (Velodyne's calibration model, see :mod:`pipeline.sensors`): laser l fires at azimuth
``a`` from an emitter offset ``v_l`` along its up direction and ``h_l`` sideways; a return at
distance ``t`` lies at horizontal distance ``rho' = t cos(el_l) - v_l sin(el_l)`` (plus ``h_l``
sideways) and height ``z = t sin(el_l) + v_l cos(el_l)``, so every point of the laser satisfies

    z = rho' * tan(el_l) + v_l / cos(el_l)        (a straight line in (rho', z))

and its apparent azimuth is ``a + asin(h_l / rho)``. The fit, per ring of the scan
(:func:`pipeline.calibration.kitti_frame.rings_from_scan_order`):

1. firing lattice: KITTI azimuths sit on a lattice of spacing ``G`` (0.09 deg): each laser
   fires on every second lattice point, with a one-point step about every 7 firings;
   ``G`` = 360 / N for the whole N near 360 / (median short interval between consecutive
   points of a ring) that puts the rings best on one lattice;
2. horizontal offset ``h_l``: the value (+-10 cm, to 0.05 mm) that puts the corrected
   azimuths ``a = azimuth - asin(h / rho)`` best on the lattice (circular concentration);
   the laser's phase = the circular mean of ``a`` modulo ``G`` (its azimuth offset);
3. elevation and vertical offset: least squares of the line above (residual ~1 mm);
4. azimuth step: ``G`` times the mean lattice advance between consecutive firings
   (360 / step = firings per revolution).

On the sample scan and five KITTI object-benchmark scans from other drives the fitted tables
agree within 0.01 deg (elevations), 1 mm (offsets) and 0.01 deg (phases): KITTI used one
sensor calibration for all drives. The mean step varies with the rotation speed
(0.1669-0.1676 deg over those six scans).
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.calibration.kitti_frame import KittiFrame, raw_frame

HORIZONTAL_OFFSET_SEARCH_M = np.arange(-0.1, 0.1 + 1e-9, 0.0005)


@dataclass(frozen=True)
class LaserFit:
    """One laser's calibration from a scan."""

    elevation_deg: float
    azimuth_offset_deg: float
    vertical_offset_m: float
    horizontal_offset_m: float
    residual_m: float
    """RMS of z about the fitted line (m)."""
    points: int


@dataclass(frozen=True)
class LaserTableFit:
    """A whole sensor's calibration from a scan, lasers in scan order (top first for KITTI)."""

    lasers: tuple[LaserFit, ...]
    lattice_deg: float
    azimuth_step_deg: float


def firing_lattice_deg(azimuth_deg: np.ndarray, ring: np.ndarray) -> float:
    """Spacing (deg) of the azimuth lattice the firings sit on.

    A rotary encoder's lattice closes on itself, so the spacing is 360 / N for a whole N: the
    N near 360 / (median short interval between consecutive points of a ring) that puts the
    azimuths of the rings best on one lattice (an error of 1e-4 deg would add up to several
    lattice points over a revolution).
    """
    rings = [azimuth_deg[ring == r] for r in np.unique(ring)]
    steps = np.concatenate([np.diff(np.sort(a)) for a in rings])
    steps = steps[steps > 0]
    estimate = float(np.median(steps[steps < 0.75 * float(np.median(steps))]))
    candidates = round(360.0 / estimate) + np.arange(-5, 6)
    score = [np.mean([abs(lattice_concentration(a, 360.0 / n)) for a in rings])
             for n in candidates]
    return 360.0 / int(candidates[int(np.argmax(score))])


def lattice_concentration(corrected_deg: np.ndarray, lattice_deg: float) -> complex:
    """Mean of exp(2 pi i a / G): modulus 1 when every azimuth is on one lattice."""
    return complex(np.mean(np.exp(2j * np.pi * corrected_deg / lattice_deg)))


def _best_offset(azimuth: np.ndarray, rho: np.ndarray, lattice_deg: float,
                 candidates: np.ndarray) -> tuple[float, complex]:
    """The candidate h with the most concentrated corrected azimuths, and that mean."""
    means = [lattice_concentration(np.degrees(azimuth - np.arcsin(np.clip(h / rho, -1, 1))),
                                   lattice_deg) for h in candidates]
    best = int(np.argmax(np.abs(means)))
    return float(candidates[best]), means[best]


def fit_horizontal_offset(
    azimuth: np.ndarray, rho: np.ndarray, lattice_deg: float, search_points: int = 500
) -> tuple[float, float]:
    """(h, phase): sideways emitter offset (m) and lattice phase (deg, in [0, G)).

    A coarse search (0.5 mm steps over +-10 cm) on an even subsample of ``search_points``
    returns, then a fine one (0.05 mm steps over +-1 mm) on all of them.
    """
    every = max(1, len(azimuth) // search_points)
    h, _ = _best_offset(azimuth[::every], rho[::every], lattice_deg, HORIZONTAL_OFFSET_SEARCH_M)
    h, z = _best_offset(azimuth, rho, lattice_deg, h + np.arange(-0.001, 0.00101, 0.00005))
    return h, (math.atan2(z.imag, z.real) / (2 * math.pi) * lattice_deg) % lattice_deg


def fit_vertical(rho_prime: np.ndarray, z: np.ndarray) -> tuple[float, float, float]:
    """(elevation deg, vertical offset m, RMS residual m) of z = rho' tan(el) + v / cos(el)."""
    A = np.stack([rho_prime, np.ones_like(rho_prime)], axis=1)
    (slope, intercept), *_ = np.linalg.lstsq(A, z, rcond=None)
    elevation = math.atan(slope)
    residual = float(np.sqrt(np.mean((z - A @ np.array([slope, intercept])) ** 2)))
    return math.degrees(elevation), float(intercept * math.cos(elevation)), residual


def fit_laser(points: np.ndarray, lattice_deg: float) -> LaserFit:
    """Fit one laser from its (N, 3) points (LiDAR frame)."""
    azimuth = np.arctan2(points[:, 1], points[:, 0])
    rho = np.hypot(points[:, 0], points[:, 1])
    h, phase = fit_horizontal_offset(azimuth, rho, lattice_deg)
    rho_prime = np.sqrt(np.maximum(rho**2 - h**2, 0.0))
    elevation, v, residual = fit_vertical(rho_prime, points[:, 2])
    return LaserFit(elevation, phase, v, h, residual, len(points))


def mean_lattice_advance(frame: KittiFrame, fits: list[LaserFit], lattice_deg: float) -> float:
    """Mean number of lattice points between consecutive firings of a laser (1 or 2 steps)."""
    advances = []
    for ring, fit in enumerate(fits):
        p = frame.points_lidar[frame.ring == ring]
        a = np.degrees(np.arctan2(p[:, 1], p[:, 0])
                       - np.arcsin(fit.horizontal_offset_m / np.hypot(p[:, 0], p[:, 1])))
        n = np.sort(np.round((a - fit.azimuth_offset_deg) / lattice_deg))
        step = np.diff(n)
        advances.append(step[(step >= 1) & (step <= 2)])
    return float(np.mean(np.concatenate(advances)))


def fit_laser_table(frame: KittiFrame) -> LaserTableFit:
    """Fit every ring of a real scan (see module docstring)."""
    p = frame.points_lidar
    lattice = firing_lattice_deg(np.degrees(np.arctan2(p[:, 1], p[:, 0])), frame.ring)
    fits = [fit_laser(p[frame.ring == r], lattice) for r in range(int(frame.ring.max()) + 1)]
    step = lattice * mean_lattice_advance(frame, fits, lattice)
    return LaserTableFit(tuple(fits), lattice, step)


def apparent_elevation_deg(fit: LaserFit, points: np.ndarray) -> np.ndarray:
    """Elevation (deg) at which the laser's emitter model puts returns at these points' ranges."""
    rho = np.sqrt(np.maximum(np.hypot(points[:, 0], points[:, 1]) ** 2
                             - fit.horizontal_offset_m**2, 0.0))
    el = math.radians(fit.elevation_deg)
    z = rho * math.tan(el) + fit.vertical_offset_m / math.cos(el)
    return np.asarray(np.degrees(np.arctan2(z, rho)))


def _row(values: list[float], digits: int) -> str:
    lines, line = [], []
    for v in values:
        line.append(f"{v:.{digits}f}")
        if len(line) == 8:
            lines.append(", ".join(line))
            line = []
    if line:
        lines.append(", ".join(line))
    return "[" + ",\n    ".join(lines) + "]"


def preset_yaml(table: LaserTableFit, source: str, command: str) -> str:
    """The ``hdl64e`` preset YAML text of a fitted table (lasers in scan order)."""
    lasers = table.lasers
    return f"""# Velodyne HDL-64E S2 as mounted in KITTI: per-laser table derived from a real scan.
# Source: {source}
# Derived by: {command}
# (pipeline/calibration/laser_table.py: rings from scan order, then per ring a least-squares
# fit of elevation and vertical emitter offset, and of the horizontal emitter offset and the
# azimuth phase on the firing lattice). Lasers in KITTI scan order = top to bottom.
# Firings sit on a {table.lattice_deg:.4f} deg lattice, every 2nd point with an extra 1-point
# step about every 7 firings; azimuth_step_deg is the mean ({360 / table.azimuth_step_deg:.0f}
# firings per revolution) and azimuth_offsets_deg each laser's phase on the lattice.
# Range, noise and the return model: HDL-64E S2 datasheet (range >= 50 m on ~10 % pavement,
# 120 m on cars and foliage; 2 cm accuracy), see pipeline.sensors.ReturnModel.
name: hdl64e
description: Velodyne HDL-64E S2 (KITTI), calibrated per-laser table from a real KITTI scan
elevations_deg: {_row([f.elevation_deg for f in lasers], 4)}
azimuth_offsets_deg: {_row([f.azimuth_offset_deg for f in lasers], 5)}
vertical_offsets_m: {_row([f.vertical_offset_m for f in lasers], 4)}
horizontal_offsets_m: {_row([f.horizontal_offset_m for f in lasers], 4)}
azimuth_step_deg: {table.azimuth_step_deg:.5f}
max_range_m: 120.0
min_range_m: 0.9
range_noise_std_m: 0.02
returns:                       # pipeline.sensors.ReturnModel
  reference_reflectance: 0.10  # datasheet: >= 50 m on pavement (~10 % reflectivity) ...
  reference_range_m: 50.0
  reference_detection: 0.9     # ... taken as 90 % detection
  steepness: 6.0
  incidence_exponent: 0.1
  reflectance_typical: 0.2
  reflectance_dark: 0.02
  reflectance_bright: 0.8
  default_reflectance: 0.2
drop_prob: 0.0
drop_prob_per_100m: 0.0
beams: 64
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kitti", type=Path, default=Path("../shared/data/kitti_sample"),
                        help="KITTI root with raw/<date>/<drive>/velodyne_points/data/*.bin")
    parser.add_argument("--out", type=Path, default=Path("configs/sensors/hdl64e.yaml"))
    args = parser.parse_args()
    frame = raw_frame(args.kitti)
    table = fit_laser_table(frame)
    worst = max(f.residual_m for f in table.lasers)
    command = f"python -m pipeline.calibration.laser_table --kitti {args.kitti} --out {args.out}"
    args.out.write_text(preset_yaml(table, f"KITTI raw {frame.name} velodyne_points .bin", command))
    print(f"{frame.name}: {len(table.lasers)} lasers, lattice {table.lattice_deg:.4f} deg, "
          f"step {table.azimuth_step_deg:.5f} deg, worst line residual {worst * 1000:.2f} mm "
          f"-> {args.out}")


if __name__ == "__main__":
    main()
