"""Quick-look PNG of one simulated frame: rgb | simulated sparse LiDAR | dense depth, stacked.

Run: python -m pipeline.quicklook --out docs/lidar_quicklook.png
     [--sensor hdl64e] [--beams 64] [--seed 0]
Uses a synthetic KITTI-like street (352 x 1216, KITTI intrinsics and LiDAR mount).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from pipeline.pose import kitti_mount
from pipeline.sensors import known_sensors, load_sensor
from pipeline.simulate import simulate_scan
from pipeline.synthetic import kitti_like_scene


def colorize_depth(depth: np.ndarray, max_depth_m: float = 80.0) -> np.ndarray:
    """(H, W) depth (m, 0 = none) -> (H, W, 3) uint8 RGB (turbo on inverse depth, black = none)."""
    inv = np.zeros_like(depth, dtype=np.float32)
    np.divide(1.0, depth, out=inv, where=depth > 0)
    scale = np.clip((inv - 1.0 / max_depth_m) / (1.0 / 3.0 - 1.0 / max_depth_m), 0.0, 1.0)
    bgr = cv2.applyColorMap((255 * scale).astype(np.uint8), cv2.COLORMAP_TURBO)
    bgr[depth <= 0] = 0
    return bgr[..., ::-1]


def _label(img: np.ndarray, text: str) -> np.ndarray:
    out = np.ascontiguousarray(img)
    cv2.putText(out, text, (10, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2, cv2.LINE_AA)
    return out


def quicklook(seed: int = 0, sensor_name: str = "hdl64e", beams: int | None = None) -> np.ndarray:
    """(3H, W, 3) uint8 RGB panel of one simulated frame."""
    scene = kitti_like_scene(seed=seed)
    sensor = load_sensor(sensor_name, beams=beams)
    scan = simulate_scan(scene.depth, scene.K, sensor, kitti_mount(), seed=seed)
    far = np.where(scan.sparse_depth > 0, scan.sparse_depth, 1e4).astype(np.float32)
    near = cv2.erode(
        far, np.ones((2, 2), np.uint8)
    )  # grow points (nearest wins) to be visible when scaled
    sparse = np.where(near < 1e4, near, 0.0)
    panels = [
        _label(scene.rgb, "rgb (synthetic KITTI-like street)"),
        _label(
            colorize_depth(sparse.astype(np.float32)),
            f"simulated {sensor.name}: {scan.density:.1%} of pixels",
        ),
        _label(colorize_depth(scene.depth), "dense depth (teacher stand-in)"),
    ]
    return np.concatenate(panels, axis=0)


def main() -> None:
    parser = argparse.ArgumentParser(description="Write a quick-look PNG (rgb | sparse | dense).")
    parser.add_argument("--out", type=Path, default=Path("docs/lidar_quicklook.png"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sensor", default="hdl64e", help=f"preset: {', '.join(known_sensors())}")
    parser.add_argument(
        "--beams", type=int, default=None, help="thin to this many lasers (e.g. 32, 16, 8)"
    )
    args = parser.parse_args()
    img = quicklook(args.seed, args.sensor, args.beams)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(args.out), img[..., ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        raise OSError(f"could not write {args.out}")
    print(f"wrote {args.out} ({img.shape[1]}x{img.shape[0]})")


if __name__ == "__main__":
    main()
