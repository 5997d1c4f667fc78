"""``torchrun --nproc_per_node=2`` on CPU (gloo): two ranks, different samples, same weights."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tiny import TinyNet

from train.datasets.synthetic import write_synthetic_store

HERE = Path(__file__).resolve().parent
TORCHRUN = Path(sys.executable).parent / "torchrun"


@pytest.mark.slow
@pytest.mark.skipif(not TORCHRUN.exists(), reason=f"no torchrun next to {sys.executable}")
def test_torchrun_two_ranks_agree_on_the_weights(tmp_path: Path) -> None:
    store = tmp_path / "store.zarr"
    write_synthetic_store(store, 12, (48, 96), shard_size=6)
    out = tmp_path / "run"
    out.mkdir()
    cmd = [str(TORCHRUN), "--standalone", "--nproc_per_node=2", str(HERE / "ddp_main.py"),
           str(store), str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=240, cwd=HERE)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]
    assert all(r["world"] == 2 and len(r["keys"]) == 2 for r in ranks)  # 2 steps x 1 sample
    assert not set(ranks[0]["keys"]) & set(ranks[1]["keys"])
    assert ranks[0]["losses"] == ranks[1]["losses"]  # the logged loss is the all-rank mean
    weights = [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(2)]
    parameters = [name for name, _ in TinyNet().named_parameters()]
    for key in parameters:  # BN running stats stay per rank (DDP broadcasts rank 0's)
        assert torch.equal(weights[0][key], weights[1][key]), key
    assert (out / "last.pt").is_file()
