"""Checkpoints: the released BP-Net/DMD3C format and ours, one loader for both.

Released files are ``torch.save({'net': state_dict, 'epoch': int, 'best_metric_ema': float})``.
Ours are the same dict plus optional entries (e.g. ``'ema'``: a second state dict,
``'optimizer'``, ``'config'``), all plain tensors/containers so ``weights_only=True`` loads them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from data_schemas.errors import CheckpointError
from train.model.bpnet import BPNet

OFFICIAL_KEYS = ("net", "epoch", "best_metric_ema")


@dataclass
class Checkpoint:
    """A loaded checkpoint: the model with weights in place and the other entries."""

    model: nn.Module
    epoch: int
    best_metric_ema: float
    extra: dict[str, Any] = field(default_factory=dict)


def save_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module,
    epoch: int = 0,
    best_metric_ema: float = math.inf,
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Write ``{'net', 'epoch', 'best_metric_ema', **extra}`` (the released format when extra is
    empty). ``extra`` must not reuse the official keys and must hold weights_only-safe values."""
    clash = set(extra or {}) & set(OFFICIAL_KEYS)
    if clash:
        raise ValueError(f"extra must not contain the official keys {sorted(clash)}")
    payload = {
        "net": model.state_dict(),
        "epoch": int(epoch),
        "best_metric_ema": float(best_metric_ema),
    }
    payload.update(extra or {})
    torch.save(payload, os.fspath(path))


def _strip_module_prefix(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Drop a 'module.' prefix present on every key (checkpoints saved from DDP)."""
    if state and all(key.startswith("module.") for key in state):
        return {key[len("module.") :]: value for key, value in state.items()}
    return dict(state)


def first_mismatch(expected: Mapping[str, Tensor], found: Mapping[str, Tensor]) -> str | None:
    """Describe the first key (in the model's order) that is missing, has another shape, or is
    unexpected; None when keys and shapes agree."""
    for key, value in expected.items():
        if key not in found:
            return f"missing key {key!r}"
        if tuple(found[key].shape) != tuple(value.shape):
            return (
                f"key {key!r} has shape {tuple(found[key].shape)}, model has {tuple(value.shape)}"
            )
    for key in found:
        if key not in expected:
            return f"unexpected key {key!r}"
    return None


def _read(path: str | os.PathLike[str], map_location: str | torch.device) -> dict[str, Any]:
    """torch.load with weights_only=True; the top level must be a dict."""
    payload = torch.load(os.fspath(path), weights_only=True, map_location=map_location)
    if not isinstance(payload, dict):
        raise CheckpointError(path, f"expected a dict checkpoint, got {type(payload).__name__}")
    return payload


def load_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module | None = None,
    map_location: str | torch.device = "cpu",
    key: str = "net",
) -> Checkpoint:
    """Load a released or our checkpoint into ``model`` (a new BPNet if None), strict=True.

    A new BPNet takes the loaded tensors as they are (on ``map_location``, no copy).

    ``key`` picks the state dict inside the file ('net', or e.g. 'ema' in ours). Raises
    CheckpointError naming the first mismatching key.
    """
    payload = _read(path, map_location)
    if key not in payload or not isinstance(payload[key], Mapping):
        raise CheckpointError(path, f"no state dict under {key!r}; keys are {sorted(payload)}")
    fresh = model is None
    if model is None:
        with torch.device("meta"):  # no initialisation work: every tensor comes from the file
            model = BPNet()
    state = _strip_module_prefix(payload[key])
    problem = first_mismatch(model.state_dict(), state)
    if problem is not None:
        raise CheckpointError(path, f"does not match the model: {problem}")
    model.load_state_dict(state, strict=True, assign=fresh)
    extra = {name: value for name, value in payload.items() if name not in OFFICIAL_KEYS}
    epoch = int(payload.get("epoch", 0))
    return Checkpoint(model, epoch, float(payload.get("best_metric_ema", math.inf)), extra)
