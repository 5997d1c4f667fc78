"""``dmd3c generate``: the store it writes, the per-shard work and the summary (the job's
configuration is :mod:`pipeline.generate_config`).

The work of one shard is three pure steps, run by :mod:`pipeline.orchestrate` on Ray:

1. :func:`decode_shard` (CPU task): read and decode the shard's images to the canvas, with
   what the teacher needs besides RGB (:class:`TeacherFeed`: the sampled focal length for
   Depth Pro, the image's KITTI LiDAR on the canvas as Prompt Depth Anything's prompt);
2. :meth:`pipeline.teacher.Teacher.predict` (teacher actor, GPU when present): raw outputs;
3. :func:`finish_shard` (CPU task): metric depth, intrinsics, mesh, LiDAR ray-cast,
   projection, then :func:`data_schemas.write_shard` writes and commits the whole shard.

Every random choice of a sample derives from ``(seed, key)`` (``pipeline.seeding``), and a
shard's content depends only on its items and the config, so any schedule, retry or
resume writes the same bytes.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from data_schemas import (
    SampleStore,
    SkippedSample,
    StoreInfo,
    StoreLayout,
    create_store,
    write_shard,
)
from data_schemas.errors import StoreError
from data_schemas.lease import LEASE_NAME
from data_schemas.location import StoreLocation
from pipeline.camera import IntrinsicsSampler, MetricRange, sample_intrinsics
from pipeline.corpus import (
    CanvasConfig,
    CorpusItem,
    ShardPlan,
    SkipSample,
    corpus_fingerprint,
    cover_crop,
    load_item,
)
from pipeline.generate_config import FaultInjection, GenerateConfig
from pipeline.seeding import stream
from pipeline.sensors import SensorSpec, sensor_table_deg
from pipeline.simulate import SimConfig, simulate
from pipeline.teacher import TeacherSpec
from pipeline.teachers.kitti import lidar_path, read_kitti_depth
from pipeline.teachers.prompt import sparse_to_canvas
from pipeline.teachers.registry import FOCAL

GENERATOR_NAME = "dmd3c.generate"
GENERATOR_VERSION = "2"
"""Bumped when the per-sample computation changes meaning (part of the store identity).
2: the teacher runs the official Depth Anything V2 pre/post-processing in fp32; the LiDAR is
the calibrated per-laser hdl64e with see-through layer, physical returns and KITTI-like
camera sampling."""


@dataclass(frozen=True)
class TeacherFeed:
    """What the teacher needs besides RGB, prepared on the CPU with the decode."""

    focal: bool = False
    """Depth Pro: pass each sample's sampled fx (the same K the simulation then uses)."""
    prompt: str = "none"
    """Prompt Depth Anything: ``lidar`` = the image's KITTI LiDAR map moved onto the canvas
    (images without one are skipped)."""
    seed: int = 0
    intrinsics: IntrinsicsSampler = field(default_factory=IntrinsicsSampler)

    @classmethod
    def for_job(cls, cfg: GenerateConfig, spec: TeacherSpec) -> TeacherFeed:
        return cls(FOCAL in spec.needs, cfg.teacher_run.prompt, cfg.seed, cfg.intrinsics)


@dataclass(frozen=True)
class ShardContext:
    """What a worker needs to finish shards (small, pickled once per task)."""

    store: str
    teacher_kind: str
    sensor: SensorSpec
    sim: SimConfig
    intrinsics: IntrinsicsSampler
    metric: MetricRange
    seed: int
    fault: FaultInjection
    feed: TeacherFeed = field(default_factory=TeacherFeed)


# -- store identity ----------------------------------------------------------------------
def generator_attrs(cfg: GenerateConfig, items: list[CorpusItem]) -> dict[str, object]:
    """The store's ``generator`` attribute: the resolved config that defines its content."""
    body = asdict(cfg)
    for transient in ("store", "run"):
        body.pop(transient)
    body["teacher_run"].pop("device")
    body["corpus"]["num_items"] = len(items)
    body["corpus"]["fingerprint"] = corpus_fingerprint(items)
    return _plain({"name": GENERATOR_NAME, "version": GENERATOR_VERSION, **body})


def _plain(value: object) -> dict[str, object]:
    """JSON round trip: tuples -> lists, as the attributes read back."""
    plain: dict[str, object] = json.loads(json.dumps(value))
    return plain


