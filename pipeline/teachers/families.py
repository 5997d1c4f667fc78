"""Per-family pre- and post-processing around a transformers depth model.

Every forward takes a :class:`Batch` (uint8 RGB plus the optional focal lengths and LiDAR
prompts) and returns the raw output at the input resolution, (B, H, W) float32: disparity for
relative Depth Anything, metres for the others. Each follows its official inference:

* Depth Anything V2 (relative and metric), ``infer_image``: OpenCV-cubic resize to the
  official network size (:mod:`.resize`), ImageNet normalisation, output resized back bilinear
  with ``align_corners=True``.
* Prompt Depth Anything, ``load_image`` + ``PromptDA.predict``: images whose longer side
  exceeds 1008 px are shrunk (``INTER_AREA``) to sides floored to multiples of 14, ImageNet
  normalisation, the depth prompt in metres (the model normalises it by its min/max). Our
  choices (no official recipe for sparse LiDAR): the prompt is the frame's LiDAR pooled to a
  coarse grid (:func:`pipeline.teachers.prompt.lidar_prompt`); the output, at the network
  size, is resized back like Depth Anything's.
* ZoeDepth, the transformers ``ZoeDepthImageProcessor`` steps with Intel's configs: reflect
  padding of ``int(sqrt(side / 2) * 3)`` px, resize keeping the aspect ratio (the side whose
  scale to 384 x 512 is closer to 1) to multiples of 32, bilinear ``align_corners=True``,
  mean = std = 0.5; the output bicubic back to the padded size, padding cropped. No flip
  averaging (the official ``infer_pil`` averages a mirrored pass: twice the cost).
* Depth Pro, ``DepthPro.infer``: mean = std = 0.5, bilinear resize to the square network size
  (1536 for the released model), canonical inverse depth resized back bilinear and scaled by
  ``W / f_px``, depth = 1 / clamp(inverse depth, 1e-4, 1e4). ``f_px`` is the caller's focal
  length when given (sampled in ``generate``, calibrated in ``teach``), else the model's FoV.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from data_schemas.errors import InputError
from pipeline.teachers.input_size import PATCH, official_network_size
from pipeline.teachers.prompt import lidar_prompt
from pipeline.teachers.resize import bilinear_corners, cubic_resize

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PROMPT_MAX_SIDE = 1008
"""Prompt Depth Anything's ``load_image(max_size=1008)``."""
ZOE_SIZE = (384, 512)
ZOE_MULTIPLE = 32
ZOE_PAD_FACTOR = 3


@dataclass(frozen=True)
class Batch:
    """One forward's inputs."""

    rgb: np.ndarray
    """(B, H, W, 3) uint8."""
    focal_px: np.ndarray | None = None
    """(B,) horizontal focal length (px) at the RGB's resolution, NaN = unknown (Depth Pro
    then uses its own field-of-view estimate for that image)."""
    prompt: np.ndarray | None = None
    """(B, H, W) float32 sparse metric depth (m, 0 = none) at the RGB's resolution."""


@dataclass(frozen=True)
class Runtime:
    """Where and how the model runs."""

    device: str
    dtype: torch.dtype
    input_size: int = 518
    """Depth Anything V2: shorter side of the network input (official rounding)."""
    prompt_cell: int = 8
    """Prompt Depth Anything: LiDAR pooled over cells of this many px per side."""


