"""Quick-look PNG of one simulated frame: rgb | simulated sparse LiDAR | dense depth, stacked.

Run: python -m pipeline.quicklook --out docs/lidar_quicklook.png
     [--sensor hdl64e] [--beams 64] [--seed 0]
Uses a synthetic KITTI-like street (352 x 1216, KITTI intrinsics and LiDAR mount).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import cv2
import numpy as np
import typer

from data_schemas.quicklook import colorize_depth, dilate_sparse, write_png
from pipeline.pose import kitti_mount
from pipeline.sensors import known_sensors, load_sensor
from pipeline.simulate import simulate_scan
from pipeline.synthetic import kitti_like_scene

MAX_DEPTH_M = 80.0


def _label(img: np.ndarray, text: str) -> np.ndarray:
    out = np.ascontiguousarray(img)
    cv2.putText(out, text, (10, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2, cv2.LINE_AA)
    return out


def quicklook(seed: int = 0, sensor_name: str = "hdl64e", beams: int | None = None) -> np.ndarray:
    """(3H, W, 3) uint8 RGB panel of one simulated frame."""
    scene = kitti_like_scene(seed=seed)
    sensor = load_sensor(sensor_name, beams=beams)
    scan = simulate_scan(scene.depth, scene.K, sensor, kitti_mount(), seed=seed)
    sparse = dilate_sparse(scan.sparse_depth.astype(np.float32), radius_px=1)
    panels = [
        _label(scene.rgb, "rgb (synthetic KITTI-like street)"),
        _label(colorize_depth(sparse, MAX_DEPTH_M),
               f"simulated {sensor.name}: {scan.density:.1%} of pixels"),
        _label(colorize_depth(scene.depth.astype(np.float32), MAX_DEPTH_M),
               "dense depth (teacher stand-in)"),
    ]
    return np.concatenate(panels, axis=0)


def main(
    out: Annotated[Path, typer.Option(help="PNG to write.")] = Path("docs/lidar_quicklook.png"),
    seed: Annotated[int, typer.Option(help="Scene and scan seed.")] = 0,
    sensor: Annotated[str, typer.Option(help=f"Preset: {', '.join(known_sensors())}.")] = "hdl64e",
    beams: Annotated[int | None, typer.Option(help="Thin to this many lasers (32, 16, 8).")] = None,
) -> None:
    """Write a quick-look PNG of one simulated frame (rgb | sparse | dense)."""
    img = quicklook(seed, sensor, beams)
    write_png(out, img)
    print(f"wrote {out} ({img.shape[1]}x{img.shape[0]})")


if __name__ == "__main__":
    typer.run(main)
