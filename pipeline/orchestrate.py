"""Run ``dmd3c generate`` on Ray: CPU tasks for decode and simulate+write, teacher actors.

Per pending shard the driver submits ``decode -> teacher actor -> finish`` as a chain of
object references, so Ray overlaps the stages of different shards (GPU teacher while
CPUs simulate). At most ``max_in_flight`` shards are submitted at once (the "limit pending
tasks" pattern), which bounds object-store memory on million-image corpora.

Fault tolerance is Ray's: tasks are retried when their worker dies (``max_retries``, plus
``retry_exceptions`` for I/O errors), teacher actors are restarted (``max_restarts``,
``max_task_retries``). A shard is committed only by :func:`data_schemas.write_shard` after
all its data is written, so a retry or a re-run simply rewrites it.
"""

from __future__ import annotations

import math
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import ray
from tqdm import tqdm

from data_schemas import StoreLayout
from pipeline.corpus import ShardPlan, list_corpus, plan_shards
from pipeline.generate import (
    DecodedShard,
    GenerateConfig,
    GenerateSummary,
    ShardContext,
    ShardResult,
    TeacherFeed,
    decode_shard,
    finish_shard,
    open_or_create,
    store_info,
)
from pipeline.teacher import (
    Teacher,
    TeacherConfig,
    TeacherSpec,
    check_teacher_inputs,
    resolve_teacher,
)


# -- Ray connection ----------------------------------------------------------------------
def parse_address(address: str | None) -> str | None:
    """``--address`` or RAY_ADDRESS; None = start an embedded Ray."""
    chosen = address or os.environ.get("RAY_ADDRESS") or None
    return chosen.strip() if chosen else None


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail within seconds, with one line, when no Ray head listens at ``host:port``."""
    if address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"Ray address {address!r} is not of the form host:port or "
                         f"ray://host:port")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            return
    except OSError as err:
        raise ValueError(f"cannot reach the Ray cluster at {address} ({err}); start it with "
                         f"`ray start --head` or fix --address / RAY_ADDRESS") from None


@contextmanager
def ray_session(address: str | None, num_cpus: float | None) -> Iterator[None]:
    """Connect to ``address`` or start an embedded Ray; reuse one that is already up."""
    if ray.is_initialized():
        yield
        return
    if address:
        ray.init(address=address, log_to_driver=False, logging_level="ERROR")
    else:
        os.environ.pop("RAY_ADDRESS", None)
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
                 logging_level="ERROR")
    try:
        yield
    finally:
        _ACTORS.clear()
        ray.shutdown()


# -- Ray workers -------------------------------------------------------------------------
@ray.remote
def _decode_task(plan: ShardPlan, canvas: object, feed: object) -> DecodedShard:
    return decode_shard(plan, canvas, feed)  # type: ignore[arg-type]


@ray.remote
def _finish_task(decoded: DecodedShard, taught: tuple[object, float],
                 ctx: ShardContext) -> ShardResult:
    raw, seconds = taught
    return finish_shard(decoded, raw, seconds, ctx)  # type: ignore[arg-type]


@ray.remote
class TeacherActor:
    """One loaded teacher model; ``infer`` returns (raw outputs, seconds)."""

    def __init__(self, spec: TeacherSpec, cfg: TeacherConfig, threads: int) -> None:
        import torch

        torch.set_num_threads(max(1, threads))
        self.teacher = Teacher(spec, cfg)

    def infer(self, decoded: DecodedShard) -> tuple[object, float]:
        start = time.perf_counter()
        raw = self.teacher.predict(decoded.rgb, decoded.focal_px, decoded.prompt)
        return raw, time.perf_counter() - start

    def precision(self) -> str:
        return self.teacher.precision


@dataclass(frozen=True)
class Resources:
    """How many of what the job asks Ray for."""

    actors: int
    actor_gpus: float
    actor_cpus: float
    in_flight: int


def plan_resources(cfg: GenerateConfig) -> Resources:
    """Teacher actors on GPUs when the cluster has them (CPU otherwise)."""
    gpus = ray.cluster_resources().get("GPU", 0.0)
    use_gpu = gpus > 0 and cfg.teacher_run.device != "cpu"
    actors = cfg.run.teacher_actors or (int(gpus) if use_gpu else 1)
    actor_cpus = cfg.run.teacher_cpus if cfg.run.teacher_cpus is not None else (
        0.5 if use_gpu else 1.0)
    cpus = ray.cluster_resources().get("CPU", 1.0)
    in_flight = cfg.run.max_in_flight or max(2, 2 * int(cpus - actors * actor_cpus) + 2 * actors)
    return Resources(actors, 1.0 if use_gpu else 0.0, actor_cpus, in_flight)


def embedded_cpus(cfg: GenerateConfig) -> float:
    """Logical CPUs of an embedded Ray: the workers plus the teacher actors' reservations."""
    workers = cfg.run.workers or os.cpu_count() or 1
    reserve = (cfg.run.teacher_cpus if cfg.run.teacher_cpus is not None else 1.0)
    return workers + math.ceil(reserve * (cfg.run.teacher_actors or 1))


