"""A resumed run's logs: ``train_log.jsonl`` and TensorBoard hold each step once.

A run killed after logging steps 5-6 but before writing the step-6 checkpoint resumes from
step 4; the steps 5-6 it logs again must replace the killed run's, not follow them.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tiny import TinyNet

from train.datasets.synthetic import write_synthetic_store
from train.engine.monitor import truncate_log
from train.stage1.recipe import pretrain, resolve_config

FAST = ["engine.batch_size=2", "data.crop=[32,64]", "data.num_workers=0", "engine.log_every=1",
        "engine.device=cpu", "engine.ema_decay=0", "engine.val_every=0", "engine.steps=6",
        "engine.checkpoint_every=2", "engine.keep_every=2", "engine.progress=false",
        "data.val_max_samples=2", "data.shuffle_shards=2"]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("resume_logs") / "store.zarr"
    write_synthetic_store(path, 12, (40, 72), shard_size=6, seed=3)
    return str(path)


def train(store: str, run_dir: Path, resume: bool = False) -> list[float]:
    cfg = resolve_config(store, run_dir, None, FAST, resume)
    return pretrain(store, run_dir, cfg, resume=resume, build_model=TinyNet).losses


def logged(run_dir: Path) -> list[tuple[int, float]]:
    lines = (run_dir / "train_log.jsonl").read_text().splitlines()
    return [(r["step"], r["train/loss"]) for r in map(json.loads, lines) if "train/loss" in r]


def tensorboard_steps(run_dir: Path, tag: str) -> list[int]:
    events = EventAccumulator(str(run_dir / "tb"))
    events.Reload()
    return [event.step for event in events.Scalars(tag)]


def killed_after_step_6_with_checkpoint_4(full: Path, killed: Path) -> None:
    """``killed``: the full run's logs (steps 1-6) beside its step-4 checkpoint as last.pt.
    Its event file is dated earlier, as the killed run started earlier (TensorBoard reads the
    files of a folder in name order)."""
    shutil.copytree(full, killed)
    shutil.copy(full / "checkpoints" / "step-0000004.pt", killed / "last.pt")
    for event_file in (killed / "tb").glob("events.out.tfevents.*"):
        parts = event_file.name.split(".")
        parts[3] = f"{int(time.time()) - 3600:010d}"
        event_file.rename(event_file.with_name(".".join(parts)))


def test_resume_logs_each_step_once_in_order(store: str, tmp_path: Path) -> None:
    full, killed = tmp_path / "full", tmp_path / "killed"
    losses = train(store, full)
    assert logged(full) == list(zip(range(1, 7), losses, strict=True))
    killed_after_step_6_with_checkpoint_4(full, killed)
    resumed = train(store, killed, resume=True)
    assert resumed == losses[4:]  # the resumed steps 5-6 (bit-exact resume)
    assert logged(killed) == logged(full)  # steps 1-4 of the killed run, 5-6 once
    assert tensorboard_steps(killed, "train/loss") == [1, 2, 3, 4, 5, 6]
    assert tensorboard_steps(killed, "train/lr") == [1, 2, 3, 4, 5, 6]


def test_truncate_log_keeps_steps_up_to_the_checkpoint(tmp_path: Path) -> None:
    log = tmp_path / "train_log.jsonl"
    records = [{"step": s, "train/loss": float(s)} for s in (1, 2, 2, 3, 4)]
    text = "".join(json.dumps(r) + "\n" for r in records)
    log.write_text(text + '{"step": 5, "train/lo')  # a line the killed run left half-written
    assert truncate_log(log, 2) == 3
    assert log.read_text() == "".join(json.dumps(r) + "\n" for r in records[:3])
    assert truncate_log(log, 2) == 0 and truncate_log(tmp_path / "none.jsonl", 2) == 0
    assert [p.name for p in tmp_path.iterdir()] == ["train_log.jsonl"]  # no temporary left
