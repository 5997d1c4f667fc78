"""The one sample type of every dataset, and the batch the data side hands to the engine.

A :class:`Sample` is one camera frame in pixels (numpy, what datasets read and augment);
a :class:`Batch` is a stack of them as tensors, rgb normalised the way BP-Net expects.
Stage 1 (sample store), KITTI and NYUv2 all produce the same two types. Stage 1's stream
hands the engine raw batches (uint8 rgb, uint16 depth, pending colour offsets) that are
finished on the training device (:meth:`Batch.to`); stage 2's loaders finish theirs on the
CPU (:func:`collate`). Both run the same :meth:`Batch.finish`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import NamedTuple, Self

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from data_schemas.sample_schema import DEPTH_SCALE
from train.model.inputs import RGB_MEAN, RGB_STD


@dataclass(frozen=True)
class Sample:
    """One sample in camera pixels.

    rgb uint8 [H,W,3]; sparse and target [H,W] depth, float32 in m or uint16 in KITTI's
    stored units (m x 256, what the store and KITTI's PNGs hold), 0 = no data: the LiDAR
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

    A *raw* batch (``colour`` set, from :func:`stack`) still holds the pixels as the loader
    read them: rgb [B,h,w,3] in 0..255 (uint8, or float32 after whole-frame colour ops) with
    the pending colour offsets ``colour`` [B,3] (0..1 units), and sparse/target [B,1,h,w] in
    metres (float32) or in KITTI's stored units (uint16, m x 256). :meth:`finish` gives the
    form above in a few batched torch ops; :meth:`to` moves a raw batch first and finishes
    it on the device (the training step's GPU), so the loader never touches a float pixel.
    """

    rgb: Tensor
    sparse: Tensor
    target: Tensor
    K: Tensor
    keys: tuple[str, ...]
    epoch: int = 0
    index: int = 0
    teacher: Tensor | None = None
    colour: Tensor | None = None

    @property
    def size(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def raw(self) -> bool:
        return self.colour is not None

    def map_tensors(self, fn: Callable[[Tensor], Tensor]) -> Self:
        """The batch with ``fn`` applied to every tensor (rgb, sparse, target, K, teacher,
        pending colour offsets)."""
        teacher = None if self.teacher is None else fn(self.teacher)
        colour = None if self.colour is None else fn(self.colour)
        return replace(self, rgb=fn(self.rgb), sparse=fn(self.sparse), target=fn(self.target),
                       K=fn(self.K), teacher=teacher, colour=colour)

    def finish(self) -> Self:
        """The network's form of a raw batch (itself when already finished), where its
        tensors are: rgb jittered, clipped and normalised, depth in float32 metres."""
        if self.colour is None:
            return self
        return replace(self, rgb=normalise_rgb(self.rgb, self.colour),
                       sparse=depth_metres(self.sparse), target=depth_metres(self.target),
                       colour=None)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Self:
        """The batch on ``device``, finished there (see :meth:`finish`)."""
        return self.map_tensors(lambda t: t.to(device, non_blocking=non_blocking)).finish()

    def pin_memory(self) -> Self:
        return self.map_tensors(lambda t: t.pin_memory())


def normalise_rgb(rgb: Tensor, colour: Tensor) -> Tensor:
    """[B,h,w,3] rgb in 0..255 + colour offsets [B,3] (0..1 units) -> float32 [B,3,h,w]:
    offset added, clipped to [0, 255], normalised with BP-Net's statistics (float32, in this
    order: x + 255 offset, clip, x (1 / std), - mean / std)."""
    out = rgb.permute(0, 3, 1, 2).to(torch.float32, memory_format=torch.contiguous_format)
    out += (colour.to(torch.float32) * 255.0)[:, :, None, None]
    out.clamp_(0.0, 255.0)
    std = torch.tensor(RGB_STD, dtype=torch.float32, device=out.device)
    mean = torch.tensor(RGB_MEAN, dtype=torch.float32, device=out.device)
    out *= (1.0 / std)[None, :, None, None]
    out -= (mean / std)[None, :, None, None]
    return out


def depth_metres(depth: Tensor) -> Tensor:
    """Depth in float32 metres: uint16 maps are in KITTI's stored units (m x 256, exact)."""
    if depth.dtype == torch.uint16:
        return depth.to(torch.float32) / DEPTH_SCALE
    return depth


def stack_views(views: Sequence[np.ndarray]) -> np.ndarray:
    """``np.stack`` of equally shaped [H,W(,C)] views (crops, flips). A mirrored view (negative
    column stride, from :func:`~train.datasets.augment.hflip`) of uint8 / uint16 / float32 is
    copied by OpenCV's vectorised flip of its forward twin: numpy copies mirrored rgb 3 bytes
    at a time, ~50x slower than a plain crop (measured: 2.3 vs 0.05 ms per 256x1216 crop)."""
    out = np.empty((len(views), *views[0].shape), views[0].dtype)
    for slot, view in zip(out, views, strict=True):
        if view.shape != slot.shape:
            raise ValueError(f"cannot stack maps of shapes {view.shape} and {slot.shape}")
        if view.ndim >= 2 and view.strides[1] < 0 and view.dtype in _CV_FLIP_DTYPES:
            cv2.flip(view[:, ::-1], 1, dst=slot)
        else:
            slot[...] = view
    return out


_CV_FLIP_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32))