def _unit_rgb(rgb: np.ndarray, device: str) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> (B, 3, H, W) float32 in [0, 1]."""
    array = rgb if rgb.flags.writeable and rgb.flags.c_contiguous else np.array(rgb)
    return torch.from_numpy(array).to(device).permute(0, 3, 1, 2).float() / 255


def _normalise(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    m = torch.tensor(mean, device=x.device).view(1, 3, 1, 1)
    s = torch.tensor(std, device=x.device).view(1, 3, 1, 1)
    return (x - m) / s


def depth_anything(model: torch.nn.Module, batch: Batch, rt: Runtime) -> torch.Tensor:
    hw = batch.rgb.shape[1:3]
    x = cubic_resize(_unit_rgb(batch.rgb, rt.device), official_network_size(hw, rt.input_size))
    x = _normalise(x, IMAGENET_MEAN, IMAGENET_STD).to(rt.dtype)
    return bilinear_corners(model(pixel_values=x).predicted_depth.float(), hw)


def prompt_network_size(hw: tuple[int, int], max_side: int = PROMPT_MAX_SIDE) -> tuple[int, int]:
    """Official ``load_image``: sides floored to multiples of 14 when shrunk, else unchanged."""
    h, w = hw
    limit = max_side // PATCH * PATCH
    if max(h, w) <= limit:
        return h, w
    scale = limit / max(h, w)
    return int(h * scale // PATCH * PATCH), int(w * scale // PATCH * PATCH)


def _area_resize(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    images = [img.astype(np.float32) / 255 for img in rgb]
    if size != rgb.shape[1:3]:
        images = [cv2.resize(img, size[::-1], interpolation=cv2.INTER_AREA) for img in images]
    return np.stack(images)


def prompt_depth_anything(model: torch.nn.Module, batch: Batch, rt: Runtime) -> torch.Tensor:
    if batch.prompt is None:
        raise InputError("Prompt Depth Anything needs a depth prompt per image: pass "
                         "--teacher-prompt lidar (the KITTI LiDAR of each image)")
    hw = batch.rgb.shape[1:3]
    image = _area_resize(batch.rgb, prompt_network_size(hw))
    x = torch.from_numpy(image).to(rt.device).permute(0, 3, 1, 2)
    x = _normalise(x, IMAGENET_MEAN, IMAGENET_STD).to(rt.dtype)
    prompt = np.stack([lidar_prompt(p, rt.prompt_cell) for p in batch.prompt])
    prompt_t = torch.from_numpy(prompt)[:, None].to(rt.device, rt.dtype)
    out = model(pixel_values=x, prompt_depth=prompt_t).predicted_depth.float()
    return bilinear_corners(out, hw)


def _multiple_of(x: float, multiple: int) -> int:
    y = int(np.round(x / multiple) * multiple)
    return y if y > 0 else int(math.ceil(x / multiple) * multiple)


def zoedepth_network_size(hw: tuple[int, int]) -> tuple[int, int]:
    """Keep the aspect ratio, scaling as little as possible towards 384 x 512; multiples of 32."""
    h, w = hw
    scale_h, scale_w = ZOE_SIZE[0] / h, ZOE_SIZE[1] / w
    scale = scale_w if abs(1 - scale_w) < abs(1 - scale_h) else scale_h
    return _multiple_of(scale * h, ZOE_MULTIPLE), _multiple_of(scale * w, ZOE_MULTIPLE)


def zoedepth_pixels(rgb: np.ndarray, device: str) -> tuple[torch.Tensor, tuple[int, int]]:
    """(B, H, W, 3) uint8 -> (network input float32, (pad_h, pad_w)) as the ZoeDepth processor."""
    h, w = rgb.shape[1:3]
    ph, pw = int(math.sqrt(h / 2) * ZOE_PAD_FACTOR), int(math.sqrt(w / 2) * ZOE_PAD_FACTOR)
    x = F.pad(_unit_rgb(rgb, device), (pw, pw, ph, ph), mode="reflect")
    x = F.interpolate(x, zoedepth_network_size((x.shape[-2], x.shape[-1])), mode="bilinear",
                      align_corners=True)
    return _normalise(x, (0.5,) * 3, (0.5,) * 3), (ph, pw)


def zoedepth(model: torch.nn.Module, batch: Batch, rt: Runtime) -> torch.Tensor:
    h, w = batch.rgb.shape[1:3]
    x, (ph, pw) = zoedepth_pixels(batch.rgb, rt.device)
    out = model(pixel_values=x.to(rt.dtype)).predicted_depth.float()[:, None]
    out = F.interpolate(out, (h + 2 * ph, w + 2 * pw), mode="bicubic", align_corners=False)
    return out[:, 0, ph:ph + h, pw:pw + w]


def depth_pro_network_size(model: torch.nn.Module) -> int:
    """The square input of the patch encoder: ``patch_size / min(scaled_images_ratios)``."""
    config: object = getattr(model, "config", None)
    patch, ratios = getattr(config, "patch_size", 0), getattr(config, "scaled_images_ratios", ())
    return round(int(patch) / min(float(r) for r in ratios))


def depth_pro(model: torch.nn.Module, batch: Batch, rt: Runtime) -> torch.Tensor:
    h, w = batch.rgb.shape[1:3]
    size = depth_pro_network_size(model)
    x = _normalise(_unit_rgb(batch.rgb, rt.device), (0.5,) * 3, (0.5,) * 3)
    x = F.interpolate(x, (size, size), mode="bilinear", align_corners=False).to(rt.dtype)
    out = model(pixel_values=x)
    given = torch.full((len(x),), float("nan"), device=rt.device)
    if batch.focal_px is not None:
        given = torch.as_tensor(batch.focal_px, dtype=torch.float32, device=rt.device)
    focal = given
    if given.isnan().any():
        if out.field_of_view is None:
            raise InputError("this Depth Pro model has no field-of-view head: it needs the "
                             "focal length of every image")
        own = 0.5 * w / torch.tan(0.5 * torch.deg2rad(out.field_of_view.float().view(-1)))
        focal = torch.where(given.isnan(), own, given)
    inverse = F.interpolate(out.predicted_depth.float()[:, None], (h, w), mode="bilinear",
                            align_corners=False)[:, 0]
    depth: torch.Tensor = 1.0 / (inverse * (w / focal.view(-1, 1, 1))).clamp(1e-4, 1e4)
    return depth


Forward = Callable[[torch.nn.Module, Batch, Runtime], torch.Tensor]
FORWARDS: dict[str, Forward] = {"depth_anything": depth_anything,
                                "prompt_depth_anything": prompt_depth_anything,
                                "zoedepth": zoedepth, "depth_pro": depth_pro}