def store_info(cfg: GenerateConfig, items: list[CorpusItem], teacher: TeacherSpec,
               precision: str, sensor: SensorSpec) -> StoreInfo:
    teacher_attrs = {**teacher.attrs(), "input_size": cfg.teacher_run.input_size,
                     "precision": precision}
    return StoreInfo(generator_attrs(cfg, items), _plain(teacher_attrs),
                     _plain(sensor_attrs(cfg.sensor.preset, sensor)))


def sensor_attrs(preset: str, sensor: SensorSpec) -> dict[str, object]:
    """The store's ``sensor`` attribute, angles in degrees as in the preset files."""
    return {"preset": preset, "name": sensor.name, "beams": sensor.beams,
            **sensor_table_deg(sensor),
            "azimuth_step_deg": round(math.degrees(sensor.azimuth_step_rad), 6),
            "max_range_m": sensor.max_range_m, "min_range_m": sensor.min_range_m,
            "range_noise_std_m": sensor.range_noise_std_m, "drop_prob": sensor.drop_prob,
            "drop_prob_per_100m": sensor.drop_prob_per_100m,
            "returns": None if sensor.returns is None else asdict(sensor.returns)}


def existing_store(cfg: GenerateConfig, layout: StoreLayout, items: list[CorpusItem],
                   teacher: TeacherSpec, sensor: SensorSpec) -> SampleStore | None:
    """The store at ``cfg.store`` when it exists and ``--overwrite`` is off, checked to be
    made with this config (before the teacher runs: with ``precision auto``, the precision
    it resolved to is taken from the store); None when there is none to resume."""
    if cfg.run.overwrite or not StoreLocation.parse(cfg.store).exists("zarr.json"):
        return None
    store = SampleStore.open(cfg.store, mode="r")
    precision = cfg.teacher_run.precision
    stored_teacher = store.attrs.get("teacher")
    if precision == "auto" and isinstance(stored_teacher, dict):
        precision = str(stored_teacher.get("precision", precision))
    check_same_config(store, layout, store_info(cfg, items, teacher, precision, sensor))
    return store


def open_or_create(cfg: GenerateConfig, layout: StoreLayout, info: StoreInfo) -> SampleStore:
    """The store to write: created, or reopened for resume when its config is the same."""
    location = StoreLocation.parse(cfg.store)
    if not location.exists("zarr.json") or cfg.run.overwrite:
        clear_store(location)
        return create_store(cfg.store, layout, info)
    store = SampleStore.open(cfg.store, mode="r+")
    check_same_config(store, layout, info)
    return store


def check_same_config(store: SampleStore, layout: StoreLayout, info: StoreInfo) -> None:
    """Raise :class:`StoreError` naming the attributes in which ``store`` differs."""
    differences = config_differences(store.attrs, layout, info)
    if differences:
        raise StoreError(store.url, f"the existing store was made with a different config "
                                    f"({', '.join(differences)} differ); pass --overwrite to "
                                    f"replace it, or choose another --store")


def clear_store(location: StoreLocation) -> None:
    """Delete everything in the store folder but its lease (the job holding it is us)."""
    if not location.exists():
        return
    for path in location.fs.ls(location.root, detail=False):
        if path.rstrip("/").rsplit("/", 1)[-1] != LEASE_NAME:
            location.fs.rm(path, recursive=True)


def config_differences(attrs: dict[str, object], layout: StoreLayout,
                       info: StoreInfo) -> list[str]:
    """Names of the root attributes (``generator.seed``...) that differ from the new job."""
    ours = {"canvas": [layout.height, layout.width], "shard_size": layout.shard_size,
            "num_shards": layout.num_shards, "generator": info.generator,
            "teacher": info.teacher, "sensor": info.sensor}
    found = []
    for name, value in ours.items():
        stored = attrs.get(name)
        if isinstance(value, dict) and isinstance(stored, dict):
            found += [f"{name}.{k}" for k in sorted(set(value) | set(stored))
                      if value.get(k) != stored.get(k)]
        elif stored != value:
            found.append(name)
    return found


# -- per-shard work ----------------------------------------------------------------------
Batch = dict[str, np.ndarray | list[str]]
"""A shard's arrays by name, ``[n, ...]`` each (``key``/``source``: lists of str)."""


