"""The training loop shared by pre-training and fine-tuning.

The engine knows nothing about depth: a :class:`~train.engine.recipe.Recipe` hands it a
model factory, a loss function ``loss_fn(model, batch) -> (LossTerms, prediction)``, a
stream factory ``make_batches(start_batch) -> iterable of batches``, and optionally
``validate(model, ctx) -> {name: value}`` and an image ``panel(batch, prediction)``. The
engine owns AdamW + the precomputed one-cycle schedule, clipping, EMA, autocast, DDP,
checkpoints/resume, the non-finite guard and the monitoring.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Generic, cast

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from data_schemas.errors import CheckpointError, ConfigError, TrainingError
from train.engine import checkpoint as ckpt
from train.engine.checks import check_engine
from train.engine.config import EngineConfig, OptimConfig, ScheduleConfig
from train.engine.distributed import DistContext, all_sum, barrier, gather_objects
from train.engine.ema import EMA
from train.engine.monitor import Monitor
from train.engine.param_groups import param_groups
from train.engine.recipe import B, Recipe
from train.engine.schedule import ScheduleTable, one_cycle
from train.model.checkpoint import first_mismatch, mismatch_message, read_checkpoint

logger = logging.getLogger(__name__)


class NonFiniteLossError(TrainingError):
    """The loss or the gradient norm became NaN/inf."""


@dataclass
class RunState:
    """Progress of a run: completed optimizer steps, the next batch of the stream, and the
    best value of the recipe's ``best_metric`` so far (inf before any validation)."""

    step: int = 0
    next_batch: int = 0
    epoch: int = 0
    losses: list[float] = field(default_factory=list)
    best: float = math.inf


