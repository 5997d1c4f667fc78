"""The TensorBoard panel of a batch: rgb | sparse | prediction | target, one depth scale."""

from __future__ import annotations

import numpy as np
import torch

from data_schemas.quicklook import colorize_depth
from train.datasets.panel import batch_panel
from train.datasets.sample import Sample, collate


def test_panel_stacks_rgb_and_three_colourised_maps() -> None:
    rng = np.random.default_rng(0)
    target = rng.uniform(2.0, 40.0, (8, 12)).astype(np.float32)
    target[:2] = 0.0  # sky: no target
    sparse = np.zeros_like(target)
    sparse[5, 6] = 10.0
    rgb = rng.integers(0, 256, (8, 12, 3), dtype=np.uint8)
    batch = collate([Sample(rgb, sparse, target, np.eye(3, dtype=np.float32), "k")])
    pred = torch.from_numpy(target + 1.0)[None, None]
    panel = batch_panel(batch, pred)
    assert panel.dtype == torch.uint8 and panel.shape == (3, 32, 12)
    np.testing.assert_allclose(panel[:, :8].permute(1, 2, 0).numpy(), rgb, atol=1)
    top = float(target.max())
    expected_target = colorize_depth(target, top)
    np.testing.assert_array_equal(panel[:, 24:].permute(1, 2, 0).numpy(), expected_target)
    assert not panel[:, 24:26].any()  # no target: black
    sparse_rows = panel[:, 8:16].permute(1, 2, 0).numpy()
    assert sparse_rows[4:7, 5:8].any(axis=-1).all() and not sparse_rows[0, 0].any()
