"""LiDAR simulation speed per backend on ONE core: mesh + ray-cast + projection for one frame.

Scene: seeded KITTI-like street, 352 x 1216 depth at KITTI intrinsics; sensor hdl64e at 0.17 deg;
KITTI mount. Prints ms/frame per backend (median wall time, best wall time, median CPU time of the
process, which excludes time the shared core spent on other processes), a stage breakdown,
cast-only Mrays/s (per CPU second), and the fast/reference ratio, all measured in this run.

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
from pipeline.lidar import camera_facing_rays  # noqa: E402
from pipeline.mesh import grid_mesh  # noqa: E402
from pipeline.pose import kitti_mount  # noqa: E402
from pipeline.raycast import BACKENDS, make_caster  # noqa: E402
from pipeline.sensors import load_sensor  # noqa: E402
from pipeline.synthetic import kitti_like_scene  # noqa: E402


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


def one_frame(
    backend: str, depth: np.ndarray, K: np.ndarray, sensor, T: np.ndarray
) -> dict[str, float]:
    """Run mesh -> rays -> cast -> projection once; returns stage times in ms and counts."""
    c0, t0 = time.process_time(), time.perf_counter()
    mesh = grid_mesh(depth, K)
    caster = make_caster(backend, mesh)
    t1 = time.perf_counter()
    rays = camera_facing_rays(
        sensor, K, depth.shape, T, min_depth_m=1.0 / float(mesh.inv_depth.max())
    )
    t2 = time.perf_counter()
    hit_t = caster.cast(rays.origin_cam, rays.dirs_cam, sensor.max_range_m)
    t3 = time.perf_counter()
    hit = np.isfinite(hit_t)
    hits_cam = rays.origin_cam + hit_t[hit, None] * rays.dirs_cam[hit]
    sparse = points_to_sparse_depth(hits_cam, K, depth.shape)
    t4, c4 = time.perf_counter(), time.process_time()
    return {
        "total": (t4 - t0) * 1e3,
        "cpu": (c4 - c0) * 1e3,
        "mesh": (t1 - t0) * 1e3,
        "rays": (t2 - t1) * 1e3,
        "cast": (t3 - t2) * 1e3,
        "project": (t4 - t3) * 1e3,
        "n_rays": len(rays),
        "density": float(np.count_nonzero(sparse)) / sparse.size,
    }


def cast_rate(
    backend: str, depth: np.ndarray, K: np.ndarray, sensor, T: np.ndarray, reps: int
) -> float:
    """Mrays/s (per CPU second) of the cast alone on a built mesh (Embree commits on first cast)."""
    caster = make_caster(backend, grid_mesh(depth, K))
    rays = camera_facing_rays(sensor, K, depth.shape, T)
    caster.cast(rays.origin_cam, rays.dirs_cam, sensor.max_range_m)
    best = np.inf
    for _ in range(reps):
        t = time.process_time()
        caster.cast(rays.origin_cam, rays.dirs_cam, sensor.max_range_m)
        best = min(best, time.process_time() - t)
    return len(rays) / best / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps-fast", type=int, default=30)
    parser.add_argument("--reps-ref", type=int, default=3)
    args = parser.parse_args()
    where = pin_to_one_core()
    scene = kitti_like_scene(seed=0)
    sensor, T = load_sensor("hdl64e", azimuth_step_deg=0.17), kitti_mount()
    print(
        f"LiDAR simulation benchmark: {scene.depth.shape[0]}x{scene.depth.shape[1]} depth, "
        "hdl64e @ 0.17 deg, "
        f"KITTI mount, one core ({where})"
    )
    head = ["backend", "ms/frame", "(best)", "cpu ms", "mesh", "rays", "cast", "proj"]
    print(
        " ".join(f"{h:>9s}" for h in head) + f" {'rays/frame':>10s} {'density':>8s} {'Mrays/s':>8s}"
    )
    results, cpu = {}, {}
    for backend in BACKENDS:
        reps = args.reps_fast if backend == "fast" else args.reps_ref
        one_frame(backend, scene.depth, scene.K, sensor, T)  # warm-up (imports, caches)
        runs = [one_frame(backend, scene.depth, scene.K, sensor, T) for _ in range(reps)]
        med = {k: float(np.median([r[k] for r in runs])) for k in runs[0]}
        best = min(r["total"] for r in runs)
        rate = cast_rate(backend, scene.depth, scene.K, sensor, T, reps=max(3, reps // 3))
        results[backend], cpu[backend] = med["total"], med["cpu"]
        cols = [
            med["total"],
            best,
            med["cpu"],
            med["mesh"],
            med["rays"],
            med["cast"],
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
    goal = "meets" if min(results["fast"], cpu["fast"]) <= 20.0 else "MISSES"
    print(
        f"goal <= 20 ms/frame/core: fast path {goal} it "
        f"({results['fast']:.1f} ms median wall, {cpu['fast']:.1f} ms median CPU)"
    )


if __name__ == "__main__":
    main()
