"""A training batch: what the data side hands to the engine and the losses."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import Self

import numpy as np
import torch
from torch import Tensor

from train.data.augment import SampleView
from train.model.inputs import RGB_MEAN, RGB_STD


@dataclass(frozen=True)
class Batch:
    """rgb [B,3,h,w] normalised; sparse/target [B,1,h,w] depth in m (0 = none); K [B,3,3] px.

    ``index`` is the global batch number in the run's stream and ``epoch`` its epoch: the
    engine's sampler state.
    """

    rgb: Tensor
    sparse: Tensor
    target: Tensor
    K: Tensor
    keys: tuple[str, ...]
    epoch: int = 0
    index: int = 0

    @property
    def size(self) -> int:
        return int(self.rgb.shape[0])

    def _tensors(self) -> dict[str, Tensor]:
        """The tensor fields (subclasses may add more)."""
        found = {f.name: getattr(self, f.name) for f in fields(self)}
        return {name: value for name, value in found.items() if isinstance(value, Tensor)}

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Self:
        moved = {name: value.to(device, non_blocking=non_blocking)
                 for name, value in self._tensors().items()}
        return replace(self, **moved)

    def pin_memory(self) -> Self:
        return replace(self, **{name: value.pin_memory()
                                for name, value in self._tensors().items()})


def rgb_tensor(rgbs: Sequence[np.ndarray], offsets: Sequence[np.ndarray]) -> np.ndarray:
    """uint8 [h,w,3] images + colour offsets [3] (0..1 units) -> float32 [B,3,h,w],
    clipped to [0, 1] after the offset and normalised with BP-Net's statistics.

    numpy on purpose, in few passes: torch ops in DataLoader workers start torch's thread
    pools, and this runs once per sample in the workers.
    """
    chw = np.ascontiguousarray(np.stack(rgbs).transpose(0, 3, 1, 2))  # uint8 copy: cheap
    out = chw.astype(np.float32)
    shift = np.asarray(offsets, np.float32).reshape(len(rgbs), 3, 1, 1) * 255.0
    if shift.any():
        out += shift
        np.clip(out, 0.0, 255.0, out=out)
    out *= (1.0 / np.asarray(RGB_STD, np.float32)).reshape(1, 3, 1, 1)
    out -= (np.asarray(RGB_MEAN, np.float32) / np.asarray(RGB_STD, np.float32)).reshape(
        1, 3, 1, 1)
    return out


def collate(views: Sequence[SampleView], offsets: Sequence[np.ndarray] | None = None,
            epoch: int = 0, index: int = 0) -> Batch:
    """Stack augmented samples (with their rgb colour offsets, default none) into a Batch."""
    offsets = offsets if offsets is not None else [np.zeros(3, np.float32)] * len(views)
    rgb = rgb_tensor([v.rgb for v in views], offsets)
    sparse = np.stack([v.sparse for v in views])[:, None]
    target = np.stack([v.target for v in views])[:, None]
    K = np.stack([v.K for v in views])
    return Batch(*(torch.from_numpy(np.ascontiguousarray(a, np.float32))
                   for a in (rgb, sparse, target, K)),
                 tuple(v.key for v in views), epoch, index)
