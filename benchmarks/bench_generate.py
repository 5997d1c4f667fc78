"""Generation throughput with 1 and 2 CPU workers (embedded Ray), and the per-stage CPU split.

Offline and CPU-only: tiny-random teacher (the real Depth Anything architecture, tiny
config), HDL-64E, canvas 176 x 608 (half the KITTI crop), a synthetic corpus of photos.
Prints samples/s per worker count, the scaling ratio (goal >= 1.7x on 2 cores) and the
per-sample CPU seconds of decode, teacher, mesh, ray-cast, projection and write. Then, at
352 x 1216 (``store_io``, the generator's per-sample computation on real KITTI photos):
bytes per sample of the store vs a PNG folder, write ms per sample on one core, loader
samples/s store vs PNG in one process (3 repeats), the stored depth error.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import store_io
from PIL import Image

from data_schemas.geometry import points_to_sparse_depth
from pipeline.corpus import CanvasConfig, CorpusConfig, list_corpus, load_item
from pipeline.generate_config import GenerateConfig, RunConfig, SensorChoice
from pipeline.job import run_generate
from pipeline.lidar import apply_returns, camera_facing_rays
from pipeline.mesh import build_mesh
from pipeline.pose import kitti_mount
from pipeline.raycast import make_caster
from pipeline.seeding import stream
from pipeline.teacher import TEACHERS, TINY_RANDOM, Teacher, TeacherConfig

NUM_IMAGES = 48
CANVAS = CanvasConfig(176, 608)
TEACHER_RUN = TeacherConfig(input_size=56, batch_size=4)
"""Small teacher input: on CPU the single teacher actor must not be the bottleneck
(in real runs it sits on a GPU); the benchmark measures the CPU stages' scaling."""


def make_corpus(root: Path) -> None:
    rng = np.random.default_rng(0)
    for i in range(NUM_IMAGES):
        rows = np.linspace(0, 1, 240)[:, None, None]
        img = np.broadcast_to(np.concatenate([rows * 200, rows * 100 + 50, 255 - rows * 200],
                                             axis=2), (240, 720, 3)).copy()
        for _ in range(6):
            top, left = rng.integers(60, 220), rng.integers(0, 680)
            img[top:top + rng.integers(10, 80), left:left + rng.integers(10, 200)] = (
                rng.integers(0, 255, 3))
        Image.fromarray(img.astype(np.uint8)).save(root / f"img_{i:03d}.jpg", quality=92)


def throughput(corpus: Path, out: Path, workers: int) -> tuple[float, dict[str, float]]:
    cfg = GenerateConfig(
        store=str(out / f"store_w{workers}.zarr"), corpus=CorpusConfig((str(corpus),)),
        canvas=CANVAS, teacher=TINY_RANDOM, teacher_run=TEACHER_RUN,
        sensor=SensorChoice("hdl64e"), shard_size=4,
        run=RunConfig(workers=workers, teacher_cpus=0.5, progress=False, overwrite=True))
    summary = run_generate(cfg)
    per_sample = {k: v / summary.samples_written for k, v in summary.stage_seconds.items()}
    return summary.samples_written / summary.work_s, per_sample


def stage_split(corpus: Path, count: int = 8) -> dict[str, float]:
    """Per-sample seconds of the simulate sub-stages, timed call by call in this process."""
    items = list_corpus(CorpusConfig((str(corpus),)))[:count]
    teacher = Teacher(TEACHERS[TINY_RANDOM], TEACHER_RUN)
    from pipeline.camera import sample_intrinsics, teacher_to_metric_depth
    from pipeline.sensors import load_sensor

    sensor, totals = load_sensor("hdl64e"), dict.fromkeys(("mesh", "ray-cast", "projection"), 0.0)
    for item in items:
        raw = teacher.predict(load_item(item, CANVAS)[None])[0]
        K = sample_intrinsics(raw.shape, stream(0, "intrinsics", item.key))
        depth, _ = teacher_to_metric_depth(raw, "disparity", stream(0, "metric", item.key))
        t0 = time.perf_counter()
        caster = make_caster("fast", build_mesh(depth, K))
        t1 = time.perf_counter()
        rays = camera_facing_rays(sensor, K, depth.shape, kitti_mount())
        ranges = apply_returns(caster.cast(rays.origins_cam, rays.dirs_cam, sensor.max_range_m),
                               sensor, stream(0, "returns", item.key))
        t2 = time.perf_counter()
        hit = np.isfinite(ranges)
        hits_cam = rays.points_cam(np.where(hit, ranges, 0.0))[hit]
        points_to_sparse_depth(hits_cam, K, depth.shape)
        t3 = time.perf_counter()
        for name, dt in zip(totals, (t1 - t0, t2 - t1, t3 - t2), strict=True):
            totals[name] += dt
    return {k: v / len(items) for k, v in totals.items()}


def _spin(_: int) -> float:
    start = time.perf_counter()
    total = 0
    for i in range(4_000_000):
        total += i
    return time.perf_counter() - start


def machine_ceiling() -> float:
    """Speed-up of 2 pure-Python processes over 1 on this machine now (the scaling ceiling)."""
    import multiprocessing

    one = _spin(0)
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        start = time.perf_counter()
        pool.map(_spin, [0, 1])
        return 2 * one / (time.perf_counter() - start)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        corpus, out = Path(tmp) / "corpus", Path(tmp)
        corpus.mkdir()
        make_corpus(corpus)
        rate1, stages = throughput(corpus, out, 1)
        rate2, _ = throughput(corpus, out, 2)
        split = stage_split(corpus)
    print(f"generate  {NUM_IMAGES} images, canvas {CANVAS.height}x{CANVAS.width}, hdl64e, "
          f"tiny-random teacher (CPU), shards of 4")
    print(f"throughput 1 worker   {rate1:7.2f} samples/s")
    print(f"throughput 2 workers  {rate2:7.2f} samples/s")
    print(f"scaling ratio         {rate2 / rate1:7.2f}x  (goal >= 1.7x; this machine's "
          f"2-process ceiling now: {machine_ceiling():.2f}x)")
    simulate = stages.pop("simulate")
    sub = sum(split.values())
    rows = {**{k: stages[k] for k in ("decode", "teacher")},
            **{k: simulate * v / sub for k, v in split.items()}, "write": stages["write"]}
    rows["other (metric depth, K)"] = max(0.0, simulate - sum(simulate * v / sub
                                                              for v in split.values()))
    total = sum(rows.values())
    print("per-sample CPU time by stage (1-worker run; simulate split by a timed pass):")
    for name, seconds in rows.items():
        print(f"  {name:<24}{1000 * seconds:8.1f} ms  {100 * seconds / total:5.1f} %")
    store_io.run()


if __name__ == "__main__":
    main()

