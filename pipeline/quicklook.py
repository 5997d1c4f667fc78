"""Quick-look PNGs of the LiDAR simulation.

Synthetic street (rgb | simulated sparse LiDAR | dense depth, stacked):
    python -m pipeline.quicklook --out docs/lidar_quicklook.png [--sensor hdl64e] [--beams 64]
Real KITTI frame vs its simulation (rgb | rebuilt scene / real scan | simulated scan):
    python -m pipeline.quicklook --kitti ../shared/data/kitti_sample \
        --out docs/lidar_real_vs_sim.png
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
    out = np.ascontiguousarray(img).copy()
    (w, h), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.8, 2)
    out[: h + 20, : w + 20] //= 3  # darken behind the text so it reads on sky
    cv2.putText(out, text, (10, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2, cv2.LINE_AA)
    return out


def _sparse_panel(depth: np.ndarray, text: str) -> np.ndarray:
    return _label(colorize_depth(dilate_sparse(depth.astype(np.float32), radius_px=1),
                                 MAX_DEPTH_M), text)


def quicklook(seed: int = 0, sensor_name: str = "hdl64e", beams: int | None = None) -> np.ndarray:
    """(3H, W, 3) uint8 RGB panel of one simulated frame of the synthetic street."""
    scene = kitti_like_scene(seed=seed)
    sensor = load_sensor(sensor_name, beams=beams)
    scan = simulate_scan(scene.depth, scene.K, sensor, kitti_mount(), seed=seed, rgb=scene.rgb)
    panels = [
        _label(scene.rgb, "rgb (synthetic KITTI-like street)"),
        _sparse_panel(scan.sparse_depth, f"simulated {sensor.name}: {scan.density:.1%} of pixels"),
        _label(colorize_depth(scene.depth.astype(np.float32), MAX_DEPTH_M),
               "dense depth (teacher stand-in)"),
    ]
    return np.concatenate(panels, axis=0)


def real_vs_simulated(kitti: Path, seed: int = 0, sensor_name: str = "hdl64e") -> np.ndarray:
    """(2H, 2W, 3) uint8: rgb | scene rebuilt from the real scan, over real scan | simulated."""
    from pipeline.calibration.kitti_frame import raw_frame
    from pipeline.calibration.realism import compare_frame

    frame = raw_frame(kitti)
    c = compare_frame(frame, load_sensor(sensor_name), seed=seed)
    real, sim = c.real.depth, c.sim.depth
    top = np.concatenate([
        _label(frame.rgb, f"KITTI {frame.name} (camera 2, 352x1216 crop)"),
        _label(colorize_depth(c.scene_depth, MAX_DEPTH_M), "scene rebuilt from the real scan"),
    ], axis=1)
    bottom = np.concatenate([
        _sparse_panel(real, f"real HDL-64E: {(real > 0).mean():.2%} of pixels"),
        _sparse_panel(sim, f"simulated {sensor_name} (true pose): {(sim > 0).mean():.2%}"),
    ], axis=1)
    return np.concatenate([top, bottom], axis=0)


def main(
    out: Annotated[Path, typer.Option(help="PNG to write.")] = Path("docs/lidar_quicklook.png"),
    seed: Annotated[int, typer.Option(help="Scene and scan seed.")] = 0,
    sensor: Annotated[str, typer.Option(help=f"Preset: {', '.join(known_sensors())}.")] = "hdl64e",
    beams: Annotated[int | None, typer.Option(help="Thin to this many lasers (32, 16, 8).")] = None,
    kitti: Annotated[Path | None, typer.Option(
        help="KITTI root (raw/<date>/<drive>/...): real scan vs simulated instead.")] = None,
) -> None:
    """Write a quick-look PNG of one simulated frame (or of a real KITTI frame vs simulated)."""
    img = quicklook(seed, sensor, beams) if kitti is None else real_vs_simulated(kitti, seed,
                                                                                 sensor)
    write_png(out, img)
    print(f"wrote {out} ({img.shape[1]}x{img.shape[0]})")


if __name__ == "__main__":
    typer.run(main)
