"""Monocular depth teachers: a small registry of Depth Anything V2 models (transformers).

Relative models output *affine-invariant disparity*; metric models output depth in metres.
Which one a store holds is recorded in its ``teacher.output_kind`` attribute.

Weights come from the Hugging Face hub (or its local cache) or from a local folder written
by ``save_pretrained``. Offline without weights, :func:`resolve_teacher` fails at start-up
with one message saying how to provide them; nothing ever falls back to random weights.
The ``tiny-random`` teacher is the real DepthAnything architecture with a tiny config and
seeded random weights, for tests and offline smoke runs; stores made with it say so.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import numpy as np

from data_schemas.geometry import DepthSpace

if TYPE_CHECKING:
    import torch

TINY_RANDOM = "tiny-random"
DEFAULT_TEACHER = "depth-anything-v2-small"
PATCH = 14
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class TeacherSpec:
    """Which teacher, where its weights are, and what it outputs."""

    name: str
    """Registry name, or ``local`` / ``hub`` for a folder / hub id given directly."""
    source: str
    """Hub id, local folder, or ``tiny-random``."""
    output_kind: DepthSpace
    """``disparity`` (relative, affine-invariant) or ``depth`` (metric, m)."""
    license: str = "unknown"
    test_teacher: bool = False
    """True for random weights: outputs are meaningless, for tests and smoke runs only."""

    def attrs(self) -> dict[str, object]:
        """The store's ``teacher`` root attribute (source as given, not machine paths)."""
        out: dict[str, object] = asdict(self)
        relative = "relative disparity (affine-invariant)"
        out["units"] = "m" if self.output_kind == "depth" else relative
        if self.test_teacher:
            out["warning"] = "TEST TEACHER: random weights, outputs are not depth"
        return out


def _registry() -> dict[str, TeacherSpec]:
    specs = [TeacherSpec(TINY_RANDOM, TINY_RANDOM, "disparity", "Apache-2.0", test_teacher=True)]
    for size, lic in (("small", "Apache-2.0"), ("base", "CC-BY-NC-4.0"),
                      ("large", "CC-BY-NC-4.0")):
        specs.append(TeacherSpec(f"depth-anything-v2-{size}",
                                 f"depth-anything/Depth-Anything-V2-{size.title()}-hf",
                                 "disparity", lic))
        for scene in ("indoor", "outdoor"):
            specs.append(TeacherSpec(
                f"depth-anything-v2-metric-{scene}-{size}",
                f"depth-anything/Depth-Anything-V2-Metric-{scene.title()}-{size.title()}-hf",
                "depth", lic))
    return {spec.name: spec for spec in specs}


TEACHERS: dict[str, TeacherSpec] = _registry()


@dataclass(frozen=True)
class TeacherConfig:
    """How the teacher runs."""

    input_size: int = 518
    """Shorter side of the network input (px), rounded to a multiple of 14 (DA-V2: 518)."""
    batch_size: int = 4
    """Images per forward pass."""
    device: str = "auto"
    """``auto`` (cuda when present), ``cpu`` or ``cuda``."""
    precision: str = "auto"
    """``auto`` (bf16/fp16 on GPU, fp32 on CPU), ``fp32``, ``fp16`` or ``bf16``."""

    def __post_init__(self) -> None:
        if self.input_size < PATCH or self.batch_size < 1:
            raise ValueError(f"teacher input_size must be >= {PATCH} and batch_size >= 1")
        parse_choice("teacher device", self.device, DEVICES)
        parse_choice("teacher precision", self.precision, PRECISIONS)


