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
import re
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


def mismatch_message(model: nn.Module, problem: str) -> str:
    """The refusal of a state dict that does not fit ``model`` (``problem``: see
    :func:`first_mismatch`)."""
    count = len(model.state_dict())
    return (f"does not match the model: {problem}; expected the {count} tensors of "
            f"{type(model).__name__} with the same names and shapes: is it a checkpoint of "
            f"another network?")


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
        raise CheckpointError(path, why_unreadable(path, err)) from None
    if not isinstance(payload, dict):
        raise CheckpointError(path, f"holds a {type(payload).__name__}, expected a dict of "
                                    f"state dicts ({{'net': ..., 'epoch': ...}}) as torch.save "
                                    f"of a BP-Net/DMD3C checkpoint writes")
    return payload


_ZIP_MAGIC = b"PK\x03\x04"
_REFUSED_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def why_unreadable(path: Path, err: BaseException) -> str:
    """Why ``torch.load(path, weights_only=True)`` failed with ``err``: what the file holds,
    what was expected and what to do, in one line (torch's own messages span paragraphs)."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(8)
    text = str(err)
    if size == 0:
        return ("is empty (0 bytes), expected a file written by torch.save: the save was "
                "interrupted; use an earlier checkpoint")
    if head.startswith(_ZIP_MAGIC) and "central directory" in text:
        return (f"is truncated or damaged ({size} bytes; the zip directory at its end is "
                f"missing), expected a complete torch.save file: the save or the copy was "
                f"interrupted; copy it again or use an earlier checkpoint")
    refused = _REFUSED_GLOBAL.search(text)
    if "Weights only load failed" in text and refused:
        return (f"holds a pickled Python object ({refused.group(1)}), expected only tensors "
                f"and plain containers: dmd3c loads checkpoints with weights_only=True and "
                f"never runs code from a file; where you trust it, re-save just the weights: "
                f"torch.save({{'net': model.state_dict()}}, path)")
    return (f"is not a PyTorch checkpoint ({_content_kind(head)}, {size} bytes), expected a "
            f"file written by torch.save")


def _content_kind(head: bytes) -> str:
    """What the first bytes of a file suggest it is."""
    if head.startswith(b"\x93NUMPY"):
        return "a NumPy .npy array"
    if head.startswith(_ZIP_MAGIC):
        return "a zip archive without torch's layout"
    if head[:1] == b"\x80":
        return "a plain Python pickle"
    return f"starts with {head!r}"


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
        raise CheckpointError(path, f"has no state dict under {key!r} (its keys: "
                                    f"{', '.join(map(str, sorted(payload)))}), expected one as in "
                                    f"released BP-Net/DMD3C files {{'net': ..., 'epoch': ...}}")
    fresh = model is None
    if model is None:
        with torch.device("meta"):  # no initialisation work: every tensor comes from the file
            model = BPNet()
    state = _strip_module_prefix(payload[key])
    problem = first_mismatch(model.state_dict(), state)
    if problem is not None:
        raise CheckpointError(path, mismatch_message(model, problem))
    model.load_state_dict(state, strict=True, assign=fresh)
    extra = {name: value for name, value in payload.items() if name not in OFFICIAL_KEYS}
    epoch = int(payload.get("epoch", 0))
    return Checkpoint(model, epoch, float(payload.get("best_metric_ema", math.inf)), extra)
