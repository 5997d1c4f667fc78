"""Exponential moving average of a model's parameters and buffers (BP-Net uses decay 0.9999)."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA(nn.Module):
    """Frozen copy of ``model`` tracking ``ema = decay * ema + (1 - decay) * value``.

    Every floating-point entry of the state dict (parameters and buffers such as BN running
    statistics) is averaged; integer buffers (``num_batches_tracked``) are copied. Entries are
    matched by name. The copy stays in eval mode; ``ema.module`` is the averaged model.
    """

    def __init__(self, model: nn.Module, decay: float = 0.9999) -> None:
        super().__init__()
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"decay must be in [0, 1], got {decay}")
        self.decay = decay
        self.module = copy.deepcopy(model)
        self.module.eval()
        self.module.requires_grad_(False)

    def train(self, mode: bool = True) -> EMA:
        """The averaged copy always stays in eval mode."""
        super().train(mode)
        self.module.eval()
        return self

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One averaging step towards ``model`` (same architecture)."""
        self._apply_update(model, self.decay)

    @torch.no_grad()
    def set(self, model: nn.Module) -> None:
        """Copy ``model`` into the average (decay 0 for one step)."""
        self._apply_update(model, 0.0)

    def _apply_update(self, model: nn.Module, decay: float) -> None:
        current = model.state_dict()
        for name, average in self.module.state_dict().items():
            value = current[name].detach().to(average.device)
            if average.is_floating_point():
                average.mul_(decay).add_(value.to(average.dtype), alpha=1.0 - decay)
            else:
                average.copy_(value)