def parse_choice(what: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; allowed: {', '.join(allowed)}")
    return value


# -- resolving (driver side, at start-up) ------------------------------------------------
def resolve_teacher(name: str) -> TeacherSpec:
    """Registry name, local folder or hub id -> spec whose weights are known to be available."""
    if name in TEACHERS:
        spec = TEACHERS[name]
        return spec if spec.test_teacher else _check_hub(spec)
    path = Path(name).expanduser()
    if path.is_dir():
        return _local_spec(path)
    if name.count("/") == 1 and not path.exists() and not name.startswith((".", "/")):
        return _check_hub(TeacherSpec("hub", name, "disparity"))
    raise ValueError(f"unknown teacher {name!r}: not a folder with config.json nor a hub id; "
                     f"registry: {', '.join(TEACHERS)}")


def _local_spec(path: Path) -> TeacherSpec:
    config = path / "config.json"
    if not config.is_file():
        raise FileNotFoundError(f"teacher folder {path} has no config.json (write it with "
                                f"save_pretrained or huggingface-cli download)")
    kind = _kind_from_config(json.loads(config.read_text()))
    return TeacherSpec("local", str(path.resolve()), kind)


def _kind_from_config(config: dict[str, object]) -> DepthSpace:
    return "depth" if config.get("depth_estimation_type") == "metric" else "disparity"


def _check_hub(spec: TeacherSpec) -> TeacherSpec:
    """The spec, once its config is in the local cache or downloadable; else a clear error."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(spec.source, local_files_only=True)
    except OSError:
        if not hub_reachable():
            raise ValueError(missing_weights_message(spec)) from None
        try:
            config = AutoConfig.from_pretrained(spec.source)
        except OSError as err:
            raise ValueError(f"{missing_weights_message(spec)} ({err})") from None
    return replace(spec, output_kind=_kind_from_config(config.to_dict()))


def missing_weights_message(spec: TeacherSpec) -> str:
    return (f"teacher weights for {spec.name!r} ({spec.source}) are not available: no hub "
            f"access and not in the Hugging Face cache. Provide them with --teacher PATH (a "
            f"folder from `huggingface-cli download {spec.source} --local-dir PATH` on a "
            f"machine with access), or run with hub access; --teacher {TINY_RANDOM} runs "
            f"offline with random weights (test teacher, not for real data)")


def hub_reachable(timeout_s: float = 3.0) -> bool:
    """False when HF_HUB_OFFLINE is set or the hub endpoint does not accept a connection."""
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0") or os.environ.get(
            "TRANSFORMERS_OFFLINE", "0") not in ("", "0"):
        return False
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "", port), timeout=timeout_s):
            return True
    except OSError:
        return False


# -- building models ---------------------------------------------------------------------
def tiny_random_model(seed: int = 0) -> torch.nn.Module:
    """DepthAnythingForDepthEstimation with a tiny Dinov2 backbone and seeded random weights.

    Convolutions are re-initialised (Kaiming) and the output bias set to 1 so that the
    random network gives a positive, image-dependent "disparity" rather than all zeros.
    """
    import torch
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config

    backbone = Dinov2Config(hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                            intermediate_size=64, patch_size=PATCH, image_size=56,
                            out_features=["stage1", "stage2", "stage3", "stage4"],
                            reshape_hidden_states=False)
    config = DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=32,
                                 neck_hidden_sizes=[8, 16, 32, 32], fusion_hidden_size=16,
                                 head_hidden_size=8, depth_estimation_type="relative")
    torch.manual_seed(seed)
    model = DepthAnythingForDepthEstimation(config)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Conv2d):
                fan_in = module.weight[0].numel()
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator)
                                    * (2.0 / fan_in) ** 0.5)
        model.head.conv3.bias.fill_(1.0)
    return model


def load_model(spec: TeacherSpec) -> torch.nn.Module:
    """The frozen model of ``spec`` (eval mode, no gradients), on the CPU in fp32."""
    if spec.test_teacher:
        model = tiny_random_model()
    else:
        from transformers import AutoModelForDepthEstimation

        local = Path(spec.source).is_dir()
        try:
            model = AutoModelForDepthEstimation.from_pretrained(
                spec.source, local_files_only=local or not hub_reachable())
        except OSError as err:
            raise ValueError(f"{missing_weights_message(spec)} ({err})") from None
    model.eval()
    model.requires_grad_(False)
    return model


# -- inference ---------------------------------------------------------------------------
def network_size(hw: tuple[int, int], input_size: int) -> tuple[int, int]:
    """Network input (h, w): shorter side ~ ``input_size``, aspect kept, multiples of 14."""
    h, w = hw
    scale = input_size / min(h, w)
    return (max(PATCH, round(h * scale / PATCH) * PATCH),
            max(PATCH, round(w * scale / PATCH) * PATCH))


def pick_device(cfg: TeacherConfig) -> tuple[str, str]:
    """(device, precision) actually used: GPU -> bf16 (fp16 without bf16), CPU -> fp32."""
    import torch

    cuda = torch.cuda.is_available()
    if cfg.device == "cuda" and not cuda:
        raise ValueError("teacher device 'cuda' requested but no CUDA GPU is visible")
    device = "cuda" if cfg.device == "cuda" or (cfg.device == "auto" and cuda) else "cpu"
    if cfg.precision != "auto":
        return device, cfg.precision
    if device == "cpu":
        return device, "fp32"
    return device, "bf16" if torch.cuda.is_bf16_supported() else "fp16"


class Teacher:
    """A loaded teacher: ``predict`` maps uint8 RGB batches to raw outputs on the canvas."""

    def __init__(self, spec: TeacherSpec, cfg: TeacherConfig = TeacherConfig()) -> None:
        import torch

        self.spec, self.cfg = spec, cfg
        self.device, self.precision = pick_device(cfg)
        self.dtype = {"fp32": torch.float32, "fp16": torch.float16,
                      "bf16": torch.bfloat16}[self.precision]
        self.model = load_model(spec).to(self.device, self.dtype)

    def predict(self, rgb: np.ndarray) -> np.ndarray:
        """(B, H, W, 3) uint8 -> (B, H, W) float32 raw output (disparity or m), finite, >= 0."""
        if rgb.ndim != 4 or rgb.shape[-1] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"teacher input must be (B, H, W, 3) uint8, got {rgb.shape} "
                             f"{rgb.dtype}")
        step = self.cfg.batch_size
        parts = [self._forward(rgb[i:i + step]) for i in range(0, len(rgb), step)]
        if not parts:
            return np.zeros(rgb.shape[:3], np.float32)
        return np.concatenate(parts)

    def _forward(self, rgb: np.ndarray) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        hw = rgb.shape[1:3]
        with torch.inference_mode():
            x = torch.from_numpy(np.array(rgb)).to(self.device).permute(0, 3, 1, 2).float() / 255.0
            x = F.interpolate(x, network_size(hw, self.cfg.input_size), mode="bicubic",
                              align_corners=False, antialias=True)
            mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1)
            std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1)
            x = ((x - mean) / std).to(self.dtype)
            out = self.model(pixel_values=x).predicted_depth.float()[:, None]
            out = F.interpolate(out, hw, mode="bilinear", align_corners=False)[:, 0]
            out = torch.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0).clamp_min(0.0)
        return out.cpu().numpy().astype(np.float32)
