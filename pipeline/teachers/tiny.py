"""Tiny models of every supported family with seeded random weights.

The real transformers architectures with tiny configs: ``tiny-random`` (the offline test
teacher) and the tests' ``save_pretrained`` folders. Convolutions are re-initialised (Kaiming)
so that the random networks give image-dependent outputs rather than near-constants.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from pipeline.teachers.input_size import PATCH

if TYPE_CHECKING:
    from transformers import PretrainedConfig

DINO_STAGES = ["stage1", "stage2", "stage3", "stage4"]
DPT_SIZES: dict[str, Any] = dict(reassemble_hidden_size=32, neck_hidden_sizes=[8, 16, 32, 32],
                                 fusion_hidden_size=16, head_hidden_size=8)


def _dinov2(**overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = dict(
        model_type="dinov2", hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
        intermediate_size=64, patch_size=PATCH, image_size=56)
    config.update(overrides)
    return config


def _dinov2_backbone() -> PretrainedConfig:
    from transformers import Dinov2Config

    settings = _dinov2(out_features=DINO_STAGES, reshape_hidden_states=False)
    settings.pop("model_type")
    return Dinov2Config(**settings)


def depth_anything_config(metric: bool = False, max_depth: int = 20) -> PretrainedConfig:
    from transformers import DepthAnythingConfig

    extra: dict[str, Any] = dict(depth_estimation_type="metric", max_depth=max_depth) if metric \
        else dict(depth_estimation_type="relative")
    return DepthAnythingConfig(backbone_config=_dinov2_backbone(), **DPT_SIZES, **extra)


def prompt_depth_anything_config() -> PretrainedConfig:
    from transformers import PromptDepthAnythingConfig

    return PromptDepthAnythingConfig(backbone_config=_dinov2_backbone(), **DPT_SIZES,
                                     depth_estimation_type="metric", max_depth=1)


def zoedepth_config() -> PretrainedConfig:
    from transformers import BeitConfig, ZoeDepthConfig

    backbone: dict[str, Any] = dict(
        image_size=64, patch_size=16, hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
        intermediate_size=64, use_relative_position_bias=True, reshape_hidden_states=False,
        out_features=DINO_STAGES)
    bins = [{"n_bins": 8, "min_depth": 0.001, "max_depth": 80.0, "name": "kitti"}]
    return ZoeDepthConfig(backbone_config=BeitConfig(**backbone), neck_hidden_sizes=[8, 16, 32, 32],
                          fusion_hidden_size=16, bottleneck_features=16, bin_embedding_dim=8,
                          num_relative_features=8, num_attractors=[4, 2, 2, 1],
                          bin_configurations=bins, num_patch_transformer_layers=1,
                          patch_transformer_hidden_size=16,
                          patch_transformer_intermediate_size=32,
                          patch_transformer_num_attention_heads=2)


def depth_pro_config() -> PretrainedConfig:
    from transformers import DepthProConfig

    sub = _dinov2(num_hidden_layers=2, patch_size=8, image_size=32)
    return DepthProConfig(patch_size=32, fusion_hidden_size=16, intermediate_hook_ids=[1, 0],
                          intermediate_feature_dims=[8, 8], scaled_images_ratios=[0.25, 0.5, 1],
                          scaled_images_overlap_ratios=[0.0, 0.5, 0.25],
                          scaled_images_feature_dims=[16, 16, 8], use_fov_model=True,
                          num_fov_head_layers=1, image_model_config=dict(sub),
                          patch_model_config=dict(sub), fov_model_config=dict(sub))


TINY_CONFIGS = {"depth_anything": depth_anything_config,
                "prompt_depth_anything": prompt_depth_anything_config,
                "zoedepth": zoedepth_config, "depth_pro": depth_pro_config}


def randomise(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Kaiming-normal convolution weights from ``seed`` (the default init is near-silent)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
                fan_in = module.weight[0].numel()
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator)
                                    * (2.0 / fan_in) ** 0.5)
    return model


def tiny_model(config: PretrainedConfig, seed: int = 0) -> torch.nn.Module:
    """The ``AutoModelForDepthEstimation`` model of ``config`` with seeded random weights."""
    from transformers import AutoModelForDepthEstimation

    torch.manual_seed(seed)
    model: torch.nn.Module = AutoModelForDepthEstimation.from_config(config)
    randomise(model, seed)
    head = getattr(model, "head", None)
    if config.model_type == "depth_anything" and head is not None:
        with torch.no_grad():  # positive, image-dependent "disparity" rather than ReLU zeros
            head.conv3.bias.fill_(1.0)
    return model.eval()


def tiny_random_model(seed: int = 0) -> torch.nn.Module:
    """The ``tiny-random`` teacher: a tiny relative Depth Anything with seeded weights."""
    return tiny_model(depth_anything_config(), seed)
