"""When the engine validates (the released schedule), run length in epochs, ``best.pt`` by a
fake metric sequence, and the optimizer's weight-decay groups."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from tiny import TinyNet
from torch import Tensor, nn

from train.datasets.sample import Batch
from train.engine import DistContext, EngineConfig, LossTerms, OptimConfig, Recipe, Trainer
from train.engine.config import ScheduleConfig
from train.engine.trainer import is_improvement, total_steps, validation_due

CPU = DistContext(0, 1, 0, torch.device("cpu"))


def release_validation_states(epochs: int, per_epoch: int, test_epoch: int,
                              test_iter: int) -> set[int]:
    """The release's ``main`` + ``train`` loops, transcribed: the optimizer-step counts at
    which ``test(run)`` sees the EMA model (before a step when ``iter % test_iter == 0`` from
    ``test_epoch`` on, and after each epoch)."""
    seen, iteration = set(), 0
    for epoch in range(epochs):
        for _ in range(per_epoch):
            if epoch >= test_epoch and iteration % test_iter == 0:
                seen.add(iteration)
            iteration += 1  # the step
        seen.add(iteration)
    return seen


@pytest.mark.parametrize(("epochs", "per_epoch", "test_epoch", "test_iter"),
                         [(30, 7, 25, 5), (6, 10, 2, 10), (4, 9, 1, 4), (3, 5, 3, 2)])
def test_validation_steps_equal_the_released_loop(epochs: int, per_epoch: int,
                                                  test_epoch: int, test_iter: int) -> None:
    cfg = EngineConfig(steps=0, epochs=epochs, val_every=test_iter, val_from_epoch=test_epoch,
                       val_each_epoch=True)
    total = total_steps(cfg, per_epoch)
    assert total == epochs * per_epoch
    cfg = EngineConfig(steps=total, val_every=test_iter, val_from_epoch=test_epoch,
                       val_each_epoch=True)
    ours = {s for s in range(1, total + 1) if validation_due(s, cfg, per_epoch)}
    assert ours == release_validation_states(epochs, per_epoch, test_epoch, test_iter)


def test_plain_schedule_and_its_errors() -> None:
    cfg = EngineConfig(steps=10, val_every=4)
    assert [s for s in range(1, 11) if validation_due(s, cfg, None)] == [4, 8, 10]
    assert [s for s in range(1, 11) if validation_due(s, EngineConfig(steps=10, val_every=0),
                                                      None)] == [10]
    with pytest.raises(ValueError, match="fixed epoch length"):
        validation_due(3, EngineConfig(steps=10, val_each_epoch=True), None)
    with pytest.raises(ValueError, match="engine.epochs needs a stream"):
        total_steps(EngineConfig(steps=0, epochs=3), None)
    assert total_steps(EngineConfig(steps=12, epochs=3), 5) == 12  # steps wins


def test_improvement_is_lower_and_never_nan() -> None:
    assert is_improvement(3.0, math.inf) and is_improvement(2.0, 3.0)
    assert not is_improvement(3.0, 3.0) and not is_improvement(4.0, 3.0)
    assert not is_improvement(math.nan, math.inf)


# -- a tiny recipe ----------------------------------------------------------------------------
def _batches(start: int) -> Iterator[Batch]:
    gen = torch.Generator().manual_seed(0)
    index = start
    while True:
        target = 5 + 10 * torch.rand(2, 1, 16, 16, generator=gen)
        yield Batch(rgb=torch.randn(2, 3, 16, 16, generator=gen), sparse=target * 0,
                    target=target, K=torch.eye(3).expand(2, 3, 3).clone(), keys=("a", "b"),
                    epoch=index // 4, index=index)
        index += 1


def _loss(model: nn.Module, batch: Batch) -> tuple[LossTerms, Tensor]:
    pred = model(batch.rgb, batch.sparse, batch.K)[-1]
    loss = (pred - batch.target).abs().mean()
    return LossTerms(loss, {}), pred


def _trainer(run: Path, metrics: list[float], engine: EngineConfig,
             optim: OptimConfig | None = None, resume: bool = False) -> Trainer[Batch]:
    calls = iter(metrics)

    def validate(model: nn.Module, ctx: DistContext) -> dict[str, float]:
        return {"val/rmse_mm": next(calls), "val/mae_mm": 1.0}

    recipe = Recipe(TinyNet, _loss, _batches, validate, steps_per_epoch=4,
                    best_metric="val/rmse_mm")
    run.mkdir(parents=True, exist_ok=True)
    return Trainer(recipe, engine, optim or OptimConfig(), ScheduleConfig(), run, CPU,
                   resume_from=run / "last.pt" if resume else None)


ENGINE = EngineConfig(steps=6, batch_size=2, device="cpu", ema_decay=0.5, val_every=1,
                      checkpoint_every=0, image_every=0, progress=False, log_every=1)


def test_best_pt_follows_a_fake_metric_sequence(tmp_path: Path) -> None:
    run = tmp_path / "run"
    state = _trainer(run, [5.0, 3.0, 4.0, math.nan, 2.0, 2.0], ENGINE).fit()
    assert state.best == 2.0
    best = torch.load(run / "best.pt", weights_only=True)
    assert best["step"] == 5 and best["best_metric_ema"] == 2.0  # first 2.0; ties do not move it
    assert torch.load(run / "last.pt", weights_only=True)["best_metric_ema"] == 2.0
    assert best["weights"] == "ema" and set(best["net"]) == set(TinyNet().state_dict())
    assert "optimizer" not in best  # weights only, in the released format


def test_a_best_pt_newer_than_last_pt_is_not_replaced_by_a_worse_value(tmp_path: Path) -> None:
    run = tmp_path / "run"
    _trainer(run, [3.0, 1.0], replace(ENGINE, steps=2, checkpoint_every=1)).fit()
    first = torch.load(run / "last.pt", weights_only=True)
    _trainer(run, [0.5], replace(ENGINE, steps=3), resume=True).fit()  # best.pt: 0.5 at step 3
    torch.save(first, run / "last.pt")  # as if the run had died before its next last.pt
    state = _trainer(run, [0.7], replace(ENGINE, steps=3), resume=True).fit()
    assert state.best == 0.5
    saved = torch.load(run / "best.pt", weights_only=True)
    assert (saved["step"], saved["best_metric_ema"]) == (3, 0.5)


@pytest.mark.parametrize(("later", "best_step", "best"),
                         [([1.5, 4.0, 2.0, 1.1], 2, 1.0), ([1.5, 0.5, 2.0, 0.25], 6, 0.25)])
def test_a_resumed_run_keeps_its_best(tmp_path: Path, later: list[float], best_step: int,
                                      best: float) -> None:
    run = tmp_path / "run"
    _trainer(run, [3.0, 1.0], replace(ENGINE, steps=2)).fit()
    state = _trainer(run, later, ENGINE, resume=True).fit()
    assert state.best == best
    saved = torch.load(run / "best.pt", weights_only=True)
    assert (saved["step"], saved["best_metric_ema"]) == (best_step, best)


@pytest.mark.parametrize("no_decay_1d", [True, False])
def test_optimizer_groups_follow_optim_no_decay_1d(tmp_path: Path, no_decay_1d: bool) -> None:
    trainer = _trainer(tmp_path, [], EngineConfig(steps=1, device="cpu", progress=False),
                       OptimConfig(weight_decay=0.05, no_decay_1d=no_decay_1d))
    names = {id(p): n for n, p in trainer.model.named_parameters()}
    groups = [(g["weight_decay"], sorted(names[id(p)] for p in g["params"]))
              for g in trainer.optimizer.param_groups]
    one_d = sorted(n for n, p in trainer.model.named_parameters() if p.dim() == 1)
    every = sorted(names.values())
    if no_decay_1d:
        assert groups == [(0.0, one_d), (0.05, sorted(set(every) - set(one_d)))]
    else:
        assert groups == [(0.05, every)]


def test_epochs_set_the_run_length(tmp_path: Path) -> None:
    engine = replace(ENGINE, steps=0, epochs=2, val_every=0, val_each_epoch=True)
    state = _trainer(tmp_path, [4.0, 3.0], engine).fit()
    assert state.step == 8 and state.best == 3.0
