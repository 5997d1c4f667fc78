"""Optimizer parameter groups: no weight decay on 1-D parameters, as the released DMD3C decides.

The rule lives in ``utils.py`` ``config_param`` of ``Sharpiless/DMD3C`` (``optimizers.py``
only re-exports torch's ``AdamW``; ``Trainer.init_optim`` calls
``AdamW(params=config_param(net), lr, weight_decay=0.05, betas=(0.9, 0.999))``): every
parameter from ``model.named_parameters()`` whose ``len(param.shape) == 1`` gets a group of
its own with ``weight_decay = 0.0``; all others (any other rank, 0-D included) go, in order,
into one last group with the optimizer's default weight decay. Frozen parameters are not
filtered out (AdamW skips parameters without a gradient). On BP-Net the 1-D parameters are the
BatchNorm weights and biases and the convolution biases.

Here the 1-D parameters share one group: AdamW updates each parameter from its own state and
its group's hyper-parameters only, and the schedules set the same lr and beta1 on every group,
so one shared group updates exactly as one group per parameter does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn


@dataclass(frozen=True)
class DecaySplit:
    """Parameter names with and without weight decay, in ``named_parameters`` order."""

    decay: tuple[str, ...]
    no_decay: tuple[str, ...]


def split_decay(model: nn.Module, no_decay_1d: bool = True) -> DecaySplit:
    """Names of the parameters that get weight decay and of those that do not (1-D ones when
    ``no_decay_1d``, the released rule; none otherwise)."""
    decay: list[str] = []
    no_decay: list[str] = []
    for name, param in model.named_parameters():
        (no_decay if no_decay_1d and param.dim() == 1 else decay).append(name)
    return DecaySplit(tuple(decay), tuple(no_decay))


def param_groups(model: nn.Module, weight_decay: float,
                 no_decay_1d: bool = True) -> list[dict[str, Any]]:
    """Torch parameter groups for ``model``: the 1-D parameters with weight decay 0 (when
    ``no_decay_1d``), the others with ``weight_decay``; empty groups are left out."""
    split = split_decay(model, no_decay_1d)
    params = dict(model.named_parameters())
    groups = [
        {"params": [params[n] for n in split.no_decay], "weight_decay": 0.0},
        {"params": [params[n] for n in split.decay], "weight_decay": float(weight_decay)},
    ]
    return [group for group in groups if group["params"]]
