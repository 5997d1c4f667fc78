"""Run the pending shards of a ``dmd3c generate`` job (:mod:`pipeline.job`) on Ray: CPU
tasks for decode and simulate+write, teacher actors, in a :class:`RaySession`.

Per pending shard the driver submits ``decode -> teacher actor -> finish`` as a chain of
object references, so Ray overlaps the stages of different shards (GPU teacher while
CPUs simulate). At most ``max_in_flight`` shards are submitted at once (the "limit pending
tasks" pattern), which bounds object-store memory on million-image corpora. The tasks
report each simulated sample and each attempt to a :class:`ShardProgress` actor: the
progress bar moves per sample, and retried tasks are counted in the summary.

Fault tolerance is Ray's: tasks are retried when their worker dies (``max_retries``, plus
``retry_exceptions`` for I/O errors), teacher actors are restarted (``max_restarts``,
``max_task_retries``). A shard is committed only by :func:`data_schemas.write_shard` after
all its data is written, so a retry or a re-run simply rewrites it.
"""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

import ray
from ray.actor import ActorHandle
from tqdm import tqdm

from data_schemas.errors import ConfigError
from data_schemas.lease import StoreLease
from pipeline.corpus import ShardPlan
from pipeline.generate import (
    DecodedShard,
    GenerateSummary,
    ShardContext,
    ShardResult,
    TeacherFeed,
    decode_shard,
    finish_shard,
    open_or_create,
    store_info,
)
from pipeline.generate_config import GenerateConfig
from pipeline.job import JobPlan
from pipeline.ray_reaper import start_reaper
from pipeline.teacher import Teacher, TeacherConfig, TeacherSpec

Actor = ActorHandle[Any]
Ref = ray.ObjectRef[Any]

POLL_S = 0.5
"""How often the driver refreshes the progress bar and checks the lease."""


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
        raise ConfigError(f"Ray address {address!r} (--address / RAY_ADDRESS) is not of the "
                          f"form host:port or ray://host:port")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            return
    except OSError as err:
        raise ConfigError(f"cannot reach the Ray cluster at {address} ({err}); start it with "
                          f"`ray start --head` or fix --address / RAY_ADDRESS") from None


class RaySession:
    """One connection to Ray for one or more jobs, and the teacher actors it started.

    :meth:`open` connects to a cluster, starts an embedded single-node Ray (watched by
    :mod:`pipeline.ray_reaper`, so that its processes end with this driver), or attaches
    to the Ray this process already runs (then it neither configures nor shuts it down).
    Teacher actors are kept for the next job of the session with the same teacher and
    resources (a notebook or a test module runs several jobs; loading a model takes
    seconds) and killed when the session closes.
    """

    def __init__(self, owned: bool, reaper: subprocess.Popen[bytes] | None = None) -> None:
        self.owned = owned
        self._reaper = reaper
        self._actors: tuple[tuple[object, ...], list[Actor]] | None = None

    @classmethod
    @contextmanager
    def open(cls, address: str | None = None,
             num_cpus: int | None = None) -> Iterator[RaySession]:
        """The session for ``address`` (None = embedded Ray with ``num_cpus`` CPUs)."""
        session = cls._connect(address, num_cpus)
        try:
            yield session
        finally:
            session.close()

    @classmethod
    def _connect(cls, address: str | None, num_cpus: int | None) -> RaySession:
        if ray.is_initialized():
            return cls(owned=False)
        quiet: dict[str, Any] = {"log_to_driver": False, "logging_level": "ERROR"}
        if address:
            ray.init(address=address, **quiet)
            return cls(owned=True)
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, **quiet)
        return cls(owned=True, reaper=start_reaper())

    def teacher_actors(self, spec: TeacherSpec, cfg: GenerateConfig,
                       res: Resources) -> list[Actor]:
        """Teacher actors for ``spec`` with ``res``: this session's, or new ones."""
        key = (spec, cfg.teacher_run, res.actors, res.actor_gpus, res.actor_cpus,
               cfg.run.retries)
        if self._actors is None or self._actors[0] != key:
            self._kill_actors()
            self._actors = (key, new_teacher_actors(spec, cfg, res))
        return self._actors[1]

    def _kill_actors(self) -> None:
        if self._actors is not None:
            for actor in self._actors[1]:
                ray.kill(actor)
            self._actors = None

    def close(self) -> None:
        """Kill this session's actors; shut Ray down when this session started it."""
        if not ray.is_initialized():
            return
        if self.owned:
            self._actors = None
            ray.shutdown()
        else:
            self._kill_actors()
        if self._reaper is not None and self._reaper.stdin is not None:
            self._reaper.stdin.close()
            self._reaper.wait()


