"""The training engine shared by both stages: loop, AMP, DDP, EMA, run-state checkpoints,
schedule, config. It knows nothing about depth: a stage hands it a :class:`Recipe` over its
own batch type (``recipe``); ``trainer`` runs it, ``run`` wraps a run directory around it.
"""

from data_schemas.errors import TrainingError
from train.engine.config import (
    EngineConfig,
    OptimConfig,
    ScheduleConfig,
    load_structured,
    to_yaml,
)
from train.engine.distributed import DistContext, init_distributed, parse_device, shutdown
from train.engine.ema import EMA
from train.engine.recipe import EngineBatch, LossTerms, Recipe
from train.engine.run import load_run_config, run_recipe
from train.engine.schedule import ScheduleTable, one_cycle, one_cycle_curve
from train.engine.trainer import NonFiniteLossError, RunState, Trainer

__all__ = [
    "EMA", "DistContext", "EngineBatch", "EngineConfig", "LossTerms", "NonFiniteLossError",
    "OptimConfig", "Recipe", "RunState", "ScheduleConfig", "ScheduleTable", "Trainer",
    "TrainingError", "init_distributed", "load_run_config", "load_structured", "one_cycle",
    "one_cycle_curve", "parse_device", "run_recipe", "shutdown", "to_yaml",
]