@dataclass(frozen=True)
class DecodedShard:
    """Step 1 output: the shard's decodable items and their canvases, and the skips."""

    shard: int
    items: tuple[CorpusItem, ...]
    rgb: np.ndarray
    """(n, H, W, 3) uint8."""
    skipped: tuple[SkippedSample, ...]
    seconds: float
    focal_px: np.ndarray | None = None
    """(n,) sampled fx of each sample (teachers that take the focal length)."""
    prompt: np.ndarray | None = None
    """(n, H, W) float32 sparse depth prompt on the canvas (m, 0 = none)."""


@dataclass(frozen=True)
class ShardResult:
    """What the driver learns about a committed shard."""

    shard: int
    written: int
    skipped: tuple[SkippedSample, ...]
    seconds: dict[str, float]


def decode_shard(plan: ShardPlan, canvas: CanvasConfig,
                 feed: TeacherFeed = TeacherFeed()) -> DecodedShard:
    """Read and decode every item of ``plan`` (and its teacher inputs); failures are skips."""
    start = time.perf_counter()
    ok, images, prompts, skipped = [], [], [], []
    for item in plan.items:
        try:
            images.append(load_item(item, canvas))
            if feed.prompt == "lidar":
                prompts.append(canvas_lidar(item, canvas))
            ok.append(item)
        except SkipSample as why:
            skipped.append(SkippedSample(item.key, str(why)))
            del images[len(ok):]
    rgb = (np.stack(images) if images
           else np.zeros((0, canvas.height, canvas.width, 3), np.uint8))
    focal = np.array([sample_intrinsics(rgb.shape[1:3], stream(feed.seed, "intrinsics", i.key),
                                        feed.intrinsics)[0, 0] for i in ok]) if feed.focal else None
    prompt = np.stack(prompts) if prompts else None
    return DecodedShard(plan.shard, tuple(ok), rgb, tuple(skipped), time.perf_counter() - start,
                        focal, prompt)


def canvas_lidar(item: CorpusItem, canvas: CanvasConfig) -> np.ndarray:
    """The KITTI LiDAR map of ``item``'s image, moved onto the canvas like the image."""
    from PIL import Image

    path = lidar_path(item.source) if "://" not in item.source else None
    if path is None:
        raise SkipSample("no KITTI LiDAR map (velodyne_raw) for the depth prompt")
    sparse = read_kitti_depth(path)
    with Image.open(item.source) as image:
        size = image.size[::-1]
    if sparse.shape != size:
        raise SkipSample(f"LiDAR map {path.name} is {sparse.shape}, the image {size}")
    box = cover_crop(size, canvas.height, canvas.width)
    return sparse_to_canvas(sparse, box, canvas.height, canvas.width)


def simulate_shard(decoded: DecodedShard, raw: np.ndarray, ctx: ShardContext,
                   on_sample: Callable[[], object] | None = None) -> Batch:
    """Teacher outputs (n, H, W) -> the shard's batch (array name -> [n, ...]);
    ``on_sample`` is called after each sample (progress)."""
    rows = []
    for i, item in enumerate(decoded.items):
        rows.append(simulate(raw[i], ctx.teacher_kind, ctx.sensor, ctx.seed, key=item.key,
                             intrinsics=ctx.intrinsics, metric=ctx.metric, config=ctx.sim,
                             rgb=decoded.rgb[i]))
        if on_sample is not None:
            on_sample()
    return {
        "rgb": decoded.rgb,
        "sparse_depth": np.stack([r.scan.sparse_depth for r in rows]),
        "teacher_depth": np.stack([r.depth for r in rows]),
        "teacher_output": raw.astype(np.float32),
        "intrinsics": np.stack([r.scan.K for r in rows]).astype(np.float32),
        "T_cam_from_lidar": np.stack([r.scan.T_cam_from_lidar for r in rows]).astype(
            np.float32),
        "key": [item.key for item in decoded.items],
        "source": [item.source for item in decoded.items],
    }