class Trainer(Generic[B]):
    """One process of a (possibly DDP) training run; :meth:`fit` runs it to the end."""

    def __init__(self, recipe: Recipe[B], engine: EngineConfig, optim: OptimConfig,
                 schedule: ScheduleConfig, run_dir: Path, ctx: DistContext,
                 config_yaml: str = "", resume_from: Path | None = None) -> None:
        self.recipe, self.cfg, self.optim_cfg = recipe, engine, optim
        self.run_dir, self.ctx, self.config_yaml = run_dir, ctx, config_yaml
        self.per_rank_batch = check_engine(engine, ctx.world_size)
        self.cfg = engine = replace(engine, steps=total_steps(engine, recipe.steps_per_epoch))
        self.table: ScheduleTable = one_cycle(engine.steps, optim.lr, schedule)
        self.state = RunState()
        _seed_everything(engine.seed)
        self.model = self._build_model()
        self.ema = EMA(self.model, engine.ema_decay) if engine.ema_decay > 0 else None
        self.optimizer = torch.optim.AdamW(
            param_groups(self.model, optim.weight_decay, optim.no_decay_1d),
            lr=float(self.table.lr[0]), betas=optim.betas, eps=optim.eps,
            weight_decay=optim.weight_decay)
        self.scaler = torch.amp.GradScaler(ctx.device.type, enabled=self._fp16)
        payload = ckpt.load_payload(resume_from) if resume_from else None
        if payload is not None and resume_from is not None:
            self._load_state(payload, resume_from)
            self.state.best = min(self.state.best, _saved_best(run_dir / "best.pt"))
        self.net = self._wrap_ddp(self.model)
        _seed_everything(engine.seed + 1000 * ctx.rank + 1)
        self._resume_rng = payload["rng"] if payload is not None else None
        self._writer: ckpt.CheckpointWriter | None = None

    # -- set-up ---------------------------------------------------------------------------
    @property
    def _fp16(self) -> bool:
        return self.ctx.device.type == "cuda" and self.cfg.precision == "fp16"

    def _build_model(self) -> nn.Module:
        model = self.recipe.build_model()
        if self.cfg.sync_bn and self.ctx.distributed and self.ctx.device.type == "cuda":
            convert = cast(Callable[[nn.Module], nn.Module],
                           nn.SyncBatchNorm.convert_sync_batchnorm)
            model = convert(model)
        elif self.cfg.sync_bn and self.ctx.distributed and self.ctx.is_main:
            logger.warning("engine.sync_bn needs CUDA; BatchNorm stays per process")
        return model.to(self.ctx.device).train()

    def _wrap_ddp(self, model: nn.Module) -> nn.Module:
        if not self.ctx.distributed:
            return model
        ids = [self.ctx.device.index] if self.ctx.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids,
                                       find_unused_parameters=self.cfg.find_unused_parameters)

    def _load_state(self, payload: dict[str, Any], path: Path) -> None:
        _load_exactly(self.model, payload["net"], path)
        if self.ema is not None and payload.get("ema") is not None:
            _load_exactly(self.ema.module, payload["ema"], path)
        try:
            self.optimizer.load_state_dict(payload["optimizer"])
        except ValueError as err:
            raise CheckpointError(path, f"has optimizer state that does not fit this run's "
                                        f"parameters ({err}): was it written with another "
                                        f"model or optim settings?") from None
        self.scaler.load_state_dict(payload["scaler"])
        sampler = payload["sampler"]
        self.state = RunState(int(payload["step"]), int(sampler["next_batch"]),
                              int(sampler["epoch"]),
                              best=float(payload.get("best_metric_ema", math.inf)))

    def autocast(self) -> contextlib.AbstractContextManager[None]:
        """bf16/fp16 autocast on CUDA as configured; nothing on CPU."""
        if self.ctx.device.type != "cuda" or self.cfg.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.cfg.precision == "bf16" else torch.float16
        return torch.autocast("cuda", dtype=dtype)

    # -- the loop -------------------------------------------------------------------------
    def fit(self) -> RunState:
        """Train until ``engine.steps``; checkpoints, logs and validates on the way."""
        start = self.state.step
        monitor = Monitor(self.run_dir, self.ctx.is_main, self.cfg.steps, start,
                          self.cfg.progress)
        batches = iter(self.recipe.make_batches(self.state.next_batch))
        if self._resume_rng is not None:  # after the stream was created: exact continuation
            ckpt.restore_rng(self._resume_rng[min(self.ctx.rank, len(self._resume_rng) - 1)])
        try:
            self._loop(batches, monitor)
        finally:
            monitor.close()
            _close(batches)
            self.flush_checkpoints()
        return self.state

    def _loop(self, batches: Iterator[B], monitor: Monitor) -> None:
        meter = _Throughput()
        while self.state.step < self.cfg.steps:
            batch = next(batches).to(self.ctx.device, non_blocking=True)
            out, pred = self._guarded_step(batch)
            self.state.step += 1
            self.state.next_batch, self.state.epoch = batch.index + 1, batch.epoch
            self.state.losses.append(out["train/loss"])
            rate = meter.tick(batch.size * self.ctx.world_size)
            monitor.advance({"loss": f"{out['train/loss']:.4g}",
                             "lr": f"{out['train/lr']:.2e}", "samples/s": f"{rate:.3g}"})
            self._after_step(batch, pred, out | {"train/samples_per_s": rate}, monitor)

    def _after_step(self, batch: B, pred: Tensor, out: dict[str, float],
                    monitor: Monitor) -> None:
        step, cfg, last = self.state.step, self.cfg, self.state.step == self.cfg.steps
        if step % cfg.log_every == 0 or step == 1 or last:
            monitor.scalars(step, out)
        panel = self.recipe.panel
        if panel is not None and cfg.image_every and (step % cfg.image_every == 0 or step == 1):
            monitor.image(step, "train/panel", panel(batch, pred))
        if validation_due(step, cfg, self.recipe.steps_per_epoch):
            self._validate(monitor)
        if last or (cfg.checkpoint_every and step % cfg.checkpoint_every == 0):
            self.save_checkpoint()

    def _guarded_step(self, batch: B) -> tuple[dict[str, float], Tensor]:
        try:
            return self.train_step(batch)
        except torch.OutOfMemoryError as err:
            raise self._oom(err) from None
        except RuntimeError as err:
            if "can't allocate memory" in str(err) or "out of memory" in str(err):
                raise self._oom(err) from None
            raise

    def _oom(self, err: BaseException) -> TrainingError:
        where = f"{self.ctx.device} (rank {self.ctx.rank})"
        return TrainingError(f"out of memory at step {self.state.step + 1} on {where} with "
                             f"{self.per_rank_batch} samples per rank: {self.recipe.oom_hint}; "
                             f"({str(err).splitlines()[0][:120]})")

    def train_step(self, batch: B) -> tuple[dict[str, float], Tensor]:
        """One optimizer step on ``batch``; returns the logged scalars and the prediction."""
        lr, beta1 = self._apply_schedule(self.state.step)
        with self.autocast():
            terms, pred = self.recipe.loss_fn(self.net, batch)
        mean_loss = self._check_finite(terms.total, batch)
        self.optimizer.zero_grad(set_to_none=True)
        torch.autograd.backward(self.scaler.scale(terms.total))
        self.scaler.unscale_(self.optimizer)
        grad_norm = self._clip()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.ema is not None:
            self.ema.update(self.model)
        scalars = {f"train/loss_{k}": float(v) for k, v in terms.scalars.items() if k != "total"}
        return {"train/loss": mean_loss, "train/lr": lr, "train/beta1": beta1,
                "train/grad_norm": grad_norm, **scalars}, pred.detach()

    def _apply_schedule(self, step: int) -> tuple[float, float]:
        lr = float(self.table.lr[step])
        beta1 = float(self.table.beta1[step])
        for group in self.optimizer.param_groups:
            group["lr"] = lr
            if not math.isnan(beta1):
                group["betas"] = (beta1, group["betas"][1])
        return lr, float(self.optimizer.param_groups[0]["betas"][0])

    def _check_finite(self, loss: Tensor, batch: B) -> float:
        """Mean loss over ranks; every rank stops together when any rank's loss is not finite."""
        local_bad = not bool(torch.isfinite(loss.detach()))
        stats = torch.stack([torch.nan_to_num(loss.detach().float(), 0.0, 0.0, 0.0),
                             loss.new_tensor(float(local_bad), dtype=torch.float32)])
        total = all_sum(self.ctx, stats).tolist()
        if total[1] > 0:
            where = (f"batch keys {list(batch.keys)}" if local_bad else
                     "on another rank (see its message)")
            raise NonFiniteLossError(
                f"non-finite loss ({float(loss.detach()):g}) at step {self.state.step + 1} "
                f"(rank {self.ctx.rank}), {where}; {_recent(self.state.losses)}: a loss that "
                f"was growing means the run diverged (lower optim.lr), a steady one points at "
                f"these samples; then resume from the last checkpoint")
        return float(total[0]) / self.ctx.world_size

    def _clip(self) -> float:
        """Global gradient norm (before clipping), then clip to ``optim.grad_clip``."""
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        norm = torch.nn.utils.get_total_norm(grads)
        if not math.isfinite(float(norm)) and not self._fp16:  # fp16: the scaler skips
            raise NonFiniteLossError(self._gradient_report())
        max_norm = self.optim_cfg.grad_clip if self.optim_cfg.grad_clip > 0 else math.inf
        torch.nn.utils.clip_grads_with_norm_(self.model.parameters(), max_norm, norm)
        return float(norm)

    def _gradient_report(self) -> str:
        """Why the gradient norm is not finite, named by parameter (the loss was finite)."""
        named = [(n, p.grad) for n, p in self.model.named_parameters() if p.grad is not None]
        bad = [n for n, g in named if not bool(torch.isfinite(g).all())]
        step = f"at step {self.state.step + 1} (rank {self.ctx.rank}) with a finite loss"
        if bad:
            return (f"non-finite gradient {step}: the backward pass produced NaN/inf in "
                    f"{len(bad)} parameter(s), first {bad[0]}; the model's backward, not the "
                    f"data or optim.lr, is the cause")
        peak, name = max((float(g.abs().max()), n) for n, g in named)
        return (f"gradient norm overflows float32 {step}: exploding gradients, up to "
                f"{peak:.3g} (in {name}); {_recent(self.state.losses)}. The data is not the "
                f"cause (the loss is finite); the model's gradients are")

    # -- validation and checkpoints ---------------------------------------------------------
    def _validate(self, monitor: Monitor) -> None:
        if self.recipe.validate is None:
            return
        model = self.ema.module if self.ema is not None else self.model
        model.eval()
        with torch.no_grad(), self.autocast():
            metrics = self.recipe.validate(model, self.ctx)
        if self.ema is None:
            self.model.train()
        monitor.scalars(self.state.step, metrics)
        shown = ", ".join(f"{k.split('/')[-1]} {v:.1f}" for k, v in metrics.items())
        monitor.write(f"step {self.state.step}: validation ({'EMA' if self.ema else 'model'}) "
                      f"{shown}")
        self._keep_best(metrics, monitor)

    def _keep_best(self, metrics: dict[str, float], monitor: Monitor) -> None:
        """Write ``best.pt`` (the weights to use, released format) when the recipe's
        ``best_metric`` beats the best so far."""
        name = self.recipe.best_metric
        if name is None or name not in metrics:
            return
        if is_improvement(metrics[name], self.state.best):
            self.state.best = metrics[name]
            self.save_weights("best.pt", self.state.best)
            monitor.write(f"step {self.state.step}: best {name} {metrics[name]:.4g} -> best.pt")

    def checkpoint_payload(self) -> dict[str, Any]:
        rng = gather_objects(self.ctx, ckpt.capture_rng())
        return ckpt.make_payload(
            net=self.model.state_dict(), step=self.state.step, epoch=self.state.epoch,
            ema=self.ema.module.state_dict() if self.ema is not None else None,
            optimizer=self.optimizer.state_dict(), scaler=self.scaler.state_dict(),
            scheduler={"kind": "one_cycle_table", "step": self.state.step,
                       "total_steps": self.cfg.steps},
            sampler={"next_batch": self.state.next_batch, "epoch": self.state.epoch},
            rng=rng, world_size=self.ctx.world_size, config=self.config_yaml,
            best_metric_ema=self.state.best)

    def save_checkpoint(self) -> None:
        """Write ``last.pt`` (and a kept copy every ``keep_every`` steps) and ``weights.pt``
        atomically from rank 0, in the background (:class:`~train.engine.checkpoint.
        CheckpointWriter`): training waits only for a CPU copy of the state."""
        payload = self.checkpoint_payload()  # collective: every rank takes part
        if self.ctx.is_main:
            paths = [self.run_dir / "last.pt"]
            keep = self.cfg.keep_every
            if keep and self.state.step % keep == 0:
                paths.append(self.run_dir / "checkpoints" / f"step-{self.state.step:07d}.pt")
            jobs = [(payload, paths)]
            if self.cfg.save_weights:
                jobs.append((self.weights_payload(), [self.run_dir / "weights.pt"]))
            self.writer.save(*jobs)
        barrier(self.ctx)

    def weights_payload(self, best_metric: float = math.inf) -> dict[str, Any]:
        """The weights to use (the EMA when there is one) in the released format."""
        module = self.ema.module if self.ema is not None else self.model
        return ckpt.weights_payload(module.state_dict(), "ema" if self.ema else "net",
                                    self.state.step, self.state.epoch, best_metric)

    def save_weights(self, name: str, best_metric: float = math.inf) -> Path:
        """Write ``run_dir/name`` in the released format (``{'net', 'epoch',
        'best_metric_ema'}``; the EMA weights when there is an EMA) in the background, from
        rank 0 (other ranks: nothing). E.g. ``best.pt`` after a best validation."""
        path = self.run_dir / name
        if self.ctx.is_main:
            self.writer.save((self.weights_payload(best_metric), [path]))
        return path

    @property
    def writer(self) -> ckpt.CheckpointWriter:
        if self._writer is None:
            self._writer = ckpt.CheckpointWriter()
        return self._writer

    def flush_checkpoints(self) -> None:
        """Wait until every checkpoint write is on disk (run at the end of :meth:`fit`,
        also when it stops on an error)."""
        if self._writer is not None:
            writer, self._writer = self._writer, None
            writer.close()


