"""LiDAR realism: a simulated HDL-64E scan against the real one, on the KITTI sample frame.

The real frame's scan (``.bin`` + calibration) is projected into the 352 x 1216 crop of camera
2; a dense scene is rebuilt from it (``pipeline.calibration.realism``) and the preset is
simulated on that scene from the frame's true LiDAR pose, with the frame's image as the return
model's reflectance proxy. Printed: real vs simulated measures with the issue's targets, the
idealised presets for comparison, the density of the generator's default camera sampling on
five seeds of the KITTI-like synthetic street, and ms/frame of the simulation on one core
(min / median / max over repetitions; CPU time of this process, and wall time).

Run: .venv/bin/python benchmarks/bench_lidar_realism.py [--kitti ../shared/data/kitti_sample]
     [--kitti-object DIR] [--reps 20]
``--kitti-object`` adds every full scan of a KITTI object-benchmark folder (velodyne/, calib/,
image_2/) to check that the targets hold beyond the sample frame.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from data_schemas.geometry import points_to_sparse_depth  # noqa: E402
from pipeline.calibration.kitti_frame import KittiFrame, object_frames, raw_frame  # noqa: E402
from pipeline.calibration.realism import (  # noqa: E402
    ScanMeasures,
    compare_frame,
    depth_agreement,
    real_projection,
    scan_measures,
    scene_from_scan,
)
from pipeline.lidar import apply_returns, camera_facing_rays  # noqa: E402
from pipeline.raycast import make_caster  # noqa: E402
from pipeline.sensors import SensorSpec, load_sensor  # noqa: E402
from pipeline.simulate import SimConfig, hit_detection, scene_mesh, simulate  # noqa: E402
from pipeline.synthetic import kitti_like_scene  # noqa: E402

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "kitti_sample"
DENSITY_RATIO = (0.95, 1.05)
LINES_WITHIN = 2.0
GAP_WITHIN_PX = 1.0
SEE_THROUGH_MIN_RATIO = 0.6
GENERATOR_DENSITY = (0.035, 0.053)
MS_PER_FRAME = 25.0


def pin_to_one_core() -> str:
    cv2.setNumThreads(1)
    if hasattr(os, "sched_setaffinity"):
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"pinned to CPU {cpu}"
    return "not pinned"


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSES"


@dataclass(frozen=True)
class Row:
    measure: str
    real: str
    sim: str
    target: str = ""
    status: str = ""


def measure_rows(real: ScanMeasures, sim: ScanMeasures) -> list[Row]:
    ratio = sim.density / real.density
    lines = sim.lines_lower_half - real.lines_lower_half
    gaps = [abs(s - r) for s, r in zip(sim.gap_px, real.gap_px, strict=True)]
    see = sim.see_through / max(real.see_through, 1e-9)
    bands = "/".join(f"{a:.0f}-{b:.0f}" for a, b in ((88, 176), (176, 264), (264, 352)))
    return [
        Row("valid-pixel density in the crop", f"{real.density:.2%}", f"{sim.density:.2%}",
            f"ratio {ratio:.3f} in {DENSITY_RATIO[0]}-{DENSITY_RATIO[1]}",
            verdict(DENSITY_RATIO[0] <= ratio <= DENSITY_RATIO[1])),
        Row("scan lines crossing the lower half", f"{real.lines_lower_half:.1f}",
            f"{sim.lines_lower_half:.1f}", f"{lines:+.1f}, within +-{LINES_WITHIN:.0f}",
            verdict(abs(lines) <= LINES_WITHIN)),
        Row("vertical gap at rows 200 / 300 (px)", "{:.1f} / {:.1f}".format(*real.gap_px),
            "{:.1f} / {:.1f}".format(*sim.gap_px), f"within {GAP_WITHIN_PX:.0f} px",
            verdict(max(gaps) <= GAP_WITHIN_PX)),
        Row("horizontal spacing on a line (px)", f"{real.horizontal_spacing_px:.1f}",
            f"{sim.horizontal_spacing_px:.1f}"),
        Row("lasers reaching the image", f"{real.lasers_in_image}", f"{sim.lasers_in_image}"),
        Row("elevation band in the image (deg)", "{:+.2f} / {:+.2f}".format(
            *real.elevation_band_deg), "{:+.2f} / {:+.2f}".format(*sim.elevation_band_deg)),
        Row("see-through share (>1 m behind 5x5 median)", f"{real.see_through:.2%}",
            f"{sim.see_through:.2%}", f"ratio {see:.2f} >= {SEE_THROUGH_MIN_RATIO}",
            verdict(see >= SEE_THROUGH_MIN_RATIO)),
        Row(f"density in rows {bands}", "/".join(f"{d:.1%}" for d in real.band_density),
            "/".join(f"{d:.1%}" for d in sim.band_density)),
    ]


def print_rows(rows: list[Row]) -> None:
    print(f"  {'measure':<44s} {'real':>15s} {'sim':>15s}   target")
    for r in rows:
        print(f"  {r.measure:<44s} {r.real:>15s} {r.sim:>15s}   {r.target} {r.status}".rstrip())


def compare(frame: KittiFrame, preset: str) -> tuple[ScanMeasures, ScanMeasures, str]:
    c = compare_frame(frame, load_sensor(preset))
    median, within, pixels = depth_agreement(c.real.depth, c.sim.depth)
    agreement = (f"depth agreement where both have a return: median |sim - real| "
                 f"{median * 100:.1f} cm, {within:.1%} within 5 % + 0.1 m ({pixels} px)")
    return scan_measures(c.real), scan_measures(c.sim), agreement


def frame_report(frame: KittiFrame) -> bool:
    real, sim, agreement = compare(frame, "hdl64e")
    print(f"\n{frame.name}: real scan vs simulated hdl64e (scene rebuilt from the real scan, "
          "true LiDAR pose, image as reflectance proxy)")
    rows = measure_rows(real, sim)
    print_rows(rows)
    print(f"  {agreement}")
    return all(r.status in ("", "ok") for r in rows)


def presets_table(frame: KittiFrame) -> None:
    print(f"\nidealised presets on the same frame ({frame.name}):")
    print(f"  {'preset':<20s} {'density':>8s} {'ratio':>6s} {'lines':>6s} {'gaps':>10s} "
          f"{'lasers':>6s} {'see-through':>11s}")
    for preset in ("hdl64e", "hdl64e-nonuniform", "hdl64e-uniform"):
        real, sim, _ = compare(frame, preset)
        if preset == "hdl64e":
            print(f"  {'real KITTI':<20s} {real.density:8.2%} {1:6.2f} "
                  f"{real.lines_lower_half:6.1f} {real.gap_px[0]:4.1f}/{real.gap_px[1]:4.1f} "
                  f"{real.lasers_in_image:6d} {real.see_through:11.2%}")
        print(f"  {preset:<20s} {sim.density:8.2%} {sim.density / real.density:6.2f} "
              f"{sim.lines_lower_half:6.1f} {sim.gap_px[0]:4.1f}/{sim.gap_px[1]:4.1f} "
              f"{sim.lasers_in_image:6d} {sim.see_through:11.2%}")


def generator_density(seeds: int = 5) -> bool:
    """Density of ``simulate`` with the default camera sampling on the KITTI-like street."""
    sensor, densities = load_sensor("hdl64e"), []
    for seed in range(seeds):
        scene = kitti_like_scene(seed)
        out = simulate(scene.depth, "depth", sensor, seed, key=f"kitti_like_{seed}", rgb=scene.rgb)
        densities.append(out.scan.density)
    med = float(np.median(densities))
    ok = all(GENERATOR_DENSITY[0] <= d <= GENERATOR_DENSITY[1] for d in densities)
    print(f"\ngenerator default sampling (IntrinsicsSampler()), KITTI-like synthetic street, "
          f"{seeds} seeds: " + " ".join(f"{d:.2%}" for d in densities)
          + f"; median {med:.2%}; target {GENERATOR_DENSITY[0]:.1%}-{GENERATOR_DENSITY[1]:.1%} "
          f"per seed (real KITTI 4.42 %): {verdict(ok)}")
    return ok


def one_frame(depth: np.ndarray, frame: KittiFrame, sensor: SensorSpec,
              config: SimConfig) -> np.ndarray:
    """CPU ms of (mesh + layer, rays, cast, returns, projection) for one simulated frame."""
    clock = [time.process_time()]
    mesh, nearest = scene_mesh(depth, frame.K, config, frame.T_cam_from_lidar, sensor)
    clock.append(time.process_time())
    rays = camera_facing_rays(sensor, frame.K, frame.hw, frame.T_cam_from_lidar, nearest or 0.0)
    clock.append(time.process_time())
    t_hit = make_caster(config.backend, mesh).cast(rays.origins_cam, rays.dirs_cam,
                                                   sensor.max_range_m)
    clock.append(time.process_time())
    detection = hit_detection(mesh, rays, t_hit, sensor, config, frame.rgb)
    ranges = apply_returns(t_hit, sensor, np.random.default_rng(0), detection)
    clock.append(time.process_time())
    hit = np.isfinite(ranges)
    points_to_sparse_depth(rays.points_cam(np.where(hit, ranges, 0.0))[hit], frame.K, frame.hw)
    clock.append(time.process_time())
    return np.diff(clock) * 1e3


def timing(frame: KittiFrame, reps: int) -> bool:
    depth = scene_from_scan(real_projection(frame))
    sensor, config = load_sensor("hdl64e"), SimConfig()
    one_frame(depth, frame, sensor, config)  # warm-up
    stages, walls = [], []
    for _ in range(reps):
        start = time.perf_counter()
        stages.append(one_frame(depth, frame, sensor, config))
        walls.append((time.perf_counter() - start) * 1e3)
    s = np.array(stages)
    core = s[:, [0, 2, 4]].sum(axis=1)  # mesh + layer, cast, projection
    full = s.sum(axis=1)
    print(f"\ntime per frame on the rebuilt scene, one core, {reps} reps, "
          "CPU ms min / median / max:")
    names = ("mesh + background layer", "rays (laser table, window)", "ray cast (fast, 2 layers)",
             "return model + noise", "projection (z-buffer)")
    for name, column in zip(names, s.T, strict=True):
        print(f"  {name:<32s} {column.min():6.1f} {np.median(column):6.1f} {column.max():6.1f}")
    print(f"  {'mesh + layers + cast + projection':<32s} {core.min():6.1f} {np.median(core):6.1f} "
          f"{core.max():6.1f}   target <= {MS_PER_FRAME:.0f}: {verdict(np.median(core) <= 25)}")
    print(f"  {'whole frame (all of the above)':<32s} {full.min():6.1f} {np.median(full):6.1f} "
          f"{full.max():6.1f}   (wall {min(walls):.1f} / {np.median(walls):.1f} / "
          f"{max(walls):.1f})")
    return bool(np.median(core) <= MS_PER_FRAME)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kitti", type=Path, default=SAMPLE, help="KITTI root (raw/...)")
    parser.add_argument("--kitti-object", type=Path, default=None,
                        help="KITTI object-benchmark folder with more frames to check")
    parser.add_argument("--reps", type=int, default=20)
    args = parser.parse_args()
    if not (args.kitti / "raw").is_dir():
        print(f"KITTI sample not found at {args.kitti}: skipping the LiDAR realism benchmark "
              "(give --kitti ROOT with raw/<date>/<drive>/velodyne_points/)")
        return
    where = pin_to_one_core()
    frame = raw_frame(args.kitti)
    print(f"LiDAR realism benchmark ({where}); targets from issue 10")
    held = [frame_report(frame)]
    extra = object_frames(args.kitti_object) if args.kitti_object else []
    held += [frame_report(f) for f in extra]
    presets_table(frame)
    held.append(generator_density())
    held.append(timing(frame, args.reps))
    print(f"\ntargets held on {sum(held)} of {len(held)} checks "
          f"({1 + len(extra)} frame(s), generator sampling, time)")


if __name__ == "__main__":
    main()
