"""The one sample type of every dataset, and the batch the data side hands to the engine.

A :class:`Sample` is one camera frame in pixels (numpy, what datasets read and augment);
a :class:`Batch` is a stack of them as tensors, rgb normalised the way BP-Net expects.
Stage 1 (sample store), KITTI and NYUv2 all produce the same two types.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import NamedTuple, Self

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from train.model.inputs import RGB_MEAN, RGB_STD


@dataclass(frozen=True)
class Sample:
    """One sample in camera pixels.

    rgb uint8 [H,W,3]; sparse and target float32 [H,W] depth in m (0 = no data): the LiDAR
    input and what the network is trained towards (the teacher's dense depth in stage 1,
    the sparse ground truth in stage 2); K float32 [3,3] pinhole intrinsics (OpenCV axes);
    key the stable sample id (store key, KITTI frame name, NYUv2 file); teacher float32
    [H,W] the raw teacher output in its own space (stage 2's SSI target, 0 = invalid) or
    None when the sample has none.
    """

    rgb: np.ndarray
    sparse: np.ndarray
    target: np.ndarray
    K: np.ndarray
    key: str
    teacher: np.ndarray | None = None

    @property
    def hw(self) -> tuple[int, int]:
        return int(self.rgb.shape[0]), int(self.rgb.shape[1])

    def with_pixels(self, op: Callable[[np.ndarray], np.ndarray], K: np.ndarray) -> Sample:
        """The sample with ``op`` (a crop, a flip) applied to rgb and every map, and new K."""
        teacher = None if self.teacher is None else op(self.teacher)
        return replace(self, rgb=op(self.rgb), sparse=op(self.sparse), target=op(self.target),
                       teacher=teacher, K=K)


class Item(NamedTuple):
    """What a map-style dataset returns for one sample of the stream: the (augmented) sample,
    its pending rgb colour offset [3] (applied in :func:`collate`), and the epoch and global
    batch number it was drawn for."""

    sample: Sample
    colour: np.ndarray
    epoch: int
    batch: int


@dataclass(frozen=True)
class Batch:
    """rgb [B,3,h,w] normalised; sparse/target [B,1,h,w] depth in m (0 = none); K [B,3,3] px;
    teacher [B,1,h,w] raw teacher output (0 = invalid) or None.

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
    teacher: Tensor | None = None

    @property
    def size(self) -> int:
        return int(self.rgb.shape[0])

    def map_tensors(self, fn: Callable[[Tensor], Tensor]) -> Self:
        """The batch with ``fn`` applied to every tensor (rgb, sparse, target, K, teacher)."""
        teacher = None if self.teacher is None else fn(self.teacher)
        return replace(self, rgb=fn(self.rgb), sparse=fn(self.sparse), target=fn(self.target),
                       K=fn(self.K), teacher=teacher)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Self:
        return self.map_tensors(lambda t: t.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> Self:
        return self.map_tensors(lambda t: t.pin_memory())


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
    std = np.asarray(RGB_STD, np.float32).reshape(1, 3, 1, 1)
    out *= 1.0 / std
    out -= np.asarray(RGB_MEAN, np.float32).reshape(1, 3, 1, 1) / std
    return out


def _stack_maps(samples: Sequence[Sample], name: str) -> np.ndarray:
    return np.stack([getattr(s, name) for s in samples])[:, None]


def _tensor(array: np.ndarray) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(array, np.float32))


def collate(samples: Sequence[Sample], offsets: Sequence[np.ndarray] | None = None,
            epoch: int = 0, index: int = 0) -> Batch:
    """Stack samples (with their rgb colour offsets, default none) into a Batch; ``teacher``
    is stacked when every sample has one, else None."""
    offsets = offsets if offsets is not None else [np.zeros(3, np.float32)] * len(samples)
    with_teacher = [s.teacher is not None for s in samples]
    if any(with_teacher) and not all(with_teacher):
        raise ValueError("a batch mixes samples with and without teacher maps")
    teacher = _tensor(_stack_maps(samples, "teacher")) if all(with_teacher) else None
    return Batch(rgb=_tensor(rgb_tensor([s.rgb for s in samples], offsets)),
                 sparse=_tensor(_stack_maps(samples, "sparse")),
                 target=_tensor(_stack_maps(samples, "target")),
                 K=_tensor(np.stack([s.K for s in samples])),
                 keys=tuple(s.key for s in samples), epoch=epoch, index=index, teacher=teacher)


def collate_items(items: Sequence[Item]) -> Batch:
    """The ``collate_fn`` of map-style datasets: their items of one batch -> a Batch."""
    return collate([i.sample for i in items], [i.colour for i in items], items[0].epoch,
                   items[0].batch)


def pad_batch(batch: Batch, hw: tuple[int, int]) -> Batch:
    """Zero-pad every map of a batch symmetrically to ``hw`` (rgb in normalised units, i.e.
    with the mean colour); the principal points move with the padding."""
    h, w = batch.sparse.shape[-2:]
    top, left = (hw[0] - h) // 2, (hw[1] - w) // 2
    if top < 0 or left < 0:
        raise ValueError(f"cannot pad a {h}x{w} batch to {hw[0]}x{hw[1]}")
    sides = (left, hw[1] - w - left, top, hw[0] - h - top)
    K = batch.K.clone()
    K[:, 0, 2] += left
    K[:, 1, 2] += top
    return replace(batch.map_tensors(lambda t: F.pad(t, sides) if t.dim() == 4 else t), K=K)
