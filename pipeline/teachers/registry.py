"""Named teachers and what each one outputs and needs; resolving a name, folder or hub id.

Every teacher is a transformers ``AutoModelForDepthEstimation`` model of a supported family
(the config's ``model_type``). The family fixes the pre/post-processing
(:mod:`pipeline.teachers.families`), the output kind and the inputs beyond RGB:

=======================  =========================  ===================================
family (model_type)      output                     needs
=======================  =========================  ===================================
depth_anything           disparity (relative) or    RGB
                         depth (metric checkpoints)
prompt_depth_anything    depth (m)                  RGB + low-res depth prompt (LiDAR)
zoedepth                 depth (m)                  RGB
depth_pro                depth (m)                  RGB + focal length (px), else its FoV
=======================  =========================  ===================================

Weights come from the Hugging Face hub (or its local cache) or from a local folder written by
``save_pretrained`` / ``huggingface-cli download``. Offline without weights,
:func:`resolve_teacher` fails at start-up with one message saying how to provide them.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from urllib.parse import urlparse

from data_schemas.errors import ConfigError, InputError, InputNotFoundError
from data_schemas.geometry import DepthSpace

TINY_RANDOM = "tiny-random"
DEFAULT_TEACHER = "depth-anything-v2-small"
RELATIVE_UNITS = "relative disparity (affine-invariant)"

FOCAL = "focal_px"
PROMPT = "depth_prompt"
NEEDS: dict[str, tuple[str, ...]] = {
    "depth_anything": ("rgb",),
    "prompt_depth_anything": ("rgb", PROMPT),
    "zoedepth": ("rgb",),
    "depth_pro": ("rgb", FOCAL),
}
"""Supported families (transformers ``model_type``) and their inputs."""
FAMILY_TITLES = {"depth_anything": "Depth Anything V2",
                 "prompt_depth_anything": "Prompt Depth Anything", "zoedepth": "ZoeDepth",
                 "depth_pro": "Depth Pro"}


@dataclass(frozen=True)
class TeacherSpec:
    """Which teacher, where its weights are, what it outputs and what it needs."""

    name: str
    """Registry name, or ``local`` / ``hub`` for a folder / hub id given directly."""
    source: str
    """Hub id, local folder, or ``tiny-random``."""
    output_kind: DepthSpace
    """``disparity`` (relative, affine-invariant) or ``depth`` (metric, m)."""
    family: str = "depth_anything"
    """transformers ``model_type``: fixes pre/post-processing and the inputs (``NEEDS``)."""
    license: str = "unknown"
    test_teacher: bool = False
    """True for random weights: outputs are meaningless, for tests and smoke runs only."""

    @property
    def needs(self) -> tuple[str, ...]:
        return NEEDS[self.family]

    @property
    def units(self) -> str:
        return "m" if self.output_kind == "depth" else RELATIVE_UNITS

    def attrs(self) -> dict[str, object]:
        """The store's ``teacher`` root attribute (source as given, not machine paths)."""
        out: dict[str, object] = asdict(self)
        out.update(units=self.units, needs=list(self.needs))
        if self.test_teacher:
            out["warning"] = "TEST TEACHER: random weights, outputs are not depth"
        return out


def _registry() -> dict[str, TeacherSpec]:
    specs = [TeacherSpec(TINY_RANDOM, TINY_RANDOM, "disparity", license="Apache-2.0",
                         test_teacher=True)]
    for size, lic in (("small", "Apache-2.0"), ("base", "CC-BY-NC-4.0"),
                      ("large", "CC-BY-NC-4.0")):
        specs.append(TeacherSpec(f"depth-anything-v2-{size}",
                                 f"depth-anything/Depth-Anything-V2-{size.title()}-hf",
                                 "disparity", license=lic))
        for scene in ("indoor", "outdoor"):
            specs.append(TeacherSpec(
                f"depth-anything-v2-metric-{scene}-{size}",
                f"depth-anything/Depth-Anything-V2-Metric-{scene.title()}-{size.title()}-hf",
                "depth", license=lic))
    specs.append(TeacherSpec("depth-pro", "apple/DepthPro-hf", "depth", "depth_pro",
                             "apple-amlr (Apple ML research licence)"))
    for data in ("nyu-kitti", "kitti", "nyu"):
        specs.append(TeacherSpec(f"zoedepth-{data}", f"Intel/zoedepth-{data}", "depth",
                                 "zoedepth", "MIT"))
    for size in ("vits", "vitl"):
        specs.append(TeacherSpec(f"prompt-depth-anything-{size}",
                                 f"depth-anything/prompt-depth-anything-{size}-hf", "depth",
                                 "prompt_depth_anything", "Apache-2.0"))
    return {spec.name: spec for spec in specs}


TEACHERS: dict[str, TeacherSpec] = _registry()


# -- what a config says ------------------------------------------------------------------
def family_of(config: dict[str, object], where: str) -> str:
    """The supported family of a config dict; a clear error for anything else."""
    from transformers.models.auto import configuration_auto
    from transformers.models.auto.modeling_auto import MODEL_FOR_DEPTH_ESTIMATION_MAPPING_NAMES

    model_type = str(config.get("model_type", ""))
    if model_type not in MODEL_FOR_DEPTH_ESTIMATION_MAPPING_NAMES:
        architectures = config.get("architectures")
        config_classes: dict[str, str] = getattr(configuration_auto, "CONFIG_MAPPING_NAMES", {})
        names = [str(a) for a in architectures] if isinstance(architectures, list) else [
            config_classes.get(model_type, "?")]
        raise InputError(f"{where}: {', '.join(names)} (model_type {model_type!r}) is "
                         f"not a depth-estimation model; AutoModelForDepthEstimation loads "
                         f"{', '.join(MODEL_FOR_DEPTH_ESTIMATION_MAPPING_NAMES)}")
    if model_type not in NEEDS:
        raise InputError(f"{where}: depth model type {model_type!r} has no dmd3c pre/post-"
                         f"processing; supported: {', '.join(NEEDS)}")
    return model_type


def kind_of(family: str, config: dict[str, object]) -> DepthSpace:
    """Output kind: metric depth except relative Depth Anything checkpoints."""
    if family == "depth_anything" and config.get("depth_estimation_type") != "metric":
        return "disparity"
    return "depth"


def spec_from_config(spec: TeacherSpec, config: dict[str, object], where: str) -> TeacherSpec:
    family = family_of(config, where)
    return replace(spec, family=family, output_kind=kind_of(family, config))


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
    raise InputError(f"unknown teacher {name!r}: not a registry name, a folder with config.json "
                     f"nor a hub id; registry: {', '.join(TEACHERS)}")


def _local_spec(path: Path) -> TeacherSpec:
    config = path / "config.json"
    if not config.is_file():
        raise InputNotFoundError(f"teacher folder {path} has no config.json (write it with "
                                 f"save_pretrained or huggingface-cli download)")
    spec = TeacherSpec("local", str(path.resolve()), "disparity")
    return spec_from_config(spec, json.loads(config.read_text()), str(path))


def _check_hub(spec: TeacherSpec) -> TeacherSpec:
    """The spec, once its config is in the local cache or downloadable; else a clear error."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(spec.source, local_files_only=True)
    except OSError:
        if not hub_reachable():
            raise ConfigError(missing_weights_message(spec)) from None
        try:
            config = AutoConfig.from_pretrained(spec.source)
        except OSError as err:
            raise ConfigError(f"{missing_weights_message(spec)} ({err})") from None
    return spec_from_config(spec, config.to_dict(), spec.source)


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