def _stack_maps(samples: Sequence[Sample], name: str) -> Tensor:
    maps = [getattr(s, name) for s in samples]
    if len({m.dtype for m in maps}) > 1:
        raise ValueError(f"a batch mixes {name} dtypes {sorted({str(m.dtype) for m in maps})}")
    return torch.from_numpy(stack_views(maps)).unsqueeze(1)


def stack(samples: Sequence[Sample], offsets: Sequence[np.ndarray] | None = None,
          epoch: int = 0, index: int = 0) -> Batch:
    """Stack samples (with their rgb colour offsets, default none) into a *raw* Batch (see
    :class:`Batch`; one copy of the pixels, dtypes kept); ``teacher`` is stacked when every
    sample has one, else None."""
    offsets = offsets if offsets is not None else [np.zeros(3, np.float32)] * len(samples)
    with_teacher = [s.teacher is not None for s in samples]
    if any(with_teacher) and not all(with_teacher):
        raise ValueError("a batch mixes samples with and without teacher maps")
    teacher = _stack_maps(samples, "teacher").float() if all(with_teacher) else None
    return Batch(rgb=torch.from_numpy(stack_views([s.rgb for s in samples])),
                 sparse=_stack_maps(samples, "sparse"), target=_stack_maps(samples, "target"),
                 K=torch.from_numpy(np.stack([s.K for s in samples]).astype(np.float32)),
                 keys=tuple(s.key for s in samples), epoch=epoch, index=index, teacher=teacher,
                 colour=torch.from_numpy(np.stack(offsets).astype(np.float32)))


def collate(samples: Sequence[Sample], offsets: Sequence[np.ndarray] | None = None,
            epoch: int = 0, index: int = 0) -> Batch:
    """:func:`stack`, finished where it runs (see :meth:`Batch.finish`)."""
    return stack(samples, offsets, epoch, index).finish()


def collate_items(items: Sequence[Item]) -> Batch:
    """The ``collate_fn`` of map-style datasets (stage 2: KITTI, NYUv2): their items of one
    batch -> a finished Batch (finished in the loader, on the CPU)."""
    return collate([i.sample for i in items], [i.colour for i in items], items[0].epoch,
                   items[0].batch)


def pad_batch(batch: Batch, hw: tuple[int, int]) -> Batch:
    """Zero-pad every map of a batch symmetrically to ``hw`` (rgb in normalised units, i.e.
    with the mean colour); the principal points move with the padding."""
    batch = batch.finish()
    h, w = batch.sparse.shape[-2:]
    top, left = (hw[0] - h) // 2, (hw[1] - w) // 2
    if top < 0 or left < 0:
        raise ValueError(f"cannot pad a {h}x{w} batch to {hw[0]}x{hw[1]}")
    sides = (left, hw[1] - w - left, top, hw[0] - h - top)
    K = batch.K.clone()
    K[:, 0, 2] += left
    K[:, 1, 2] += top
    return replace(batch.map_tensors(lambda t: F.pad(t, sides) if t.dim() == 4 else t), K=K)
