"""The engine on a tiny store: a short run, checkpoints, exact resume, the stop guards."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import yaml
from tiny import TinyNet

from train.datasets import StoreIndex
from train.datasets.synthetic import write_synthetic_store
from train.engine import NonFiniteLossError, Trainer, TrainingError, init_distributed
from train.engine.config import load_structured
from train.model import load_checkpoint
from train.stage1.config import PretrainConfig
from train.stage1.recipe import build_recipe, pretrain, resolve_config

FAST = ["engine.batch_size=2", "data.crop=[32,64]", "data.num_workers=0", "engine.log_every=1",
        "engine.device=cpu", "engine.ema_decay=0.9", "data.val_max_samples=2",
        "engine.progress=false", "data.shuffle_shards=2"]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("engine") / "store.zarr"
    write_synthetic_store(path, 20, (48, 96), shard_size=6, seed=2)
    return str(path)


def config(*overrides: str) -> PretrainConfig:
    return load_structured(PretrainConfig, [], [*FAST, *overrides])


def train(store: str, run_dir: Path, *overrides: str, resume: bool = False):
    cfg = resolve_config(store, run_dir, None, [*FAST, *overrides], resume)
    return pretrain(store, run_dir, cfg, resume=resume, build_model=TinyNet)


def log_lines(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines()]


def test_three_step_run_logs_checkpoints_and_validates(store: str, tmp_path: Path) -> None:
    run = tmp_path / "run"
    state = train(store, run, "engine.steps=3", "engine.checkpoint_every=2",
                  "engine.keep_every=2", "engine.val_every=2", "engine.image_every=2")
    assert state.step == 3 and len(state.losses) == 3 and state.next_batch == 3
    payload = torch.load(run / "last.pt", weights_only=True)
    for key in ("net", "ema", "optimizer", "scheduler", "scaler", "rng", "sampler", "step",
                "config", "epoch"):
        assert key in payload, key
    assert payload["step"] == 3 and payload["sampler"]["next_batch"] == 3
    assert (run / "checkpoints" / "step-0000002.pt").is_file()
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["engine"]["steps"] == 3 and saved["data"]["crop"] == [32, 64]
    assert saved["store"] == store
    raw, ema = TinyNet(), TinyNet()
    load_checkpoint(run / "last.pt", raw)
    load_checkpoint(run / "last.pt", ema, key="ema")
    assert not torch.equal(raw.conv1.weight, ema.conv1.weight)
    lines = log_lines(run)
    assert [line["step"] for line in lines if "train/loss" in line] == [1, 2, 3]
    assert [line["step"] for line in lines if "val/rmse_mm" in line] == [2, 3]
    first = lines[0]
    for name in ("train/lr", "train/grad_norm", "train/samples_per_s", "train/loss_scale5"):
        assert name in first
    assert list((run / "tb").glob("events.out.tfevents.*"))


def test_resume_reproduces_the_uninterrupted_run(store: str, tmp_path: Path) -> None:
    full = tmp_path / "full"
    reference = train(store, full, "engine.steps=4", "engine.checkpoint_every=2",
                      "engine.keep_every=2", "engine.val_every=0")
    part = tmp_path / "part"
    part.mkdir()
    shutil.copy(full / "checkpoints" / "step-0000002.pt", part / "last.pt")
    resumed = train(store, part, "engine.steps=4", resume=True)
    assert resumed.step == 4
    assert resumed.losses == reference.losses[2:]  # bit-exact, not approximately
    a = torch.load(full / "last.pt", weights_only=True)
    b = torch.load(part / "last.pt", weights_only=True)
    for name in ("net", "ema"):
        for key, value in a[name].items():
            assert torch.equal(value, b[name][key]), (name, key)


def test_existing_run_needs_resume_and_resume_needs_a_run(store: str, tmp_path: Path) -> None:
    (tmp_path / "last.pt").write_bytes(b"")
    with pytest.raises(ValueError, match="already holds a run"):
        resolve_config(store, tmp_path, None, [], resume=False)
    with pytest.raises(FileNotFoundError, match="no checkpoint to resume from"):
        resolve_config(store, tmp_path / "fresh", None, [], resume=True)


def make_trainer(store: str, run: Path, cfg: PretrainConfig, loss_fn=None) -> Trainer:
    ctx = init_distributed("cpu")
    recipe = build_recipe(cfg, StoreIndex.open(store), ctx, TinyNet)
    if loss_fn is not None:
        recipe = replace(recipe, loss_fn=loss_fn(recipe.loss_fn))
    run.mkdir(parents=True, exist_ok=True)
    return Trainer(recipe, cfg.engine, cfg.optim, cfg.schedule, run, ctx)


def test_non_finite_loss_stops_with_step_and_keys(store: str, tmp_path: Path) -> None:
    def nan_at_second_step(inner):
        calls = []

        def loss_fn(model, batch):
            terms, pred = inner(model, batch)
            calls.append(1)
            if len(calls) == 2:
                terms = replace(terms, total=terms.total * float("nan"))
            return terms, pred
        return loss_fn

    cfg = config("engine.steps=5", "engine.checkpoint_every=1")
    trainer = make_trainer(store, tmp_path / "nan", cfg, nan_at_second_step)
    with pytest.raises(NonFiniteLossError,
                       match=r"non-finite loss \(nan\) at step 2 \(rank 0\), batch keys "
                             r"\['synthetic/.*\.png', 'synthetic/.*\.png'\]"):
        trainer.fit()
    assert torch.load(tmp_path / "nan" / "last.pt", weights_only=True)["step"] == 1


def test_out_of_memory_gives_a_hint(store: str, tmp_path: Path) -> None:
    def oom(inner):
        def loss_fn(model, batch):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return loss_fn

    trainer = make_trainer(store, tmp_path / "oom", config("engine.steps=2"), oom)
    with pytest.raises(TrainingError, match=r"out of memory at step 1 .*lower "
                                            r"engine.batch_size \(now 2\) or data.crop"):
        trainer.fit()


def test_bad_engine_settings_are_one_line_errors(store: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="engine.precision must be one of bf16, fp16, fp32"):
        make_trainer(store, tmp_path / "x", config("engine.precision=fp8"))
    with pytest.raises(ValueError, match="config: Key 'bogus' not in 'EngineConfig'"):
        config("engine.bogus=1")
    with pytest.raises(ValueError, match="could not be converted to Integer"):
        config("engine.steps=many")
