"""Teacher: agreement with the official inference, and the cost of bf16 / fp16 vs fp32.

A Depth Anything V2 *Small*-sized model (ViT-S/14 DINOv2, DPT head as in
Depth-Anything-V2-Small-hf) with seeded random weights (no hub here) runs on a KITTI
352 x 1216 image (the shared sample, else a synthetic scene):

1. agreement of the teacher with a transcription of the official ``infer_image``
   (``cv2.resize`` INTER_CUBIC, ImageNet normalisation, bilinear ``align_corners=True``), and of
   the previous pipeline (torch bicubic + antialias, ``align_corners=False``, transformers'
   position embeddings) with the same transcription;
2. wall time per image (min / median / max of repeats) and relative difference to fp32 of each
   precision on this machine's device.

Random weights: the relative differences are indicative of the numerics, not of a trained
model's outputs. Run: ``.venv/bin/python benchmarks/bench_teacher.py [--input-size 266]``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from pipeline.teacher import TINY_RANDOM, Teacher, TeacherConfig
from pipeline.teachers.input_size import official_network_size
from pipeline.teachers.pos_embed import use_official_pos_embed
from pipeline.teachers.registry import TeacherSpec
from pipeline.teachers.tiny import randomise

SAMPLE = (Path(__file__).resolve().parents[2] / "shared" / "data" / "kitti_sample" /
          "val_selection_cropped" / "image" /
          "2011_09_26_drive_0001_sync_image_0000000005_image_02.png")


def small_model() -> torch.nn.Module:
    """Depth-Anything-V2-Small's architecture with seeded random weights."""
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config

    backbone = Dinov2Config(hidden_size=384, num_hidden_layers=12, num_attention_heads=6,
                            intermediate_size=1536, patch_size=14, image_size=518,
                            out_indices=[3, 6, 9, 12], reshape_hidden_states=False,
                            apply_layernorm=True)
    config = DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=384,
                                 neck_hidden_sizes=[48, 96, 192, 384], fusion_hidden_size=64,
                                 head_hidden_size=32, depth_estimation_type="relative")
    torch.manual_seed(0)
    model = randomise(DepthAnythingForDepthEstimation(config), 0)
    with torch.no_grad():  # positive everywhere, like a trained model's disparity
        model.head.conv3.weight.mul_(0.05)
        model.head.conv3.bias.fill_(1.0)
    return model.eval()


class SmallTeacher(Teacher):
    """The teacher with :func:`small_model` in place of a hub checkpoint."""

    def __init__(self, cfg: TeacherConfig) -> None:
        import pipeline.teacher as teacher_module

        original = teacher_module.load_model
        teacher_module.load_model = lambda spec: small_model()
        try:
            super().__init__(TeacherSpec("small-random", TINY_RANDOM, "disparity",
                                         test_teacher=True), cfg)
        finally:
            teacher_module.load_model = original


def official(model: torch.nn.Module, rgb: np.ndarray, input_size: int) -> np.ndarray:
    """``infer_image`` transcribed: cv2 INTER_CUBIC in float64, align_corners=True output."""
    h, w = rgb.shape[:2]
    nh, nw = official_network_size((h, w), input_size)
    image = cv2.resize(rgb / 255.0, (nw, nh), interpolation=cv2.INTER_CUBIC)
    image = (image - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
    x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)).astype(np.float32))
    with torch.inference_mode():
        depth = model(pixel_values=x[None]).predicted_depth[:, None]
        return F.interpolate(depth, (h, w), mode="bilinear", align_corners=True)[0, 0].numpy()


def previous(model: torch.nn.Module, rgb: np.ndarray, input_size: int) -> np.ndarray:
    """The pipeline before issue 15: torch bicubic + antialias, plain rounding, corners off."""
    h, w = rgb.shape[:2]
    scale = input_size / min(h, w)
    size = (max(14, round(h * scale / 14) * 14), max(14, round(w * scale / 14) * 14))
    x = torch.from_numpy(np.array(rgb)).permute(2, 0, 1)[None].float() / 255
    x = F.interpolate(x, size, mode="bicubic", align_corners=False, antialias=True)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.inference_mode():
        depth = model(pixel_values=(x - mean) / std).predicted_depth[:, None]
        return F.interpolate(depth, (h, w), mode="bilinear", align_corners=False)[0, 0].numpy()


def rel(a: np.ndarray, b: np.ndarray) -> str:
    """|a - b| / |b| over the pixels where |b| > 5 % of its maximum (ReLU zeros left out)."""
    keep = np.abs(b) > 0.05 * np.abs(b).max()
    d = np.abs(a - b)[keep] / np.abs(b)[keep]
    return (f"median {np.median(d):.1e}  p99 {np.quantile(d, 0.99):.1e}  max {d.max():.1e}  "
            f"(corr {np.corrcoef(a.ravel(), b.ravel())[0, 1]:.6f}, {keep.mean():.0%} of pixels)")


def timed(teacher: Teacher, rgb: np.ndarray, repeats: int) -> tuple[np.ndarray, list[float]]:
    out = teacher.predict(rgb)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = teacher.predict(rgb)
        if teacher.device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return out, times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--input-size", type=int, default=266)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    rgb = (np.asarray(Image.open(SAMPLE).convert("RGB")) if SAMPLE.is_file()
           else np.random.default_rng(0).integers(0, 256, (352, 1216, 3)).astype(np.uint8))
    print(f"image {rgb.shape[:2]}, network {official_network_size(rgb.shape[:2], args.input_size)}"
          f", model: Depth-Anything-V2-Small architecture, random weights")
    fp32 = SmallTeacher(TeacherConfig(input_size=args.input_size, device=args.device))
    ours, fp32_times = timed(fp32, rgb[None], args.repeats)
    cpu_model = small_model()
    previous_out = previous(cpu_model, rgb, args.input_size)
    use_official_pos_embed(cpu_model)
    reference = official(cpu_model, rgb, args.input_size)
    print(f"ours (fp32, official mode) vs official transcription: {rel(ours[0], reference)}")
    print(f"previous pipeline          vs official transcription: "
          f"{rel(previous_out, reference)}")
    print(f"device {fp32.device}; seconds per image min/median/max over {args.repeats}:")
    print(f"  fp32  {min(fp32_times):.3f} / {np.median(fp32_times):.3f} / {max(fp32_times):.3f}")
    for precision in ("bf16", "fp16"):
        try:
            teacher = SmallTeacher(TeacherConfig(input_size=args.input_size, device=args.device,
                                                 precision=precision))
            out, times = timed(teacher, rgb[None], args.repeats)
        except RuntimeError as err:
            print(f"  {precision}  not supported here: {err}")
            continue
        print(f"  {precision}  {min(times):.3f} / {np.median(times):.3f} / {max(times):.3f}  "
              f"(x{np.median(fp32_times) / np.median(times):.2f} vs fp32)  relative difference "
              f"to fp32: {rel(out[0], ours[0])}")


if __name__ == "__main__":
    main()
