"""KITTI devkit and NYUv2 evaluation of a network (a stub stands in for BP-Net)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from data_schemas.errors import InputError
from tests.train.cli_helpers import StubNet
from tests.train.datasets.kitti.fixtures import SAMPLE, require_sample
from tests.train.datasets.nyu_fixtures import nyu_tree
from train.datasets.kitti.dataset import load_sample
from train.datasets.kitti.io import as_submitted
from train.datasets.kitti.layout import find_frames
from train.datasets.nyu import CROP_HW, find_nyu_files, load_nyu_sample
from train.infer.evaluate import evaluate_kitti, evaluate_nyu
from train.infer.predict import predict_depth
from train.metrics import kitti_metrics, nyu_metrics


def test_evaluate_kitti_scores_what_export_would_submit() -> None:
    require_sample()
    frames = find_frames(SAMPLE, "selval")[:1]
    report = evaluate_kitti(StubNet(), frames, torch.device("cpu"), beams=[64, 16])
    beams = report["beams"]
    assert isinstance(beams, dict) and set(beams) == {"64", "16"}
    sample = load_sample(frames[0])
    pred = predict_depth(StubNet(), sample.rgb, sample.sparse, sample.K, torch.device("cpu"))
    expected = kitti_metrics(as_submitted(pred), sample.target).leaderboard()["rmse_mm"]
    assert beams["64"]["rmse_mm"] == pytest.approx(expected)


def test_as_submitted_is_the_png_round_trip() -> None:
    depth = np.array([[0.0, 0.003, 10.004, 300.0]], np.float32)  # 0.768 and 2561.02 units
    np.testing.assert_array_equal(as_submitted(depth),
                                  np.array([[0.0, 1.0 / 256, 2561 / 256, 65535 / 256]],
                                           np.float32))


def test_evaluate_kitti_names_the_frame_of_an_empty_input(tmp_path: Path) -> None:
    require_sample()
    frames = find_frames(SAMPLE, "selval")[:1]
    with pytest.raises(InputError, match=f"frame {frames[0].name}: sparse input is empty"):
        evaluate_kitti(StubNet(), frames, torch.device("cpu"), crop=(1, 1))


def test_evaluate_nyu_averages_per_image_metrics(tmp_path: Path) -> None:
    pytest.importorskip("h5py", reason="h5py reads NYUv2 HDF5 files")
    files = find_nyu_files(nyu_tree(tmp_path / "nyu"), "val")

    class Four(torch.nn.Module):
        def forward(self, rgb: torch.Tensor, sparse: torch.Tensor,
                    K: torch.Tensor) -> list[torch.Tensor]:
            return [torch.full_like(sparse, 4.0)] * 6

    report = evaluate_nyu(Four(), files, torch.device("cpu"))
    expected = np.mean([nyu_metrics(np.full(CROP_HW, 4.0), load_nyu_sample(f).target).rmse
                        for f in files])
    metrics = report["metrics"]
    assert report["frames"] == 2 and isinstance(metrics, dict)
    assert metrics["rmse"] == pytest.approx(expected, rel=1e-5)
