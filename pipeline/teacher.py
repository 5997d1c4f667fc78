"""Monocular depth teachers: what ``generate`` and ``teach`` run on images.

A teacher is a transformers ``AutoModelForDepthEstimation`` model of a supported family
(Depth Anything V2 relative / metric, Prompt Depth Anything, ZoeDepth, Depth Pro), run with
that family's official pre- and post-processing (:mod:`pipeline.teachers.families`). Relative
models output *affine-invariant disparity*, the others depth in metres; which one a store
holds is its ``teacher.output_kind`` attribute.

Depth Anything V2 runs exactly as the official ``infer_image``: OpenCV-cubic input resize,
the official network size, the official DINOv2 position-embedding interpolation and a bilinear
``align_corners=True`` output resize. The default precision is fp32; bf16 / fp16 are opt-in.

Weights come from the Hugging Face hub (or its local cache) or from a local folder written by
``save_pretrained``. Offline without weights, :func:`resolve_teacher` fails at start-up with one
message saying how to provide them; nothing ever falls back to random weights. The
``tiny-random`` teacher is the real DepthAnything architecture with a tiny config and seeded
random weights, for tests and offline smoke runs; stores made with it say so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from data_schemas.errors import ConfigError, InputError
from pipeline.teachers.input_size import PATCH, official_network_size
from pipeline.teachers.registry import (
    DEFAULT_TEACHER,
    FAMILY_TITLES,
    FOCAL,
    PROMPT,
    TEACHERS,
    TINY_RANDOM,
    TeacherSpec,
    hub_reachable,
    missing_weights_message,
    resolve_teacher,
)

if TYPE_CHECKING:
    import torch

    from pipeline.teachers.families import Batch

__all__ = ["DEFAULT_TEACHER", "PATCH", "TEACHERS", "TINY_RANDOM", "Teacher", "TeacherConfig",
           "TeacherSpec", "check_teacher_inputs", "load_model", "network_size",
           "resolve_teacher"]

PRECISIONS = ("fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda")
PROMPTS = ("none", "lidar")
POS_EMBEDS = ("official", "transformers")
"""``official``: :func:`pipeline.teachers.pos_embed.use_official_pos_embed`."""


@dataclass(frozen=True)
class TeacherConfig:
    """How the teacher runs."""

    input_size: int = 518
    """Depth Anything V2: shorter side of the network input (px), raised to a multiple of 14 by
    the official rule (518 native). Other families use their own fixed network sizes."""
    batch_size: int = 4
    """Images per forward pass."""
    device: str = "auto"
    """``auto`` (cuda when present), ``cpu`` or ``cuda``."""
    precision: str = "fp32"
    """``fp32`` (the official inference), or opt-in ``bf16`` / ``fp16`` (faster on GPU;
    relative error vs fp32 measured in the README)."""
    pos_embed: str = "official"
    """DINOv2 position-embedding interpolation: ``official`` (scale factor (n + 0.1) / sqrt(N),
    as the official code) or ``transformers`` (resize to the patch grid)."""
    prompt: str = "none"
    """Depth prompt of Prompt Depth Anything: ``none`` or ``lidar`` (each image's KITTI LiDAR
    map: ``proj_depth/velodyne_raw`` / ``velodyne_raw``)."""
    prompt_cell: int = 8
    """Prompt Depth Anything: the LiDAR is pooled over cells of this many px per side."""

    def __post_init__(self) -> None:
        if self.input_size < PATCH or self.batch_size < 1 or self.prompt_cell < 1:
            raise ConfigError(f"teacher input_size must be >= {PATCH}, batch_size and "
                              f"prompt_cell >= 1")
        parse_choice("teacher device", self.device, DEVICES)
        parse_choice("teacher precision", self.precision, PRECISIONS)
        parse_choice("teacher pos_embed", self.pos_embed, POS_EMBEDS)
        parse_choice("teacher prompt", self.prompt, PROMPTS)


def parse_choice(what: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ConfigError(f"unknown {what} {value!r}; allowed: {', '.join(allowed)}")
    return value


def network_size(hw: tuple[int, int], input_size: int) -> tuple[int, int]:
    """Depth Anything V2 network input (h, w) for an (H, W) image (the official rule)."""
    return official_network_size(hw, input_size)


def check_teacher_inputs(spec: TeacherSpec, cfg: TeacherConfig) -> None:
    """Start-up check that the teacher gets what it needs (and nothing it ignores)."""
    title = FAMILY_TITLES[spec.family]
    if PROMPT in spec.needs and cfg.prompt == "none":
        raise ConfigError(f"teacher {spec.name!r} ({title}) needs a depth prompt: pass "
                          f"--teacher-prompt lidar (each image's KITTI LiDAR map)")
    if PROMPT not in spec.needs and cfg.prompt != "none":
        raise ConfigError(f"--teacher-prompt {cfg.prompt} is for Prompt Depth Anything; "
                          f"teacher {spec.name!r} ({title}) takes no prompt")


def load_model(spec: TeacherSpec) -> torch.nn.Module:
    """The frozen model of ``spec`` (eval mode, no gradients), on the CPU in fp32."""
    if spec.test_teacher:
        from pipeline.teachers.tiny import tiny_random_model

        model = tiny_random_model()
    else:
        from transformers import AutoModelForDepthEstimation

        local = Path(spec.source).is_dir()
        try:
            model = AutoModelForDepthEstimation.from_pretrained(
                spec.source, local_files_only=local or not hub_reachable())
        except OSError as err:
            raise ConfigError(f"{missing_weights_message(spec)} ({err})") from None
    model.eval()
    model.requires_grad_(False)
    return model


def pick_device(cfg: TeacherConfig) -> str:
    """The device actually used."""
    import torch

    cuda = torch.cuda.is_available()
    if cfg.device == "cuda" and not cuda:
        raise ConfigError("teacher device 'cuda' requested but no CUDA GPU is visible")
    return "cuda" if cfg.device == "cuda" or (cfg.device == "auto" and cuda) else "cpu"


class Teacher:
    """A loaded teacher: ``predict`` maps uint8 RGB batches to raw outputs at their size."""

    def __init__(self, spec: TeacherSpec, cfg: TeacherConfig = TeacherConfig()) -> None:
        import torch

        from pipeline.teachers.families import FORWARDS, Runtime
        from pipeline.teachers.pos_embed import use_official_pos_embed

        self.spec, self.cfg = spec, cfg
        self.device, self.precision = pick_device(cfg), cfg.precision
        dtype = {"fp32": torch.float32, "fp16": torch.float16,
                 "bf16": torch.bfloat16}[self.precision]
        self.model = load_model(spec).to(self.device, dtype)
        if cfg.pos_embed == "official":
            use_official_pos_embed(self.model)
        self.forward = FORWARDS[spec.family]
        self.runtime = Runtime(self.device, dtype, cfg.input_size, cfg.prompt_cell)

    def predict(self, rgb: np.ndarray, focal_px: np.ndarray | None = None,
                prompt: np.ndarray | None = None) -> np.ndarray:
        """(B, H, W, 3) uint8 -> (B, H, W) float32 raw output (disparity or m), finite, >= 0.

        ``focal_px`` (B,): fx at this resolution (Depth Pro); ``prompt`` (B, H, W): sparse
        metric depth, 0 = none (Prompt Depth Anything). Other teachers ignore both.
        """
        if rgb.ndim != 4 or rgb.shape[-1] != 3 or rgb.dtype != np.uint8:
            raise InputError(f"teacher input must be (B, H, W, 3) uint8, got {rgb.shape} "
                             f"{rgb.dtype}")
        from pipeline.teachers.families import Batch

        step = self.cfg.batch_size
        parts = [self._forward(Batch(rgb[i:i + step], _rows(focal_px, i, step) if FOCAL in
                                     self.spec.needs else None,
                                     _rows(prompt, i, step) if PROMPT in self.spec.needs
                                     else None))
                 for i in range(0, len(rgb), step)]
        if not parts:
            return np.zeros(rgb.shape[:3], np.float32)
        return np.concatenate(parts)

    def _forward(self, batch: Batch) -> np.ndarray:
        import torch

        with torch.inference_mode():
            out = self.forward(self.model, batch, self.runtime)
            out = torch.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0).clamp_min(0.0)
        return out.cpu().numpy().astype(np.float32)


def _rows(values: np.ndarray | None, start: int, step: int) -> np.ndarray | None:
    return None if values is None else np.asarray(values)[start:start + step]
