"""The README's stage-2 command on the shared KITTI sample, run as written: the sample's
ground-truth frames without a velodyne_raw map are skipped with one warning naming them."""

from __future__ import annotations

import json
import logging
import shlex
from pathlib import Path

import pytest

from tests.train.cli_helpers import run_cli

README = Path(__file__).resolve().parents[3] / "README.md"
SAMPLE_ARG = "../shared/data/kitti_sample"
DRIVE = "2011_09_26_drive_0001_sync"


def readme_command() -> list[str]:
    """The one ``dmd3c finetune`` line of the README that runs on the sample."""
    lines = [line for line in README.read_text().splitlines()
             if line.startswith(f"dmd3c finetune --kitti {SAMPLE_ARG} ")]
    assert len(lines) == 1, lines
    return shlex.split(lines[0])[1:]


def with_paths(args: list[str], sample: Path, out: Path) -> list[str]:
    """``args`` with the sample's path and ``--out`` pointing at this machine's folders."""
    at = {name: args.index(name) + 1 for name in ("--kitti", "--out")}
    assert args[at["--kitti"]] == SAMPLE_ARG
    return [str(sample) if i == at["--kitti"] else str(out) if i == at["--out"] else a
            for i, a in enumerate(args)]


def unpaired_frames(sample: Path) -> list[str]:
    """Ground-truth frames of the sample without their velodyne_raw map, found on disk."""
    maps = sample / "raw" / "2011_09_26" / DRIVE / "proj_depth"
    return sorted(f"{DRIVE}/{gt.parent.name}/{gt.stem}"
                  for gt in maps.glob("groundtruth/image_0[23]/*.png")
                  if not (maps / "velodyne_raw" / gt.parent.name / gt.name).is_file())


def test_readme_stage2_command_runs_on_the_sample(
        kitti_sample: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    skipped = unpaired_frames(kitti_sample)
    assert skipped == [f"{DRIVE}/image_02/0000000050", f"{DRIVE}/image_02/0000000100"]
    out = tmp_path / "run"
    with caplog.at_level(logging.INFO):
        code, stdout, err = run_cli(with_paths(readme_command(), kitti_sample, out), capsys)
    assert code == 0, err
    assert stdout == f"dmd3c finetune: 2 steps done; checkpoint {out / 'last.pt'}\n"
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING
                and r.name == "train.datasets.kitti.layout"]
    assert len(warnings) == 1, warnings
    assert f"skipped {len(skipped)} groundtruth frame(s) without a velodyne_raw map" in \
        warnings[0] and warnings[0].endswith(", ".join(skipped))
    assert any("2 KITTI raw frames" in r.getMessage() for r in caplog.records)
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [line["step"] for line in log if "train/loss" in line] == [1, 2]
    assert [line["step"] for line in log if "val/rmse_mm" in line] == [2]
    assert (out / "best.pt").is_file() and (out / "last.pt").is_file()