def _recent(losses: list[float], count: int = 3) -> str:
    if not losses:
        return "no earlier step"
    shown = ", ".join(f"{v:.4g}" for v in losses[-count:])
    return f"the loss of the last {min(count, len(losses))} step(s): {shown}"


def total_steps(cfg: EngineConfig, steps_per_epoch: int | None) -> int:
    """The run's optimizer steps: ``engine.steps``, or ``engine.epochs`` x the stream's
    batches per epoch when ``steps`` is 0."""
    if cfg.steps > 0:
        return cfg.steps
    if steps_per_epoch is None:
        raise ConfigError("engine.epochs needs a stream with a fixed epoch length; this stage "
                          "has none: set engine.steps")
    return cfg.epochs * steps_per_epoch


def validation_due(step: int, cfg: EngineConfig, steps_per_epoch: int | None) -> bool:
    """Whether to validate after optimizer step ``step`` (1-based): at the last step; at each
    epoch's end (``val_each_epoch``); every ``val_every`` steps once the next step belongs to
    epoch ``val_from_epoch`` or later (the release tests before iteration ``step`` when
    ``step % test_iter == 0`` and ``epoch >= test_epoch``)."""
    if step == cfg.steps:
        return True
    needs_epochs = cfg.val_each_epoch or cfg.val_from_epoch > 0
    if needs_epochs and not steps_per_epoch:
        raise ConfigError("engine.val_each_epoch / engine.val_from_epoch need a stream with a "
                          "fixed epoch length; this stage has none")
    if cfg.val_each_epoch and steps_per_epoch and step % steps_per_epoch == 0:
        return True
    if not cfg.val_every or step % cfg.val_every:
        return False
    return not cfg.val_from_epoch or step // (steps_per_epoch or 1) >= cfg.val_from_epoch


