"""Run-state checkpoints: atomic, written off the training thread, ``weights_only``-loadable,
readable by ``load_checkpoint``.

A checkpoint is the released BP-Net format (``net``, ``epoch``, ``best_metric_ema``) plus
``ema``, ``optimizer``, ``scheduler``, ``scaler``, ``rng`` (one entry per rank: python,
numpy, torch CPU and CUDA generators), ``sampler``, ``step`` and ``config`` (the resolved
YAML). So ``train.model.load_checkpoint(path)`` loads the raw weights and
``load_checkpoint(path, key="ema")`` the averaged ones. Files are read through
:func:`train.model.checkpoint.read_checkpoint`, the one checkpoint reader (it knows
nothing of the model unless asked to build one).

Beside the resume state (``last.pt``, ~1.4 GB for BP-Net with its EMA and AdamW state) a run
keeps ``weights.pt``: the released format ``{'net', 'epoch', 'best_metric_ema'}`` holding the
weights to use (the EMA when there is one; ``weights`` says which), ~0.36 GB, strict-loadable
into BPNet.

Writing: :class:`CheckpointWriter` snapshots the payload's tensors (a CPU copy, the only
part the training thread waits for), then a background thread ``torch.save``s it to a
temporary file beside the target, fsyncs and renames it over the target, so a reader never
sees a partial file. One write at a time: the next save first waits for the previous one;
:meth:`CheckpointWriter.close` flushes (the trainer calls it when the run ends, by error
too) and the thread is joined at interpreter exit.
"""

from __future__ import annotations

import math
import os
import random
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_all
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from data_schemas.errors import CheckpointError, InputNotFoundError, TrainingError
from train.model.checkpoint import read_checkpoint

FORMAT = "dmd3c.train_checkpoint/1"
RESUME_KEYS = ("net", "optimizer", "scaler", "sampler", "rng", "step")
"""The entries a resume reads (``ema`` too when the run has an EMA)."""


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


def snapshot(value: Any, memo: dict[tuple[Any, ...], torch.Tensor] | None = None) -> Any:
    """A copy of ``value`` whose tensors are CPU copies (containers rebuilt), so training
    may go on changing the originals while the copy is written. The same memory met twice
    (e.g. the EMA weights in ``last.pt`` and ``weights.pt``) is copied once (``memo``)."""
    memo = {} if memo is None else memo
    if isinstance(value, torch.Tensor):
        key = (value.untyped_storage().data_ptr(), value.storage_offset(), value.dtype,
               value.device, tuple(value.shape), tuple(value.stride()))
        if key not in memo:
            memo[key] = value.detach().to("cpu", copy=True)
        return memo[key]
    if isinstance(value, dict):
        return {key: snapshot(item, memo) for key, item in value.items()}
    if isinstance(value, list | tuple):
        items = [snapshot(item, memo) for item in value]
        return items if isinstance(value, list) else type(value)(items)
    return value


class CheckpointWriter:
    """Writes checkpoints in one background thread, in submission order: :meth:`save`
    returns once the payload is snapshot (see the module docstring). A save waits only for
    an earlier write to one of its own paths, so at most one copy per target is held."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoint")
        self._pending: list[tuple[frozenset[Path], Future[None]]] = []
        self._lock = threading.Lock()

    def save(self, *jobs: tuple[dict[str, Any], Sequence[Path]]) -> None:
        """Write each ``(payload, paths)`` job (the payload to every path, atomically, in
        order) in the background; the jobs' tensors are snapshot together (each once). A
        failed earlier write is raised here."""
        targets = [frozenset(paths) for _, paths in jobs]
        with self._lock:
            self._settle(lambda other: any(other & mine for mine in targets))
            memo: dict[tuple[Any, ...], torch.Tensor] = {}
            copies = [(snapshot(payload, memo), list(paths)) for payload, paths in jobs]
            for mine, (copy, paths) in zip(targets, copies, strict=True):
                self._pending.append((mine, self._pool.submit(_write_all, copy, paths)))

    def wait(self) -> None:
        """Block until every write is on disk (the first failure is raised here)."""
        with self._lock:
            self._settle(lambda other: True)

    def close(self) -> None:
        """Flush, then stop the thread."""
        try:
            self.wait()
        finally:
            self._pool.shutdown(wait=True)

    def _settle(self, blocking: Callable[[frozenset[Path]], bool]) -> None:
        """Wait for the writes ``blocking`` selects, forget every finished one, and raise the
        first failure among them."""
        chosen = [(t, f) for t, f in self._pending if blocking(t) or f.done()]
        self._pending = [item for item in self._pending if item not in chosen]
        wait_all([f for _, f in chosen])
        for _, future in chosen:
            future.result()


def _write_all(payload: dict[str, Any], paths: list[Path]) -> None:
    for path in paths:
        try:
            atomic_save(payload, path)
        except OSError as err:
            raise TrainingError(f"could not write checkpoint {path}: {err.strerror or err}; "
                                f"free space or choose another --out, then --resume") from err


def weights_payload(net: dict[str, torch.Tensor], which: str, step: int, epoch: int,
                    best_metric: float = math.inf) -> dict[str, Any]:
    """``weights.pt`` / ``best.pt``: the released keys (``net`` = the weights to use) plus
    ``weights`` ("ema" or "net": where they came from) and ``step``."""
    return {"net": net, "epoch": int(epoch), "best_metric_ema": float(best_metric),
            "weights": which, "step": int(step)}


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
    found = payload.get("format")
    if found is None:
        raise CheckpointError(path, f"is not a dmd3c training checkpoint (no 'format' entry; "
                                    f"keys: {', '.join(map(str, sorted(payload)))}), expected "
                                    f"the last.pt of a dmd3c run: weights alone cannot resume a "
                                    f"run; start a new one from them (finetune --init)")
    if found != FORMAT:
        raise CheckpointError(path, f"has format {found!r}, expected {FORMAT!r}: written by "
                                    f"another dmd3c version; resume with that version or start "
                                    f"a new run from its weights (finetune --init)")
    missing = [key for key in RESUME_KEYS if key not in payload]
    if missing:
        raise CheckpointError(path, f"is a dmd3c training checkpoint without "
                                    f"{', '.join(missing)}, expected all of "
                                    f"{', '.join(RESUME_KEYS)}: the file is incomplete; resume "
                                    f"from an earlier checkpoint (checkpoints/step-*.pt)")
    return payload
