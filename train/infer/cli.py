"""``dmd3c evaluate``, ``export`` and ``complete``: inference commands (registered by
:mod:`train.cli`).

User errors raise data_schemas.errors.DmdError with a one-line message; ``dmd3c.cli``
prints ``dmd3c: error: ...`` and exits with status 2. Progress bars go to stderr, results
to stdout.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer

from data_schemas.errors import ConfigError


def _device_option() -> Any:
    return typer.Option("--device", help="auto (CUDA when available), cpu, cuda or cuda:N.")


def evaluate_command(
    ckpt: Annotated[Path, typer.Option(
        "--ckpt", help="Checkpoint: ours (EMA weights used when present) or a released "
                       "{'net': ...} file.", show_default=False)],
    kitti: Annotated[Path | None, typer.Option(
        "--kitti", help="KITTI root (with --dataset kitti).", show_default=False)] = None,
    split: Annotated[str, typer.Option(
        "--split", help="selval (val_selection_cropped), val, train or raw.")] = "selval",
    dataset: Annotated[str, typer.Option(
        "--dataset", help="kitti, or nyu (NYUv2 HDF5 files, --nyu ROOT).")] = "kitti",
    nyu: Annotated[Path | None, typer.Option(
        "--nyu", help="NYUv2 root holding val/**/*.h5 (with --dataset nyu).",
        show_default=False)] = None,
    beams: Annotated[str, typer.Option(
        "--beams", help="Also evaluate with the LiDAR input thinned to these ring counts, "
                        "e.g. 64,32,16,8.", show_default=False)] = "",
    limit: Annotated[int, typer.Option(
        "--limit", help="Evaluate only the first N frames (0 = all).")] = 0,
    crop: Annotated[str, typer.Option(
        "--crop", help="Score only the bottom-centre H,W window of each KITTI frame (quick "
                       "checks; the benchmark scores whole frames).", show_default=False)] = "",
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    device: Annotated[str, _device_option()] = "auto",
    use_ema: Annotated[bool, typer.Option(
        "--ema/--no-ema", help="Use the checkpoint's EMA weights when it has them.")] = True,
) -> None:
    """Score a checkpoint like the KITTI devkit (mm, 1/km) or on NYUv2 (RMSE m, REL, delta)."""
    from train.datasets.kitti.beams import parse_beams
    from train.datasets.kitti.layout import find_frames, parse_split
    from train.engine.distributed import parse_device
    from train.infer.evaluate import evaluate_kitti, evaluate_nyu, parse_crop_option
    from train.infer.predict import load_model

    torch_device = parse_device(device)
    beam_list = parse_beams(beams)
    window = parse_crop_option(crop)
    if dataset == "nyu":
        from train.datasets.nyu import find_nyu_files

        if nyu is None:
            raise ConfigError("--dataset nyu needs --nyu ROOT")
        files = find_nyu_files(nyu, "val")
        files = files[:limit] if limit else files
        report = evaluate_nyu(load_model(ckpt, torch_device, use_ema), files, torch_device,
                              progress=not as_json)
    elif dataset == "kitti":
        if kitti is None:
            raise ConfigError("--kitti ROOT is required (or --dataset nyu --nyu ROOT)")
        frames = find_frames(kitti, parse_split(split))
        frames = frames[:limit] if limit else frames
        model = load_model(ckpt, torch_device, use_ema)
        report = evaluate_kitti(model, frames, torch_device, beam_list, progress=not as_json,
                                crop=window)
        report["split"] = split
    else:
        raise ConfigError(f"unknown --dataset {dataset!r}; choose one of kitti, nyu")
    _print_report(report, as_json)


def _print_report(report: Mapping[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    from train.metrics import format_metrics

    groups: Mapping[str, Mapping[str, float]] = report.get("beams") or {"": report["metrics"]}
    for beams, metrics in groups.items():
        title = f" ({beams} beams)" if beams else ""
        typer.echo(f"{report['frames']} frames{title}:\n{format_metrics(metrics)}")


def export_command(
    kitti: Annotated[Path, typer.Option(
        "--kitti", help="KITTI root holding test_depth_completion_anonymous/.",
        show_default=False)],
    ckpt: Annotated[Path, typer.Option("--ckpt", help="Checkpoint to predict with.",
                                       show_default=False)],
    out: Annotated[Path, typer.Option(
        "--out", help="Folder for the uint16 PNGs and the submission zip.",
        show_default=False)],
    split: Annotated[str, typer.Option(
        "--split", help="test (the benchmark) or selval.")] = "test",
    device: Annotated[str, _device_option()] = "auto",
    use_ema: Annotated[bool, typer.Option(
        "--ema/--no-ema", help="Use the checkpoint's EMA weights when it has them.")] = True,
) -> None:
    """Write KITTI benchmark submission PNGs (metres x 256, server file names) and a zip."""
    from train.datasets.kitti.layout import find_frames, parse_split
    from train.engine.distributed import parse_device
    from train.infer.export import export_frames
    from train.infer.predict import load_model

    if parse_split(split) not in ("test", "selval"):
        raise ConfigError(f"export writes the flat benchmark sets; --split must be test or "
                         f"selval, got {split!r}")
    torch_device = parse_device(device)
    frames = find_frames(kitti, split)
    summary = export_frames(load_model(ckpt, torch_device, use_ema), frames, out, torch_device,
                            progress=True)
    typer.echo(f"dmd3c export: {summary.pngs} PNGs in {summary.out}; upload {summary.zip_path}")


def complete_command(
    image: Annotated[Path, typer.Option("--image", help="RGB image.", show_default=False)],
    calib: Annotated[Path, typer.Option(
        "--calib", help="calib_cam_to_cam.txt (raw; calib_velo_to_cam.txt beside it for "
                        "--velodyne), a KITTI object calib .txt, or a 9-number K .txt.",
        show_default=False)],
    ckpt: Annotated[Path, typer.Option("--ckpt", help="Checkpoint to predict with.",
                                       show_default=False)],
    out: Annotated[Path, typer.Option("--out", help="Output folder.", show_default=False)],
    sparse: Annotated[Path | None, typer.Option(
        "--sparse", help="Sparse depth: 16-bit PNG (m x 256) or .npy (m), image-sized.",
        show_default=False)] = None,
    velodyne: Annotated[Path | None, typer.Option(
        "--velodyne", help="Velodyne .bin scan (float32 x,y,z,r), projected with --calib.",
        show_default=False)] = None,
    camera: Annotated[int, typer.Option("--camera", help="Camera of --calib: 2 or 3.")] = 2,
    ply: Annotated[bool, typer.Option(
        "--ply", help="Also write a coloured point cloud (.ply, open3d).")] = False,
    max_depth: Annotated[float, typer.Option(
        "--max-depth", help="Depth (m) at the cold end of the colour map; 0 = 99th pct.")] = 0.0,
    device: Annotated[str, _device_option()] = "auto",
    use_ema: Annotated[bool, typer.Option(
        "--ema/--no-ema", help="Use the checkpoint's EMA weights when it has them.")] = True,
) -> None:
    """Complete depth for your own image + LiDAR: 16-bit PNG, .npy, colourised PNG (+ .ply).

    The 16-bit PNG (metres x 256, KITTI's format) stops at 65535 / 256 = 255.996 m: deeper
    pixels are clipped there, with a warning counting them; the .npy keeps the float
    values. The colourised PNG has a colour bar in metres under it.
    """
    from train.engine.distributed import parse_device
    from train.infer.complete import complete_frame, load_inputs
    from train.infer.predict import load_model

    inputs = load_inputs(image, calib, sparse, velodyne, camera)
    torch_device = parse_device(device)
    paths = complete_frame(load_model(ckpt, torch_device, use_ema), inputs, out, image.stem,
                           torch_device, ply, max_depth or None)
    for kind, path in paths.items():
        typer.echo(f"{kind}: {path}")
