"""What a training stage plugs into the engine: a :class:`Recipe` over its own batch type.

The engine knows nothing about depth. It needs from a batch only what
:class:`EngineBatch` names (moving it to a device, its size, its sample keys for error
messages, and its place in the stream for resuming); everything else is between the
recipe's stream and the recipe's loss.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, Protocol, Self, TypeVar

import torch
from torch import Tensor, nn

from train.engine.distributed import DistContext


class EngineBatch(Protocol):
    """The engine's view of a batch: ``index`` is its global number in the run's stream,
    ``epoch`` the epoch it belongs to (the sampler state saved in checkpoints)."""

    @property
    def keys(self) -> tuple[str, ...]: ...

    @property
    def epoch(self) -> int: ...

    @property
    def index(self) -> int: ...

    @property
    def size(self) -> int: ...

    def to(self, device: torch.device, non_blocking: bool = False) -> Self: ...


B = TypeVar("B", bound=EngineBatch)


@dataclass(frozen=True)
class LossTerms:
    """A loss: ``total`` (the scalar to minimise) and named detached terms to log."""

    total: Tensor
    scalars: dict[str, Tensor]


LossFn = Callable[[nn.Module, B], tuple[LossTerms, Tensor]]
"""``loss_fn(model, batch) -> (loss terms, the prediction)``."""
ValidateFn = Callable[[nn.Module, DistContext], dict[str, float]]
"""``validate(model, ctx) -> {"val/<name>": value}``, the same on every rank."""
PanelFn = Callable[[B, Tensor], Tensor]
"""``panel(batch, prediction) -> uint8 [3, H, W]`` image for TensorBoard."""


@dataclass(frozen=True)
class Recipe(Generic[B]):
    """A training stage for the engine: the model factory, the loss, the stream factory
    ``make_batches(start_batch)`` (batches ``start_batch, start_batch + 1, ...``), and
    optionally validation and a TensorBoard panel of a batch.

    ``steps_per_epoch``: batches per rank in one epoch of the stream (needed for
    ``engine.epochs``, ``engine.val_each_epoch`` and ``engine.val_from_epoch``);
    ``best_metric``: the validation value (lower is better) whose best is kept as
    ``best.pt``.
    """

    build_model: Callable[[], nn.Module]
    loss_fn: LossFn[B]
    make_batches: Callable[[int], Iterable[B]]
    validate: ValidateFn | None = None
    oom_hint: str = "use a smaller engine.batch_size or crop"
    panel: PanelFn[B] | None = None
    steps_per_epoch: int | None = None
    best_metric: str | None = None
