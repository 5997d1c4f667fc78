"""Checkpoints: the released BP-Net/DMD3C format and ours; the one reader of both.

Released files are ``torch.save({'net': state_dict, 'epoch': int, 'best_metric_ema': float})``.
Ours are the same dict plus optional entries (e.g. ``'ema'``: a second state dict,
``'optimizer'``, ``'config'``), all plain tensors/containers so ``weights_only=True`` loads them.

:func:`read_checkpoint` is the only place a checkpoint file is read (the engine's resume,
inference and stage-2 ``--init`` all go through it), and :func:`pick_weights` the only place
that decides "the EMA weights when the file has them".
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

import torch
from torch import Tensor, nn

from data_schemas.errors import CheckpointError, ConfigError, InputNotFoundError
from train.model.bpnet import BPNet

OFFICIAL_KEYS = ("net", "epoch", "best_metric_ema")
WEIGHTS = ("auto", "ema", "net")
Weights = Literal["auto", "ema", "net"]
"""Which state dict of a file: ``net``, our ``ema``, or ``auto`` = ``ema`` when present."""


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


def read_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu",
                    mmap: bool = False) -> dict[str, Any]:
    """The top-level dict of a checkpoint file (``torch.load(weights_only=True)``).

    ``mmap=True`` maps the file instead of reading it (cheap when only the keys are needed;
    legacy non-zip files are read normally). A missing file is an InputNotFoundError, a file
    torch cannot read or whose top level is not a dict a CheckpointError.
    """
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"checkpoint not found: {path}")
    try:
        try:
            payload = torch.load(path, weights_only=True, map_location=map_location, mmap=mmap)
        except RuntimeError:
            if not mmap:
                raise
            payload = torch.load(path, weights_only=True, map_location=map_location)
    except Exception as err:  # torch raises several types for foreign or truncated files
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:120]
        raise CheckpointError(path, f"not a PyTorch checkpoint ({first})") from None
    if not isinstance(payload, dict):
        raise CheckpointError(path, f"expected a dict checkpoint, got {type(payload).__name__}")
    return payload


def parse_weights(weights: str) -> Weights:
    """``auto``, ``ema`` or ``net``; anything else is a ConfigError naming them."""
    if weights not in WEIGHTS:
        raise ConfigError(f"weights must be one of {', '.join(WEIGHTS)}; got {weights!r}")
    return cast(Weights, weights)


def pick_weights(payload: Mapping[str, Any], weights: str = "auto") -> str:
    """The key of the state dict to load: ``auto`` -> ``ema`` when the file has EMA weights
    (ours), else ``net`` (released files have only ``net``)."""
    if parse_weights(weights) != "auto":
        return weights
    return "ema" if isinstance(payload.get("ema"), Mapping) else "net"


def load_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module | None = None,
    map_location: str | torch.device = "cpu",
    key: str = "net",
) -> Checkpoint:
    """Load a released or our checkpoint into ``model`` (a new BPNet if None), strict=True.

    A new BPNet takes the loaded tensors as they are (on ``map_location``, no copy).

    ``key`` picks the state dict inside the file: ``net``, ``ema`` (ours) or ``auto``
    (:func:`pick_weights`). Raises CheckpointError naming the first mismatching key.
    """
    payload = read_checkpoint(path, map_location)
    if key in WEIGHTS:
        key = pick_weights(payload, key)
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
