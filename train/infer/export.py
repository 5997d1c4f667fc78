"""``dmd3c export``: KITTI benchmark submission files from a checkpoint.

For every frame of the split (normally ``test``: test_depth_completion_anonymous) the
prediction is written as ``OUT/<image file name>`` — a uint16 PNG, metres x 256, the name
of the input image (``0000000000.png`` ... as the server pairs them) — and all PNGs are
zipped flat (no folder inside the archive) into ``OUT/<zip_name>`` for upload.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from data_schemas.errors import InputError
from train.evaluate import predict_depth
from train.kitti.dataset import load_sample
from train.kitti.io import write_depth_png
from train.kitti.layout import KittiFrame
from train.model import BPNet

DEFAULT_ZIP = "kitti_depth_completion_submission.zip"


@dataclass(frozen=True)
class ExportSummary:
    out: Path
    pngs: int
    zip_path: Path


def export_frames(model: BPNet, frames: Sequence[KittiFrame], out: Path, device: torch.device,
                  zip_name: str = DEFAULT_ZIP, amp: bool = False,
                  progress: Callable[[str], None] | None = None) -> ExportSummary:
    """Predict every frame, write the benchmark PNGs into ``out`` and zip them."""
    names = [frame.image.name for frame in frames]
    if len(set(names)) != len(names):
        raise InputError("frames of this split share image file names; export the test or "
                         "selval split (flat folders)")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for i, frame in enumerate(frames):
        sample = load_sample(frame)
        try:
            depth = predict_depth(model, sample.rgb, sample.sparse, sample.K, device, amp)
        except ValueError as err:
            raise InputError(f"frame {frame.name}: {err}") from None
        path = out / frame.image.name
        write_depth_png(path, depth)
        written.append(path)
        if progress is not None:
            progress(f"{i + 1}/{len(frames)} {path.name}")
    zip_path = out / zip_name
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in written:
            archive.write(path, arcname=path.name)
    return ExportSummary(out, len(written), zip_path)
