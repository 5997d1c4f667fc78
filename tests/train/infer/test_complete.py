"""``complete``'s outputs beyond the 16-bit PNG ceiling and its colourised PNG's colour bar."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import Tensor, nn

from data_schemas.quicklook import BAR_HEIGHT_PX, colorize_depth, colour_bar
from tests.train.cli_helpers import run_cli
from train.infer.complete import CompletionInputs, complete_frame

CEILING_M = 65535 / 256  # the largest value of a uint16 PNG in metres x 256


class EchoNet(nn.Module):
    """Predicts its sparse input, so a test chooses the prediction pixel by pixel."""

    def forward(self, rgb: Tensor, sparse: Tensor, K: Tensor) -> list[Tensor]:
        return [sparse] * 6


def inputs(depth: np.ndarray) -> CompletionInputs:
    rgb = np.zeros((*depth.shape, 3), np.uint8)
    return CompletionInputs(rgb, depth.astype(np.float32), np.eye(3, dtype=np.float32))


def far_scene() -> np.ndarray:
    """40 x 96 m of road, a band of 300 m sky-line and one pixel just past the ceiling."""
    depth = np.full((40, 96), 20.0, np.float32)
    depth[:5] = 300.0
    depth[10, 10] = 256.5
    depth[10, 11] = 255.9  # under the ceiling: kept
    return depth


def complete(depth: np.ndarray, out: Path, max_depth_m: float | None = None) -> dict[str, Path]:
    return complete_frame(EchoNet(), inputs(depth), out, "frame", torch.device("cpu"),
                          max_depth_m=max_depth_m)


def test_depth_beyond_the_png_ceiling_is_counted_and_kept_in_the_npy(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    depth = far_scene()
    with caplog.at_level(logging.WARNING, logger="train.infer.complete"):
        paths = complete(depth, tmp_path)
    beyond = int((depth > CEILING_M).sum())
    assert beyond == 5 * 96 + 1
    assert [r.getMessage() for r in caplog.records] == [
        f"{paths['png']}: {beyond} of {depth.size} pixels ({100 * beyond / depth.size:.2f} %) "
        f"predicted beyond 255.996 m, the 16-bit PNG ceiling (65535 / 256), were clipped to it; "
        f"{paths['npy']} holds the untouched float values (up to 300.0 m)"]
    np.testing.assert_array_equal(np.load(paths["npy"]), depth)
    with Image.open(paths["png"]) as png:
        stored = np.asarray(png)
    np.testing.assert_array_equal(stored[depth > CEILING_M], 65535)
    assert stored[10, 11] == round(255.9 * 256) and stored[20, 20] == 20 * 256


def test_no_warning_under_the_ceiling(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    depth = np.minimum(far_scene(), 255.99)
    with caplog.at_level(logging.WARNING, logger="train.infer.complete"):
        complete(depth, tmp_path)
    assert caplog.records == []


@pytest.mark.parametrize("max_depth_m", [None, 50.0])
def test_colour_png_has_the_depth_colours_over_their_bar_in_metres(
        tmp_path: Path, max_depth_m: float | None) -> None:
    depth = far_scene()
    top = max_depth_m or float(np.percentile(depth, 99))  # every pixel is valid here
    with Image.open(complete(depth, tmp_path, max_depth_m)["color"]) as png:
        colour = np.asarray(png.convert("RGB"))
    assert colour.shape == (40 + BAR_HEIGHT_PX, 96, 3)
    np.testing.assert_array_equal(colour[:40], colorize_depth(depth, top))
    np.testing.assert_array_equal(colour[40:], colour_bar(96, top))  # inspect --png's bar
    labels = colour[40 + 16:]
    assert (labels.max(axis=-1) > 128).any()  # the tick labels are drawn under the strip


def test_help_states_the_ceiling(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["complete", "--help"], capsys)
    assert code == 0
    text = " ".join(out.split())  # the help is wrapped to the terminal
    assert "stops at 65535 / 256 = 255.996 m" in text and "the .npy keeps the float" in text
