"""``--resume`` refuses a last.pt it cannot continue from, in one line saying why."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from tiny import TinyNet

from data_schemas.errors import CheckpointError
from train.datasets.synthetic import write_synthetic_store
from train.engine.checkpoint import FORMAT
from train.model import save_checkpoint
from train.stage1.recipe import pretrain, resolve_config

FAST = ["engine.batch_size=2", "data.crop=[32,64]", "data.num_workers=0", "engine.steps=1",
        "engine.device=cpu", "engine.ema_decay=0.9", "engine.val_every=0",
        "engine.progress=false", "data.val_max_samples=2", "data.shuffle_shards=2"]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Any]]:
    """A store and the last.pt of a one-step run on it."""
    root = tmp_path_factory.mktemp("resume_refusals")
    store = str(root / "store.zarr")
    write_synthetic_store(store, 8, (40, 72), shard_size=4, seed=4)
    cfg = resolve_config(store, root / "run", None, FAST, False)
    pretrain(store, root / "run", cfg, build_model=TinyNet)
    return store, torch.load(root / "run" / "last.pt", weights_only=True)


def resume(store: str, run_dir: Path) -> None:
    cfg = resolve_config(store, run_dir, None, FAST, True)
    pretrain(store, run_dir, cfg, resume=True, build_model=TinyNet)


def refusal(store: str, run_dir: Path) -> str:
    with pytest.raises(CheckpointError) as info:
        resume(store, run_dir)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{run_dir / 'last.pt'}: ")
    return message.split(": ", 1)[1]


def write(run_dir: Path, payload: dict[str, Any]) -> None:
    run_dir.mkdir()
    torch.save(payload, run_dir / "last.pt")


def edited(payload: dict[str, Any], edit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    copy = dict(payload)
    edit(copy)
    return copy


def test_released_weights_cannot_resume_a_run(run, tmp_path: Path) -> None:
    store, _ = run
    (tmp_path / "run").mkdir()
    save_checkpoint(tmp_path / "run" / "last.pt", TinyNet())
    assert refusal(store, tmp_path / "run") == (
        "is not a dmd3c training checkpoint (no 'format' entry; keys: best_metric_ema, epoch, "
        "net), expected the last.pt of a dmd3c run: weights alone cannot resume a run; start a "
        "new one from them (finetune --init)")


def test_another_format_version_is_named(run, tmp_path: Path) -> None:
    store, payload = run
    write(tmp_path / "run", edited(payload, lambda p: p.update(format="dmd3c.train_checkpoint/9")))
    assert refusal(store, tmp_path / "run").startswith(
        f"has format 'dmd3c.train_checkpoint/9', expected {FORMAT!r}: written by another dmd3c "
        f"version")


def test_missing_entries_are_listed(run, tmp_path: Path) -> None:
    store, payload = run
    write(tmp_path / "run", edited(payload, lambda p: [p.pop("rng"), p.pop("optimizer")]))
    assert refusal(store, tmp_path / "run").startswith(
        "is a dmd3c training checkpoint without optimizer, rng, expected all of net, optimizer, "
        "scaler, sampler, rng, step: the file is incomplete")


@pytest.mark.parametrize("which", ["net", "ema"])
def test_weights_of_another_shape_name_the_key(run, tmp_path: Path, which: str) -> None:
    store, payload = run
    state = dict(payload[which], **{"conv2.weight": torch.zeros(6, 8, 5, 5)})
    write(tmp_path / "run", edited(payload, lambda p: p.update({which: state})))
    assert refusal(store, tmp_path / "run") == (
        f"does not match the model: key 'conv2.weight' has shape (6, 8, 5, 5), model has "
        f"(6, 8, 3, 3); expected the {len(TinyNet().state_dict())} tensors of TinyNet with the "
        f"same names and shapes: is it a checkpoint of another network?")
