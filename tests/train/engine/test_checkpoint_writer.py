"""Checkpoints written off the training thread: snapshot, one write at a time, atomic, flushed
at the end, failures reported; and the weights-only file beside the resume state."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from data_schemas.errors import TrainingError
from train.engine import checkpoint as ckpt


class GatedSave:
    """Stands in for ``atomic_save``: each write waits for ``gate`` and records overlap."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.active = 0
        self.most_at_once = 0
        self.lock = threading.Lock()
        self.real = ckpt.atomic_save

    def __call__(self, payload: dict, path: Path) -> None:
        with self.lock:
            self.active += 1
            self.most_at_once = max(self.most_at_once, self.active)
        self.gate.wait(timeout=30)
        self.real(payload, path)
        with self.lock:
            self.active -= 1


def test_save_returns_before_the_write_and_writes_the_snapshot(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gated = GatedSave()
    monkeypatch.setattr(ckpt, "atomic_save", gated)
    weights = torch.arange(6.0)
    writer = ckpt.CheckpointWriter()
    writer.save(({"net": {"w": weights}, "step": 1}, [tmp_path / "last.pt"]))
    assert not (tmp_path / "last.pt").exists()  # still waiting: save did not block
    weights += 100  # training goes on changing the live tensors
    gated.gate.set()
    writer.close()
    saved = torch.load(tmp_path / "last.pt", weights_only=True)
    assert torch.equal(saved["net"]["w"], torch.arange(6.0)) and saved["step"] == 1


def test_the_same_weights_in_two_payloads_are_copied_once() -> None:
    model = torch.nn.Linear(3, 2)
    first, second = model.state_dict(), model.state_dict()  # new tensor objects, same memory
    copies = ckpt.snapshot([{"ema": first}, {"net": second}], {})
    assert copies[0]["ema"]["weight"] is copies[1]["net"]["weight"]
    assert copies[0]["ema"]["weight"].data_ptr() != model.weight.data_ptr()
    assert torch.equal(copies[0]["ema"]["weight"], model.weight)
    halves = ckpt.snapshot([model.weight[0], model.weight[1]], {})  # views of one storage
    assert torch.equal(halves[0], model.weight[0]) and torch.equal(halves[1], model.weight[1])


def test_one_write_at_a_time_and_a_save_waits_for_its_own_path(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gated = GatedSave()
    monkeypatch.setattr(ckpt, "atomic_save", gated)
    writer = ckpt.CheckpointWriter()
    writer.save(({"step": 1}, [tmp_path / "last.pt"]))
    writer.save(({"step": 1}, [tmp_path / "weights.pt"]))  # another path: queued, no wait
    done = threading.Event()

    def second_last() -> None:
        writer.save(({"step": 2}, [tmp_path / "last.pt"]))
        done.set()

    thread = threading.Thread(target=second_last)
    thread.start()
    assert not done.wait(0.5)  # the same path: waits for the first write of last.pt
    gated.gate.set()
    thread.join(30)
    writer.close()
    assert gated.most_at_once == 1
    assert torch.load(tmp_path / "last.pt", weights_only=True)["step"] == 2


def test_a_failed_write_is_reported_with_its_path(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    target = tmp_path / "file" / "last.pt"
    writer = ckpt.CheckpointWriter()
    writer.save(({"step": 1}, [target]))
    with pytest.raises(TrainingError, match=f"could not write checkpoint {target}: "):
        writer.close()


WRITER_SCRIPT = """
import sys, torch
from pathlib import Path
from train.engine.checkpoint import CheckpointWriter
writer = CheckpointWriter()
out = Path(sys.argv[1])
big = torch.zeros(8_000_000)
if sys.argv[2] == "exit":
    writer.save(({"net": {"w": big + 7}, "step": 7}, [out]))
    sys.exit(0)  # no close(): the write is flushed at interpreter exit
writer.save(({"net": {"w": big}, "step": 0}, [out])); writer.wait()
print("ready", flush=True)
step = 0
while True:
    step += 1
    writer.save(({"net": {"w": big + step}, "step": step}, [out]))
"""


def test_a_write_is_flushed_at_exit_and_a_killed_writer_leaves_a_whole_file(
        tmp_path: Path) -> None:
    out = tmp_path / "last.pt"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    subprocess.run([sys.executable, "-c", WRITER_SCRIPT, str(out), "exit"], check=True, env=env,
                   timeout=120)
    assert torch.load(out, weights_only=True)["step"] == 7
    out.unlink()
    proc = subprocess.Popen([sys.executable, "-c", WRITER_SCRIPT, str(out), "loop"], env=env,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        time.sleep(1.0)  # several 32 MB writes under way
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    saved = torch.load(out, weights_only=True)  # an old or a new file, never a partial one
    assert torch.equal(saved["net"]["w"], torch.full((8_000_000,), float(saved["step"])))
