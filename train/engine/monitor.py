"""Rank-0 run monitoring: TensorBoard scalars and image panels, tqdm progress, a JSONL log."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from train.model.inputs import RGB_MEAN, RGB_STD

_STOPS = np.array([[0, 0, 4], [81, 18, 124], [183, 55, 121], [252, 137, 97], [252, 253, 191]],
                  np.float32)  # magma-like, dark = far


def colorize(depth: Tensor, max_depth: float) -> Tensor:
    """depth [H,W] m -> uint8 [3,H,W]; near is bright, far dark, 0 (no data) black."""
    inv = (1.0 / depth.clamp(min=1e-3)).cpu().float().numpy()
    scale = np.clip(inv / (1.0 / max(max_depth, 1e-3)) - 1.0, 0, None)
    t = np.clip(np.log1p(scale) / np.log1p(30.0), 0.0, 1.0) * (len(_STOPS) - 1)
    low = np.floor(t).astype(int).clip(0, len(_STOPS) - 2)
    color = _STOPS[low] + (t - low)[..., None] * (_STOPS[low + 1] - _STOPS[low])
    color[(depth <= 0).cpu().numpy()] = 0
    return torch.from_numpy(color.astype(np.uint8)).permute(2, 0, 1)


def panel(rgb: Tensor, sparse: Tensor, pred: Tensor, target: Tensor) -> Tensor:
    """First sample of a batch as one uint8 [3, 4H, W] image: rgb | sparse | prediction | target."""
    mean = torch.tensor(RGB_MEAN).view(3, 1, 1)
    std = torch.tensor(RGB_STD).view(3, 1, 1)
    image = (rgb[0].detach().float().cpu() * std + mean).clamp(0, 255).to(torch.uint8)
    top = float(target[0].max().clamp(min=1.0))
    sparse_big = torch.nn.functional.max_pool2d(sparse[0:1].detach().float(), 3, 1, 1)[0, 0]
    maps = [colorize(m, top) for m in (sparse_big, pred[0, 0].detach(), target[0, 0])]
    return torch.cat([image, *maps], dim=1)


class Monitor:
    """TensorBoard + tqdm + ``train_log.jsonl`` on the main rank; no-ops elsewhere."""

    def __init__(self, run_dir: Path, enabled: bool, total_steps: int, start_step: int,
                 progress: bool = True) -> None:
        self.enabled = enabled
        self.writer = None
        self.bar = None
        self._log = None
        if not enabled:
            return
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(run_dir / "tb"), purge_step=start_step or None)
        self._log = open(run_dir / "train_log.jsonl", "a")  # noqa: SIM115 (closed in close())
        self.bar = tqdm(total=total_steps, initial=start_step, unit="step", dynamic_ncols=True,
                        disable=not progress, desc="pretrain")

    def scalars(self, step: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        for name, value in values.items():
            self.writer.add_scalar(name, value, step)
        self._log.write(json.dumps({"step": step, "time": time.time(), **values}) + "\n")
        self._log.flush()

    def image(self, step: int, name: str, image: Tensor) -> None:
        if self.enabled:
            self.writer.add_image(name, image, step)

    def advance(self, postfix: dict[str, str]) -> None:
        if self.bar is not None:
            self.bar.set_postfix(postfix, refresh=False)
            self.bar.update(1)

    def write(self, line: str) -> None:
        if self.enabled:
            tqdm.write(line)

    def close(self) -> None:
        if not self.enabled:
            return
        self.bar.close()
        self.writer.close()
        self._log.close()
