"""Config values are checked when the config is resolved (``--print-config`` included),
before anything is written: one line quoting what was typed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.train.cli_helpers import run_cli
from train.datasets.synthetic import write_synthetic_store
from train.engine.checks import MIN_COARSEST_VALUES, coarsest_values, smallest_crops

BAD_VALUES = [
    ("optim.lr=-1", "optim.lr=-1: must be a finite number > 0"),
    ("optim.lr=nan", "optim.lr=nan: must be a finite number > 0"),
    ("engine.steps=-5", "engine.steps=-5: must be an integer >= 0"),
    ("engine.batch_size=0", "engine.batch_size=0: must be an integer >= 1"),
    ("data.crop=[50,100]", "data.crop=[50,100]: both sides must be positive multiples of 32"),
    ("engine.ema_decay=1.5", "engine.ema_decay=1.5: must be a finite number in [0, 1)"),
    ("schedule.pct_start=0", "schedule.pct_start=0: must be a finite number in (0, 1)"),
    ("data.num_workers=-1", "data.num_workers=-1: must be an integer >= 0"),
    ("loss.kind=l3", "loss.kind=l3: must be one of l1, l2, l1+l2"),
]


@pytest.mark.parametrize(("override", "message"), BAD_VALUES)
def test_pretrain_refuses_bad_values_before_printing_the_config(
        override: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    code, out, err = run_cli(["pretrain", "--store", "s.zarr", "--out", run, "--print-config",
                              override], capsys)
    assert (code, out) == (2, "")
    assert err == f"dmd3c: error: {message}" + err.split(message, 1)[1]
    assert len(err.strip().splitlines()) == 1 and "num_regions" not in err
    assert not run.exists()


def test_a_refused_run_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "s.zarr"
    write_synthetic_store(store, 4, (64, 128), shard_size=4)
    run = tmp_path / "run"
    for override in ("optim.lr=-1", "engine.batch_size=0"):
        code, _, err = run_cli(["pretrain", "--store", store, "--out", run, override], capsys)
        assert code == 2 and override in err and "-0.2" not in err, err
        assert not run.exists()


def test_a_crop_too_small_for_batchnorm_is_refused_with_the_smallest_that_trains(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["pretrain", "--store", "s.zarr", "--out", tmp_path / "run", "--print-config"]
    code, _, err = run_cli([*args, "data.crop=[32,64]", "engine.batch_size=1"], capsys)
    assert code == 2
    assert "data.crop=[32,64]: too small to train" in err
    assert "coarsest scale (1/32) is 1x2 pixels" in err and "2 value(s) per channel" in err
    assert "the smallest crops are [32,128] or [64,64]" in err
    assert "lower optim.lr" not in err
    # the same crop trains with 2 samples per rank (4 values), so it is accepted then
    code, out, err = run_cli([*args, "data.crop=[32,64]", "engine.batch_size=2"], capsys)
    assert code == 0, err
    code, _, err = run_cli(["finetune", "--out", tmp_path / "ft", "--print-config",
                            "data.crop=[32,96]", "engine.batch_size=1"], capsys)
    assert code == 2 and "data.crop=[32,96]: too small to train" in err


def test_the_crop_a_small_canvas_gives_is_refused_too(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "s.zarr"
    write_synthetic_store(store, 4, (48, 96), shard_size=4)  # default crop: 32x96
    code, _, err = run_cli(["pretrain", "--store", store, "--out", tmp_path / "run",
                            "engine.batch_size=1"], capsys)
    assert code == 2
    assert "the store canvas 48x96 gives 32x96, too small to train" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("batch", "height", "expected"), [
    (1, 32, ((32, 128), (64, 64))),
    (1, 64, ((64, 64), (64, 64))),
    (2, 32, ((32, 64), (32, 64))),
    (3, 32, ((32, 64), (32, 64))),
    (4, 32, ((32, 32), (32, 32))),
])
def test_smallest_crops_are_the_smallest_with_enough_values(batch: int, height: int,
                                                            expected: tuple) -> None:
    assert smallest_crops(batch, height) == expected
    for crop in expected:
        assert coarsest_values(crop, batch) >= MIN_COARSEST_VALUES
        # one 32-pixel step less in either side is too few
        for smaller in ((crop[0] - 32, crop[1]), (crop[0], crop[1] - 32)):
            assert min(smaller) == 0 or coarsest_values(smaller, batch) < MIN_COARSEST_VALUES
