"""LiDAR simulation speed per backend on ONE core: one frame, stage by stage.

Scene: seeded KITTI-like street, 352 x 1216 depth at KITTI intrinsics; sensor hdl64e (the
calibrated per-laser table); KITTI mount. One frame = grid mesh + background layer, rays, ray
cast (both layers), return model, projection. Prints ms/frame per backend (median wall time,
best wall time, median CPU time of the process, which excludes time the shared core spent on
other processes), a stage breakdown (CPU ms), cast-only Mrays/s (per CPU second), and the
fast/reference ratio, all measured in this run.

Run: .venv/bin/python benchmarks/bench_lidar.py [--reps-fast 30] [--reps-ref 3]
"""

from __future__ import annotations

import os

for _var in (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "TBB_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from data_schemas.geometry import points_to_sparse_depth  # noqa: E402
from pipeline.lidar import apply_returns, camera_facing_rays  # noqa: E402
from pipeline.pose import kitti_mount  # noqa: E402
from pipeline.raycast import BACKENDS, make_caster  # noqa: E402
from pipeline.sensors import SensorSpec, load_sensor  # noqa: E402
from pipeline.simulate import SimConfig, hit_detection, scene_mesh  # noqa: E402
from pipeline.synthetic import Scene, kitti_like_scene  # noqa: E402


def pin_to_one_core() -> str:
    """Restrict this process (and every library thread) to a single CPU; returns a description."""
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    if hasattr(os, "sched_setaffinity"):
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"pinned to CPU {cpu}"
    return "not pinned (no sched_setaffinity); thread env vars set to 1"


def one_frame(backend: str, scene: Scene, sensor: SensorSpec, T: np.ndarray) -> dict[str, float]:
    """Run mesh -> rays -> cast -> returns -> projection once: wall and CPU ms, stages in CPU ms."""
    config = SimConfig(backend=backend)
    wall0, clock = time.perf_counter(), [time.process_time()]
    mesh, nearest = scene_mesh(scene.depth, scene.K, config, T, sensor)
    caster = make_caster(backend, mesh)
    clock.append(time.process_time())
    rays = camera_facing_rays(sensor, scene.K, scene.depth.shape, T, min_depth_m=nearest or 0.0)
    clock.append(time.process_time())
    hit_t = caster.cast(rays.origins_cam, rays.dirs_cam, sensor.max_range_m)
    clock.append(time.process_time())
    detection = hit_detection(mesh, rays, hit_t, sensor, config, scene.rgb)
    ranges = apply_returns(hit_t, sensor, np.random.default_rng(0), detection)
    clock.append(time.process_time())
    hit = np.isfinite(ranges)
    hits_cam = rays.points_cam(np.where(hit, ranges, 0.0))[hit]
    sparse = points_to_sparse_depth(hits_cam, scene.K, scene.depth.shape)
    clock.append(time.process_time())
    stages = dict(zip(("mesh", "rays", "cast", "returns", "project"), np.diff(clock) * 1e3,
                      strict=True))
    return {
        "total": (time.perf_counter() - wall0) * 1e3,
        "cpu": (clock[-1] - clock[0]) * 1e3,
        **stages,
        "core": stages["mesh"] + stages["cast"] + stages["project"],
        "n_rays": len(rays),
        "density": float(np.count_nonzero(sparse)) / sparse.size,
    }


def cast_rate(backend: str, scene: Scene, sensor: SensorSpec, T: np.ndarray, reps: int) -> float:
    """Mrays/s (per CPU second) of the cast alone on a built mesh (Embree commits on first cast)."""
    mesh, nearest = scene_mesh(scene.depth, scene.K, SimConfig(backend=backend), T, sensor)
    caster = make_caster(backend, mesh)
    rays = camera_facing_rays(sensor, scene.K, scene.depth.shape, T, min_depth_m=nearest or 0.0)
    caster.cast(rays.origins_cam, rays.dirs_cam, sensor.max_range_m)
    best = np.inf
    for _ in range(reps):
        t = time.process_time()
        caster.cast(rays.origins_cam, rays.dirs_cam, sensor.max_range_m)
        best = min(best, time.process_time() - t)
    return len(rays) / best / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps-fast", type=int, default=30)
    parser.add_argument("--reps-ref", type=int, default=3)
    args = parser.parse_args()
    where = pin_to_one_core()
    scene = kitti_like_scene(seed=0)
    sensor, T = load_sensor("hdl64e"), kitti_mount()
    print(
        f"LiDAR simulation benchmark: {scene.depth.shape[0]}x{scene.depth.shape[1]} depth, "
        "hdl64e (calibrated table, see-through layer, return model), "
        f"KITTI mount, one core ({where})"
    )
    head = ["backend", "ms/frame", "(best)", "cpu ms", "mesh", "rays", "cast", "returns", "proj"]
    print(
        " ".join(f"{h:>9s}" for h in head) + f" {'rays/frame':>10s} {'density':>8s} {'Mrays/s':>8s}"
    )
    results, cpu, core = {}, {}, {}
    for backend in BACKENDS:
        reps = args.reps_fast if backend == "fast" else args.reps_ref
        one_frame(backend, scene, sensor, T)  # warm-up (imports, caches)
        runs = [one_frame(backend, scene, sensor, T) for _ in range(reps)]
        med = {k: float(np.median([r[k] for r in runs])) for k in runs[0]}
        best = min(r["total"] for r in runs)
        rate = cast_rate(backend, scene, sensor, T, reps=max(3, reps // 3))
        results[backend], cpu[backend], core[backend] = med["total"], med["cpu"], med["core"]
        cols = [
            med["total"],
            best,
            med["cpu"],
            med["mesh"],
            med["rays"],
            med["cast"],
            med["returns"],
            med["project"],
        ]
        print(
            f"{backend:>9s} "
            + " ".join(f"{c:9.1f}" for c in cols)
            + f" {int(med['n_rays']):10d} {med['density']:8.4f} {rate:8.2f}"
        )
    for label, val in (("wall", results), ("CPU", cpu)):
        ratio = val["fast"] / val["embree"]
        print(
            f"fast/reference (embree) {label}-time ratio: {ratio:.4f} (speed-up x{1 / ratio:.0f});"
            f" fast/open3d: {val['fast'] / val['open3d']:.4f}"
        )
    goal = "meets" if core["fast"] <= 25.0 else "MISSES"
    print(
        f"goal <= 25 ms/frame/core for mesh + layers + cast + projection: fast path {goal} it "
        f"({core['fast']:.1f} ms median CPU); whole frame with rays and return model "
        f"{cpu['fast']:.1f} ms median CPU, {results['fast']:.1f} ms median wall"
    )


if __name__ == "__main__":
    main()