# -- Ray workers -------------------------------------------------------------------------
class ShardProgress:
    """What the tasks report (run as a zero-CPU actor): samples simulated per shard, and
    attempts per (stage, shard): an attempt beyond the first is a retry."""

    def __init__(self) -> None:
        self.samples: dict[int, int] = {}
        self.attempts: Counter[tuple[str, int]] = Counter()

    def start(self, stage: str, shard: int) -> None:
        self.attempts[(stage, shard)] += 1
        if stage == "finish":
            self.samples[shard] = 0

    def advance(self, shard: int) -> None:
        self.samples[shard] = self.samples.get(shard, 0) + 1

    def snapshot(self) -> tuple[dict[int, int], int]:
        """(samples simulated per shard, attempts beyond the first = retries)."""
        return dict(self.samples), sum(n - 1 for n in self.attempts.values())


@ray.remote
def _decode_task(plan: ShardPlan, canvas: Any, feed: TeacherFeed, board: Actor) -> DecodedShard:
    ray.get(board.start.remote("decode", plan.shard))  # counted before anything can fail
    return decode_shard(plan, canvas, feed)


@ray.remote
def _finish_task(decoded: DecodedShard, taught: tuple[Any, float], ctx: ShardContext,
                 board: Actor) -> ShardResult:
    ray.get(board.start.remote("finish", decoded.shard))  # counted before anything can fail
    raw, seconds = taught
    return finish_shard(decoded, raw, seconds, ctx,
                        on_sample=lambda: board.advance.remote(decoded.shard))


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
    cluster: dict[str, float] = ray.cluster_resources()
    gpus = cluster.get("GPU", 0.0)
    use_gpu = gpus > 0 and cfg.teacher_run.device != "cpu"
    actors = cfg.run.teacher_actors or (int(gpus) if use_gpu else 1)
    actor_cpus = cfg.run.teacher_cpus if cfg.run.teacher_cpus is not None else (
        0.5 if use_gpu else 1.0)
    cpus = cluster.get("CPU", 1.0)
    in_flight = cfg.run.max_in_flight or max(2, 2 * int(cpus - actors * actor_cpus) + 2 * actors)
    return Resources(actors, 1.0 if use_gpu else 0.0, actor_cpus, in_flight)


def embedded_cpus(cfg: GenerateConfig) -> int:
    """Logical CPUs of an embedded Ray: the workers plus the teacher actors' reservations."""
    workers = cfg.run.workers or os.cpu_count() or 1
    reserve = (cfg.run.teacher_cpus if cfg.run.teacher_cpus is not None else 1.0)
    return workers + math.ceil(reserve * (cfg.run.teacher_actors or 1))


def new_teacher_actors(spec: TeacherSpec, cfg: GenerateConfig,
                       res: Resources) -> list[Actor]:
    options = {"num_cpus": res.actor_cpus, "num_gpus": res.actor_gpus,
               "max_restarts": cfg.run.retries, "max_task_retries": cfg.run.retries}
    threads = max(1, int(res.actor_cpus))
    return [TeacherActor.options(**options).remote(spec, cfg.teacher_run, threads)  # type: ignore[attr-defined]
            for _ in range(res.actors)]


