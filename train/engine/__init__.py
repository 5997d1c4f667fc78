"""The training engine shared by pre-training and fine-tuning (loop, AMP, DDP, EMA, checkpoints)."""

from train.engine.config import (
    EngineConfig,
    OptimConfig,
    ScheduleConfig,
    load_structured,
    to_yaml,
)
from train.engine.distributed import DistContext, init_distributed, shutdown
from train.engine.run import load_run_config, run_recipe
from train.engine.schedule import ScheduleTable, one_cycle, one_cycle_curve
from train.engine.trainer import NonFiniteLossError, Recipe, RunState, Trainer, TrainingError

__all__ = [
    "DistContext", "EngineConfig", "NonFiniteLossError", "OptimConfig", "Recipe", "RunState",
    "ScheduleConfig", "ScheduleTable", "Trainer", "TrainingError", "init_distributed",
    "load_run_config", "load_structured", "one_cycle", "one_cycle_curve", "run_recipe",
    "shutdown", "to_yaml",
]
