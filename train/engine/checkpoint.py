"""Run-state checkpoints: atomic, ``weights_only``-loadable, readable by ``load_checkpoint``.

A checkpoint is the released BP-Net format (``net``, ``epoch``, ``best_metric_ema``) plus
``ema``, ``optimizer``, ``scheduler``, ``scaler``, ``rng`` (one entry per rank: python,
numpy, torch CPU and CUDA generators), ``sampler``, ``step`` and ``config`` (the resolved
YAML). So ``train.model.load_checkpoint(path)`` loads the raw weights and
``load_checkpoint(path, key="ema")`` the averaged ones. Files are read through
:func:`train.model.checkpoint.read_checkpoint`, the one checkpoint reader (it knows
nothing of the model unless asked to build one).
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from data_schemas.errors import CheckpointError, InputNotFoundError
from train.model.checkpoint import read_checkpoint

FORMAT = "dmd3c.train_checkpoint/1"


def capture_rng() -> dict[str, Any]:
    """This process's generator states, as weights_only-safe values."""
    np_state = np.random.get_state(legacy=False)
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {"key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
                  "pos": int(np_state["state"]["pos"]), "has_gauss": int(np_state["has_gauss"]),
                  "gauss": float(np_state["gauss"])},
        "torch": torch.get_rng_state(),
    }
    cuda_initialized = cast(Callable[[], bool], torch.cuda.is_initialized)
    if torch.cuda.is_available() and cuda_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np_state = state["numpy"]
    np.random.set_state({"bit_generator": "MT19937",
                         "state": {"key": np_state["key"].numpy().astype(np.uint32),
                                   "pos": np_state["pos"]},
                         "has_gauss": np_state["has_gauss"], "gauss": np_state["gauss"]})
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def atomic_save(payload: dict[str, Any], path: Path) -> None:
    """``torch.save`` to a temporary file in the same folder, fsync, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def make_payload(*, net: dict[str, torch.Tensor], step: int, epoch: int, **extra: Any,
                 ) -> dict[str, Any]:
    """The checkpoint dict: the released keys first, then ours (see module docstring)."""
    return {"net": net, "epoch": int(epoch), "best_metric_ema": math.inf, "format": FORMAT,
            "step": int(step), **extra}


def load_payload(path: Path) -> dict[str, Any]:
    """Read a training checkpoint (on CPU); a CheckpointError names what is wrong."""
    if not path.is_file():
        raise InputNotFoundError(f"{path}: no checkpoint to resume from")
    payload = read_checkpoint(path)
    if payload.get("format") != FORMAT:
        raise CheckpointError(path, f"not a dmd3c training checkpoint (format "
                                    f"{payload.get('format')!r})")
    return payload