# -- the job on Ray ----------------------------------------------------------------------
def generate_on_ray(cfg: GenerateConfig, job: JobPlan, lease: StoreLease,
                    session: RaySession | None = None) -> GenerateSummary:
    """Write the pending shards of ``job`` in ``session`` (or a session of its own)."""
    if session is not None:
        return _generate(cfg, job, lease, session)
    address = parse_address(cfg.run.address)
    if address:
        check_reachable(address)
    with RaySession.open(address, None if address else embedded_cpus(cfg)) as own:
        return _generate(cfg, job, lease, own)


def _generate(cfg: GenerateConfig, job: JobPlan, lease: StoreLease,
              session: RaySession) -> GenerateSummary:
    res = plan_resources(cfg)
    actors = session.teacher_actors(job.spec, cfg, res)
    precision = cast(str, ray.get(actors[0].precision.remote()))
    info = store_info(cfg, job.items, job.spec, precision, job.sensor)
    store = open_or_create(cfg, job.layout, info)
    lease.renew()  # creating a store rewrites its folder, lease included
    pending = [p for p in job.plans if not store.is_committed(p.shard)]
    summary = GenerateSummary(cfg.store, len(job.plans), len(job.plans) - len(pending))
    ctx = ShardContext(cfg.store, job.spec.output_kind, job.sensor, cfg.sim, cfg.intrinsics,
                       cfg.metric, cfg.seed, cfg.run.fault, TeacherFeed.for_job(cfg, job.spec))
    work_start = time.perf_counter()
    _run_shards(pending, actors, ctx, cfg, res, summary, lease.check)
    summary.work_s = time.perf_counter() - work_start
    return summary


def _submit(plan: ShardPlan, actor: Actor, board: Actor, ctx: ShardContext,
            cfg: GenerateConfig) -> Ref:
    cpu = {"num_cpus": 1, "max_retries": cfg.run.retries, "retry_exceptions": [OSError]}
    decoded = _decode_task.options(**cpu).remote(plan, cfg.canvas, ctx.feed, board)
    taught: Ref = actor.infer.remote(decoded)
    return _finish_task.options(**cpu).remote(decoded, taught, ctx, board)


def _run_shards(plans: list[ShardPlan], actors: list[Actor], ctx: ShardContext,
                cfg: GenerateConfig, res: Resources, summary: GenerateSummary,
                check_lease: Callable[[], None]) -> None:
    queue = list(reversed(plans))
    in_flight: dict[Ref, ShardPlan] = {}
    finished: dict[int, int] = {}
    board = cast(Actor, ray.remote(num_cpus=0)(ShardProgress).remote())
    total = sum(len(p.items) for p in plans)
    try:
        with tqdm(total=total, unit="sample", desc="generate", disable=not cfg.run.progress,
                  file=sys.stderr, smoothing=0.05, dynamic_ncols=True) as bar:
            while queue or in_flight:
                while queue and len(in_flight) < res.in_flight:
                    plan = queue.pop()
                    actor = actors[plan.shard % len(actors)]
                    in_flight[_submit(plan, actor, board, ctx, cfg)] = plan
                done, _ = ray.wait(list(in_flight), num_returns=len(in_flight),
                                   timeout=POLL_S)
                for ref in done:
                    plan = in_flight.pop(ref)
                    summary.add(ray.get(ref))
                    finished[plan.shard] = len(plan.items)
                simulated, summary.tasks_retried = cast(tuple[dict[int, int], int],
                                                        ray.get(board.snapshot.remote()))
                _show(bar, finished, simulated, summary)
                check_lease()
    finally:
        ray.kill(board)


def _show(bar: tqdm, finished: dict[int, int], simulated: dict[int, int],
          summary: GenerateSummary) -> None:
    """Samples done = whole finished shards + samples simulated in running ones."""
    done = sum(finished.values()) + sum(n for s, n in simulated.items() if s not in finished)
    if done >= bar.n:
        bar.update(done - bar.n)
    else:  # a retried shard starts over
        bar.n = done
        bar.refresh()
    bar.set_postfix(written=summary.samples_written, skipped=len(summary.skipped),
                    retried=summary.tasks_retried, refresh=False)