_ACTORS: dict[tuple[object, ...], list] = {}
"""Teacher actors of this driver's Ray session, reused by later jobs with the same teacher
(a notebook or a test session runs several jobs; loading a model takes seconds)."""


def start_actors(spec: TeacherSpec, cfg: GenerateConfig, res: Resources) -> list:
    cache_key = (ray.get_runtime_context().get_job_id(), spec, cfg.teacher_run, res.actors,
                 res.actor_gpus, res.actor_cpus, cfg.run.retries)
    if cache_key not in _ACTORS:
        _ACTORS.clear()
        _ACTORS[cache_key] = _new_actors(spec, cfg, res)
    return _ACTORS[cache_key]


def _new_actors(spec: TeacherSpec, cfg: GenerateConfig, res: Resources) -> list:
    options = {"num_cpus": res.actor_cpus, "num_gpus": res.actor_gpus,
               "max_restarts": cfg.run.retries, "max_task_retries": cfg.run.retries}
    threads = max(1, int(res.actor_cpus))
    return [TeacherActor.options(**options).remote(spec, cfg.teacher_run, threads)
            for _ in range(res.actors)]


# -- the job -----------------------------------------------------------------------------
def run_generate(cfg: GenerateConfig) -> GenerateSummary:
    """Generate (or resume) the store of ``cfg``; returns the summary."""
    started = time.perf_counter()
    spec = resolve_teacher(cfg.teacher)
    check_teacher_inputs(spec, cfg.teacher_run)
    sensor = cfg.sensor.load()
    items = list_corpus(cfg.corpus)
    if not items:
        raise ValueError(f"the corpus {list(cfg.corpus.roots)} has no file matching "
                         f"{list(cfg.corpus.include)}")
    plans = plan_shards(items, cfg.shard_size)
    layout = StoreLayout(cfg.canvas.height, cfg.canvas.width, len(plans), cfg.shard_size)
    address = parse_address(cfg.run.address)
    if address:
        check_reachable(address)
    with ray_session(address, None if address else embedded_cpus(cfg)):
        res = plan_resources(cfg)
        actors = start_actors(spec, cfg, res)
        precision = ray.get(actors[0].precision.remote())
        store = open_or_create(cfg, layout, store_info(cfg, items, spec, precision, sensor))
        pending = [p for p in plans if not store.is_committed(p.shard)]
        summary = GenerateSummary(cfg.store, len(plans), shards_resumed=len(plans) - len(pending))
        ctx = ShardContext(cfg.store, spec.output_kind, sensor, cfg.sim, cfg.intrinsics,
                           cfg.metric, cfg.seed, cfg.run.fault, TeacherFeed.for_job(cfg, spec))
        work_start = time.perf_counter()
        _run_shards(pending, actors, ctx, cfg, res, summary)
        summary.work_s = time.perf_counter() - work_start
    summary.wall_s = time.perf_counter() - started
    return summary


def _submit(plan: ShardPlan, actor: object, ctx: ShardContext, cfg: GenerateConfig) -> object:
    cpu = {"num_cpus": 1, "max_retries": cfg.run.retries, "retry_exceptions": [OSError]}
    decoded = _decode_task.options(**cpu).remote(plan, cfg.canvas, ctx.feed)
    taught = actor.infer.remote(decoded)  # type: ignore[attr-defined]
    return _finish_task.options(**cpu).remote(decoded, taught, ctx)


def _run_shards(plans: list[ShardPlan], actors: list, ctx: ShardContext, cfg: GenerateConfig,
                res: Resources, summary: GenerateSummary) -> None:
    queue = list(reversed(plans))
    in_flight: dict[object, ShardPlan] = {}
    total = sum(len(p.items) for p in plans)
    with tqdm(total=total, unit="sample", desc="generate", disable=not cfg.run.progress,
              file=sys.stderr, smoothing=0.1) as bar:
        while queue or in_flight:
            while queue and len(in_flight) < res.in_flight:
                plan = queue.pop()
                in_flight[_submit(plan, actors[plan.shard % len(actors)], ctx, cfg)] = plan
            done, _ = ray.wait(list(in_flight), num_returns=1)
            for ref in done:
                plan = in_flight.pop(ref)
                summary.add(ray.get(ref))
                bar.update(len(plan.items))
                bar.set_postfix(written=summary.samples_written, skipped=len(summary.skipped))