def finish_shard(decoded: DecodedShard, raw: np.ndarray, teacher_seconds: float,
                 ctx: ShardContext,
                 on_sample: Callable[[], object] | None = None) -> ShardResult:
    """Simulate the LiDAR for every sample, write the whole shard, commit it."""
    inject_faults(decoded.shard, ctx.fault)
    start = time.perf_counter()
    batch: Batch = simulate_shard(decoded, raw, ctx, on_sample) if decoded.items else {}
    simulated = time.perf_counter()
    store = SampleStore.open(ctx.store, mode="r+")
    sparse = np.asarray(batch.get("sparse_depth", np.zeros((0, 1, 1))))
    extra: dict[str, object] = {"density": [round(float(np.count_nonzero(d)) / d.size, 6)
                                            for d in sparse]}
    write_shard(store, decoded.shard, batch, skipped=decoded.skipped, extra=extra)
    seconds = {"decode": decoded.seconds, "teacher": teacher_seconds,
               "simulate": simulated - start, "write": time.perf_counter() - simulated}
    return ShardResult(decoded.shard, len(decoded.items), decoded.skipped, seconds)


def inject_faults(shard: int, fault: FaultInjection) -> None:
    """Test-only: sleep, or kill this worker process once for ``fault.kill_shard``."""
    if fault.shard_delay_s > 0:
        time.sleep(fault.shard_delay_s)
    if shard == fault.kill_shard and fault.marker and not os.path.exists(fault.marker):
        with open(fault.marker, "w") as handle:
            handle.write(f"killed worker {os.getpid()} on shard {shard}\n")
        os._exit(1)


# -- summary -----------------------------------------------------------------------------
@dataclass
class GenerateSummary:
    """The end-of-job report; the skips and sample count are the store's commit records'."""

    store: str
    shards_total: int
    shards_resumed: int = 0
    shards_written: int = 0
    samples_written: int = 0
    """Samples written by this run."""
    samples_in_store: int = 0
    """Samples in the store's committed shards after this run."""
    skipped: list[SkippedSample] = field(default_factory=list)
    """Every corpus item the store records as skipped (this run's and resumed shards')."""
    tasks_retried: int = 0
    """Task attempts beyond the first (a worker died, or an I/O error was retried)."""
    up_to_date: bool = False
    """The store was already complete with this config: nothing was started."""
    wall_s: float = 0.0
    work_s: float = 0.0
    """Wall time of the shard work alone (without Ray start-up and model loading)."""
    stage_seconds: dict[str, float] = field(default_factory=dict)

    def add(self, result: ShardResult) -> None:
        self.shards_written += 1
        self.samples_written += result.written
        self.skipped.extend(result.skipped)
        for stage, seconds in result.seconds.items():
            self.stage_seconds[stage] = self.stage_seconds.get(stage, 0.0) + seconds

    def count_store(self, store: SampleStore) -> None:
        """Samples and skips from the commit records of ``store`` (the finished job)."""
        store.refresh()
        self.samples_in_store = store.num_samples
        self.skipped = [s for shard in store.committed_shards
                        for s in store.records[shard].skipped]

    @property
    def samples_per_s(self) -> float:
        return self.samples_written / self.wall_s if self.wall_s > 0 else 0.0

    def skip_reasons(self) -> dict[str, int]:
        """Skips counted by reason class (the text before the first ':')."""
        return dict(Counter(s.reason.split(":")[0] for s in self.skipped))

    def to_json(self) -> dict[str, object]:
        """The ``--json`` body: every field, plus throughput and skips by reason."""
        body = asdict(self)
        body.update(samples_per_s=self.samples_per_s, skip_reasons=self.skip_reasons())
        return body

    def lines(self) -> list[str]:
        per_sample = {k: v / max(self.samples_written, 1) for k, v in self.stage_seconds.items()}
        lines = [
            f"store      {self.store}",
            f"shards     {self.shards_written} written, {self.shards_resumed} already "
            f"committed (resumed), {self.shards_total} total",
            f"samples    {self.samples_written} written, {self.samples_in_store} in the store, "
            f"{len(self.skipped)} skipped {self.skip_reasons() or ''}".rstrip(),
            f"wall time  {self.wall_s:.1f} s, {self.samples_per_s:.2f} samples/s",
        ]
        if self.tasks_retried:
            lines.append(f"retries    {self.tasks_retried} task attempts retried")
        if per_sample:
            lines.append("cpu s/sample " + "  ".join(f"{k} {v:.3f}"
                                                     for k, v in per_sample.items()))
        return lines
