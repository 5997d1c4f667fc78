"""``dmd3c export``: KITTI benchmark submission files from a checkpoint.

For every frame of the split (normally ``test``: test_depth_completion_anonymous) the
prediction is written as ``OUT/<image file name>`` — a uint16 PNG, metres x 256, the name
of the input image (``0000000000.png`` ... as the server pairs them) — and all PNGs are
zipped flat (no folder inside the archive) into ``OUT/<zip_name>`` for upload.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from data_schemas.errors import InputError
from train.datasets.kitti.dataset import load_sample
from train.datasets.kitti.io import write_depth_png
from train.datasets.kitti.layout import KittiFrame
from train.infer.predict import predict_depth

DEFAULT_ZIP = "kitti_depth_completion_submission.zip"


@dataclass(frozen=True)
class ExportSummary:
    """Where the PNGs went, how many, and the zip to upload."""

    out: Path
    pngs: int
    zip_path: Path


def export_frames(model: nn.Module, frames: Sequence[KittiFrame], out: Path,
                  device: torch.device, zip_name: str = DEFAULT_ZIP, amp: bool = False,
                  progress: bool = False) -> ExportSummary:
    """Predict every frame, write the benchmark PNGs into ``out`` and zip them (``progress``:
    a tqdm bar on stderr)."""
    names = [frame.image.name for frame in frames]
    if len(set(names)) != len(names):
        raise InputError("frames of this split share image file names; export the test or "
                         "selval split (flat folders)")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for frame in tqdm(frames, desc="export", unit="frame", disable=not progress):
        sample = load_sample(frame)
        try:
            depth = predict_depth(model, sample.rgb, sample.sparse, sample.K, device, amp)
        except InputError as err:
            raise InputError(f"frame {frame.name}: {err}") from None
        path = out / frame.image.name
        write_depth_png(path, depth)
        written.append(path)
    zip_path = out / zip_name
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in written:
            archive.write(path, arcname=path.name)
    return ExportSummary(out, len(written), zip_path)
