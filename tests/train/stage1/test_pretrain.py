"""``dmd3c pretrain``: config resolution, the CLI, and a real BP-Net run on a tiny store."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from dmd3c.cli import app
from train.datasets.synthetic import write_synthetic_store
from train.engine import to_yaml
from train.model import BPNet, load_checkpoint
from train.stage1.config import PretrainConfig
from train.stage1.recipe import resolve_config

CONFIG = Path(__file__).resolve().parents[3] / "configs" / "pretrain.yaml"


def test_configs_pretrain_yaml_equals_the_defaults() -> None:
    documented = yaml.safe_load(CONFIG.read_text())
    defaults = yaml.safe_load(to_yaml(PretrainConfig()))
    defaults.pop("store")
    assert documented == defaults


def test_config_file_and_overrides(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("engine:\n  steps: 10\n  batch_size: 4\n")
    cfg = resolve_config("s.zarr", tmp_path / "run", tmp_path / "c.yaml",
                         ["engine.batch_size=2", "data.crop=[64,128]"], resume=False)
    assert (cfg.engine.steps, cfg.engine.batch_size, cfg.data.crop) == (10, 2, (64, 128))
    assert cfg.store == "s.zarr" and cfg.optim.weight_decay == 0.05
    with pytest.raises(FileNotFoundError, match="no such config file"):
        resolve_config("s", tmp_path, tmp_path / "missing.yaml", [], resume=False)


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["pretrain", "--store", str(tmp_path / "none.zarr"), "--out",
                                 str(tmp_path / "run")])
    assert isinstance(result.exception, ValueError)
    assert "no such store" in str(result.exception)
    store = tmp_path / "small.zarr"
    write_synthetic_store(store, 4, (48, 96), shard_size=4)
    result = runner.invoke(app, ["pretrain", "--store", str(store), "--out",
                                 str(tmp_path / "run"), "data.crop=[64,128]"])
    assert "crop 64x128 is larger than the store canvas 48x96" in str(result.exception)


def test_print_config(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["pretrain", "--store", "s.zarr", "--out", str(tmp_path),
                                      "--print-config", "engine.steps=7"])
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.output)["engine"]["steps"] == 7


@pytest.mark.slow  # real BP-Net (90M parameters) on CPU: ~30-60 s, minutes on a busy machine
def test_bpnet_three_step_run_through_the_cli(tmp_path: Path) -> None:
    store = tmp_path / "store.zarr"
    write_synthetic_store(store, 10, (64, 96), shard_size=5)
    run = tmp_path / "run"
    args = ["pretrain", "--store", str(store), "--out", str(run), "engine.steps=3",
            "engine.batch_size=1", "data.crop=[32,64]", "data.num_workers=0",
            "engine.log_every=1", "engine.val_every=0", "data.val_max_samples=1",
            "engine.image_every=3", "engine.progress=false", "optim.lr=1e-5"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "3 steps done" in result.output
    lines = (run / "train_log.jsonl").read_text().splitlines()
    assert len(lines) == 4  # 3 training steps + the final validation
    loaded = load_checkpoint(run / "last.pt")  # train.model's loader reads our format
    assert isinstance(loaded.model, BPNet) and loaded.extra["step"] == 3
    ema = loaded.extra["ema"]
    assert set(ema) == set(loaded.model.state_dict())
    name, weight = next(iter(loaded.model.named_parameters()))
    assert not torch.equal(weight, ema[name])
