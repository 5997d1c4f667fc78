"""Fixtures of the training room's tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from train.model import BPNet, save_checkpoint


@pytest.fixture(scope="session")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised BP-Net in the released {'net', 'epoch', 'best_metric_ema'}
    format."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "bpnet.pt"
    save_checkpoint(path, BPNet())
    return path
