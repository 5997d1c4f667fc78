"""Running a recipe into a run directory: config resolution and the run wrapper shared by
pre-training and fine-tuning."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol, TypeVar, cast

from data_schemas.errors import ConfigError
from train.engine.checkpoint import load_payload
from train.engine.checks import (
    Checks,
    check_engine_section,
    check_optim_section,
    check_schedule_section,
    world_size_from_env,
)
from train.engine.config import EngineConfig, OptimConfig, ScheduleConfig, load_structured, to_yaml
from train.engine.distributed import DistContext, barrier, init_distributed, shutdown
from train.engine.recipe import B, Recipe
from train.engine.trainer import RunState, Trainer

T = TypeVar("T")


class RunConfig(Protocol):
    """What the engine reads of a stage's config (both stages' configs are frozen dataclasses
    with these sections)."""

    @property
    def engine(self) -> EngineConfig: ...

    @property
    def optim(self) -> OptimConfig: ...

    @property
    def schedule(self) -> ScheduleConfig: ...


def load_run_config(schema: type[T], run_dir: Path, config_file: Path | None,
                    overrides: Sequence[str], resume: bool, preset: T | None = None) -> T:
    """Defaults (or ``preset``) <- (the run's saved config when resuming) <- ``config_file``
    <- overrides, the engine's sections checked (:mod:`train.engine.checks`); nothing is
    written.

    A run directory that already holds a run is refused unless ``resume``.
    """
    base = ""
    if resume:
        base = str(load_payload(run_dir / "last.pt").get("config") or "")
    elif (run_dir / "last.pt").exists():
        raise ConfigError(f"{run_dir} already holds a run (last.pt): pass --resume to continue "
                         f"it or choose another --out")
    cfg = load_structured(schema, [config_file] if config_file else [], overrides, base=base,
                          preset=preset)
    check_run_sections(cast(RunConfig, cfg), Checks(overrides))
    return cfg


def check_run_sections(cfg: RunConfig, checks: Checks) -> None:
    """The engine's sections of a stage config (``engine``, ``optim``, ``schedule``)."""
    check_engine_section(cfg.engine, checks, world_size_from_env())
    check_optim_section(cfg.optim, checks)
    check_schedule_section(cfg.schedule, checks)


def run_recipe(cfg: RunConfig, run_dir: Path, resume: bool,
               make_recipe: Callable[[DistContext], Recipe[B]]) -> RunState:
    """Start the process group, save the resolved config, train, and shut down."""
    ctx = init_distributed(cfg.engine.device)
    try:
        recipe = make_recipe(ctx)
        text = to_yaml(cfg)
        if ctx.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "config.yaml").write_text(text)
        barrier(ctx)
        trainer = Trainer(recipe, cfg.engine, cfg.optim, cfg.schedule, run_dir, ctx, text,
                          resume_from=run_dir / "last.pt" if resume else None)
        return trainer.fit()
    finally:
        shutdown(ctx)
