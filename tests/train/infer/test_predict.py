"""Whole-frame inference: padding to multiples of 32, loading a checkpoint's weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from data_schemas.errors import InputError
from tests.train.cli_helpers import StubNet
from train.infer.predict import Padding, predict_depth


def test_padding_to_multiples_of_32_keeps_geometry() -> None:
    pad = Padding.for_size(375, 1242)
    assert (pad.top, pad.left, pad.right) == (9, 3, 3)
    rgb = np.zeros((375, 1242, 3), np.uint8)
    sparse = np.zeros((375, 1242), np.float32)
    sparse[200, 600] = 5.0
    depth = predict_depth(StubNet(), rgb, sparse, np.eye(3), torch.device("cpu"))
    assert depth.shape == (375, 1242)


class Seen(torch.nn.Module):
    """Returns the input it was given as its prediction, and remembers K."""

    def forward(self, rgb: torch.Tensor, sparse: torch.Tensor,
                K: torch.Tensor) -> list[torch.Tensor]:
        self.K = K
        return [sparse] * 6


def test_prediction_is_cropped_back_to_the_frame_and_k_follows_the_padding() -> None:
    sparse = np.zeros((40, 50), np.float32)
    sparse[3, 7] = 2.5
    net = Seen()
    K = np.array([[30.0, 0, 20.0], [0, 30.0, 10.0], [0, 0, 1]])
    depth = predict_depth(net, np.zeros((40, 50, 3), np.uint8), sparse, K, torch.device("cpu"))
    np.testing.assert_array_equal(depth, sparse)  # same pixel after padding and cropping
    pad = Padding.for_size(40, 50)
    np.testing.assert_allclose(net.K[0, :2, 2].numpy(), [20.0 + pad.left, 10.0 + pad.top])


def test_empty_sparse_input_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="sparse input is empty"):
        predict_depth(StubNet(), np.zeros((32, 32, 3), np.uint8), np.zeros((32, 32)), np.eye(3),
                      torch.device("cpu"))
