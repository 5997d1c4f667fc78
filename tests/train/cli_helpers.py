"""Helpers of the training room's command-line tests: run ``dmd3c`` in-process, a stub net."""

from __future__ import annotations

import pytest
import torch

from dmd3c.cli import app, run_guarded


def run_cli(args: list[object], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``dmd3c ARGS`` as the console script runs it: (exit status, stdout, stderr)."""
    code = 0
    try:
        run_guarded(lambda: app([str(a) for a in args], standalone_mode=True))
    except SystemExit as done:
        code = int(done.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


class StubNet(torch.nn.Module):
    """Stands in for BP-Net in function tests: depth = 10 m + 2 x normalised red channel."""

    def forward(self, rgb: torch.Tensor, sparse: torch.Tensor,
                K: torch.Tensor) -> list[torch.Tensor]:
        return [10.0 + 2.0 * rgb[:, :1].clamp(-2, 2)] * 6
