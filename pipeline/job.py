"""One ``dmd3c generate`` job: plan, take the store's lease, skip a complete store, else run.

1. :func:`plan_job` resolves the teacher, the sensor and the corpus and plans the shards:
   read-only, so bad input stops the job before anything is written;
2. the store's lease is taken (:mod:`data_schemas.lease`): one job per store;
3. a store already complete with this config is recognised from its attributes and commit
   records, without importing Ray or loading the teacher (a no-op re-run is quick);
4. otherwise :func:`pipeline.orchestrate.generate_on_ray` writes the pending shards;
5. the summary's samples and skips are read back from the store's commit records.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from data_schemas import SampleStore, StoreLayout
from data_schemas.errors import InputError
from data_schemas.lease import StoreLease
from pipeline.corpus import CorpusItem, ShardPlan, list_corpus, plan_shards
from pipeline.generate import GenerateSummary, existing_store
from pipeline.generate_config import GenerateConfig
from pipeline.sensors import SensorSpec
from pipeline.teacher import TeacherSpec, check_teacher_inputs, resolve_teacher

if TYPE_CHECKING:
    from pipeline.orchestrate import RaySession

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobPlan:
    """What a job is, resolved before anything starts: read-only, no Ray, no model."""

    spec: TeacherSpec
    sensor: SensorSpec
    items: list[CorpusItem]
    plans: list[ShardPlan]
    layout: StoreLayout


def plan_job(cfg: GenerateConfig) -> JobPlan:
    """Resolve teacher, sensor and corpus; user errors surface here, before any write."""
    spec = resolve_teacher(cfg.teacher)
    check_teacher_inputs(spec, cfg.teacher_run)
    sensor = cfg.sensor.load()
    items = list_corpus(cfg.corpus)
    if not items:
        raise InputError(f"the corpus {list(cfg.corpus.roots)} has no file matching "
                         f"{list(cfg.corpus.include)} (--corpus / --include / --exclude)")
    plans = plan_shards(items, cfg.shard_size)
    layout = StoreLayout(cfg.canvas.height, cfg.canvas.width, len(plans), cfg.shard_size)
    return JobPlan(spec, sensor, items, plans, layout)


def run_generate(cfg: GenerateConfig, session: RaySession | None = None) -> GenerateSummary:
    """Generate (or resume) the store of ``cfg``; returns the summary.

    Runs in ``session`` when given (several jobs may share one), else in a Ray session
    opened for this job only. A store already complete with this config returns without
    starting Ray.
    """
    started = time.perf_counter()
    job = plan_job(cfg)
    with StoreLease(cfg.store, "dmd3c generate", break_lease=cfg.run.break_lease) as lease:
        existing = existing_store(cfg, job.layout, job.items, job.spec, job.sensor)
        if existing is not None and not existing.pending_shards:
            log.info("%s: complete with this config; nothing to do", cfg.store)
            if existing.num_rows != existing.finished_rows:  # killed between commit and trim
                SampleStore.open(cfg.store, mode="r+").finish()
            summary = GenerateSummary(cfg.store, len(job.plans), len(job.plans),
                                      up_to_date=True)
        else:
            from pipeline.orchestrate import generate_on_ray

            summary = generate_on_ray(cfg, job, lease, session)
        summary.count_store(SampleStore.open(cfg.store))
    summary.wall_s = time.perf_counter() - started
    return summary
