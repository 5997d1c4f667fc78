"""evaluate / export progress: a tqdm bar on stderr that moves once per frame and shows the
elapsed time and an ETA (it knows the total); stdout stays free for the results."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
import torch

from tests.train.cli_helpers import StubNet, run_cli
from tests.train.datasets.kitti.fixtures import SAMPLE, require_sample
from tests.train.datasets.nyu_fixtures import nyu_tree
from train.datasets.kitti.layout import find_frames
from train.datasets.nyu import find_nyu_files
from train.infer.evaluate import evaluate_kitti, evaluate_nyu
from train.infer.export import export_frames

CPU = torch.device("cpu")


class SlowStub(StubNet):
    """StubNet taking longer than tqdm's 0.1 s refresh interval per frame, so every frame's
    step of the bar is drawn."""

    def forward(self, rgb: torch.Tensor, sparse: torch.Tensor,
                K: torch.Tensor) -> list[torch.Tensor]:
        time.sleep(0.15)
        return super().forward(rgb, sparse, K)


def assert_bar_moves_per_frame(err: str, desc: str, total: int) -> None:
    states = re.findall(rf"{desc}:\s+\d+%\|[^|]*\| (\d+)/(\d+) \[(\d\d:\d\d)<(\d\d:\d\d|\?)",
                        err)
    drawn = [int(done) for done, *_ in states]  # the closing bar repeats the last state
    assert list(dict.fromkeys(drawn)) == list(range(total + 1)), err
    assert {int(of) for _, of, *_ in states} == {total}
    assert all(eta != "?" for *_, eta in states[1:])  # an ETA from the first frame on


def test_evaluate_bar(capsys: pytest.CaptureFixture[str]) -> None:
    require_sample()
    frames = find_frames(SAMPLE, "selval")
    evaluate_kitti(SlowStub(), frames, CPU, progress=True, crop=(64, 256))
    out, err = capsys.readouterr()
    assert out == ""
    assert_bar_moves_per_frame(err, "evaluate", len(frames))


def test_evaluate_bar_is_off_when_asked(capsys: pytest.CaptureFixture[str]) -> None:
    require_sample()
    evaluate_kitti(StubNet(), find_frames(SAMPLE, "selval"), CPU, crop=(64, 256))
    assert capsys.readouterr() == ("", "")


def test_export_bar(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    require_sample()
    frames = find_frames(SAMPLE, "selval")
    export_frames(SlowStub(), frames, tmp_path / "out", CPU, progress=True)
    out, err = capsys.readouterr()
    assert out == ""
    assert_bar_moves_per_frame(err, "export", len(frames))


def test_nyu_evaluate_bar(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("h5py", reason="h5py reads NYUv2 HDF5 files")
    files = find_nyu_files(nyu_tree(tmp_path / "nyu"), "val")
    evaluate_nyu(SlowStub(), files, CPU, progress=True)
    out, err = capsys.readouterr()
    assert out == ""
    assert_bar_moves_per_frame(err, "evaluate", len(files))


def test_json_stdout_is_only_the_report_when_frames_are_skipped(
        ckpt: Path, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    """``--split raw`` on the sample skips two unpaired frames with a warning (logging, which
    the command sends to stderr), not on stdout."""
    require_sample()
    code, out, err = run_cli(["evaluate", "--kitti", SAMPLE, "--split", "raw", "--ckpt", ckpt,
                              "--json", "--limit", "1", "--crop", "64,256", "--device", "cpu"],
                             capsys)
    assert code == 0, err
    assert json.loads(out)["frames"] == 1  # stdout parses whole: nothing but the report
    assert any("skipped 2 groundtruth frame(s) without a velodyne_raw map" in r.getMessage()
               for r in caplog.records)
    assert "%|" not in err  # no bar with --json