def is_improvement(value: float, best: float) -> bool:
    """Lower is better; a NaN value never improves (and never replaces a finite best)."""
    return not math.isnan(value) and value < best


class _Throughput:
    """Samples per second between consecutive steps (smoothed)."""

    def __init__(self) -> None:
        self.last = time.perf_counter()
        self.rate = 0.0

    def tick(self, samples: int) -> float:
        now = time.perf_counter()
        current = samples / max(now - self.last, 1e-9)
        self.last = now
        self.rate = current if self.rate == 0 else 0.9 * self.rate + 0.1 * current
        return self.rate


def _saved_best(path: Path) -> float:
    """The ``best_metric_ema`` of an existing ``best.pt`` (it may be newer than the last.pt a
    run resumes from), else inf."""
    if not path.is_file():
        return math.inf
    return float(read_checkpoint(path, mmap=True).get("best_metric_ema", math.inf))


def _load_exactly(module: nn.Module, state: dict[str, Tensor], path: Path) -> None:
    """``module.load_state_dict(state)`` (strict); a CheckpointError naming the first
    mismatching key when the names or shapes differ."""
    problem = first_mismatch(module.state_dict(), state)
    if problem is not None:
        raise CheckpointError(path, mismatch_message(module, problem))
    module.load_state_dict(state)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _close(batches: Iterator[object]) -> None:
    """Stop DataLoader workers. torch 2.13's spawned workers that still hold large shared
    tensors may die with SIGABRT ("terminate called without an active exception") while
    being shut down; the run is over by then, so that is not an error."""
    shutdown = getattr(batches, "_shutdown_workers", None)
    if shutdown is None:
        return
    try:
        shutdown()
    except RuntimeError as err:
        if "killed by signal" not in str(err):
            raise
