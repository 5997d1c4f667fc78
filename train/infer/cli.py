"""``dmd3c`` sub-commands for real data: finetune, evaluate, export, complete.

User errors raise data_schemas.errors.DmdError with a one-line message; ``dmd3c.cli``
prints ``dmd3c: error: ...`` and exits with status 2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from data_schemas.errors import ConfigError


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def finetune_command(
    kitti: Annotated[str, typer.Option(
        "--kitti", help="KITTI root: data_depth_annotated/, data_depth_velodyne/, raw/, "
                        "val_selection_cropped/ (see docs/reproduce_kitti.md).",
        show_default=False)] = "",
    teacher_maps: Annotated[str, typer.Option(
        "--teacher-maps", help="Teacher maps of the KITTI images written by `dmd3c teach`.",
        show_default=False)] = "",
    nyu: Annotated[str, typer.Option(
        "--nyu", help="Fine-tune on NYUv2 instead: root with train/ and val/ HDF5 files "
                      "(with loss.ssi=none).", show_default=False)] = "",
    init: Annotated[str, typer.Option(
        "--init", help="Stage-1 checkpoint (our last.pt) or a released BP-Net/DMD3C "
                       "{'net': ...} file to start from.", show_default=False)] = "",
    out: Annotated[Path, typer.Option(
        "--out", help="Run directory: config.yaml, last.pt, tb/ (TensorBoard).",
        show_default=False)] = Path("runs/finetune"),
    overrides: Annotated[list[str] | None, typer.Argument(
        metavar="[KEY=VALUE]...",
        help="Config overrides (OmegaConf dotlist), e.g. engine.steps=100 loss.ssi=rpnl "
             "data.crop=[256,512]. See --print-config for every key.",
        show_default=False)] = None,
    config: Annotated[Path | None, typer.Option(
        "--config", help="YAML merged over the defaults (e.g. configs/finetune.yaml).",
        show_default=False)] = None,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Continue the run in --out from its last.pt.")] = False,
    print_config: Annotated[bool, typer.Option(
        "--print-config", help="Print the resolved config as YAML and exit.")] = False,
) -> None:
    """Stage-2 fine-tuning on KITTI: BP-Net's multi-scale GT loss + SSI loss to the teacher
    (or on NYUv2 with --nyu).

    Runs as one process on CPU or one GPU, or under `torchrun --nproc_per_node=N` (DDP).
    """
    from train.engine import to_yaml
    from train.finetune import finetune, resolve_config

    cfg = resolve_config(kitti, teacher_maps, init, out, config, overrides or [], resume, nyu)
    if print_config:
        typer.echo(to_yaml(cfg), nl=False)
        return
    if not cfg.kitti and not cfg.nyu:
        raise ConfigError("--kitti ROOT (or --nyu ROOT) is required")
    state = finetune(out, cfg, resume=resume)  # TrainingError: one line, exit 2
    typer.echo(f"dmd3c finetune: {state.step} steps done; checkpoint {out / 'last.pt'}")


def _device_option() -> object:
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
    from train.evaluate import evaluate_kitti, load_model, parse_crop_option, parse_device
    from train.kitti.beams import parse_beams
    from train.kitti.layout import find_frames, parse_split

    torch_device = parse_device(device)
    beam_list = parse_beams(beams)
    window = parse_crop_option(crop)
    if dataset == "nyu":
        from train.nyu import evaluate_nyu, find_nyu_files

        if nyu is None:
            raise ConfigError("--dataset nyu needs --nyu ROOT")
        files = find_nyu_files(nyu, "val")
        files = files[:limit] if limit else files
        report = evaluate_nyu(load_model(ckpt, torch_device, use_ema), files, torch_device)
    elif dataset == "kitti":
        if kitti is None:
            raise ConfigError("--kitti ROOT is required (or --dataset nyu --nyu ROOT)")
        frames = find_frames(kitti, parse_split(split))
        frames = frames[:limit] if limit else frames
        model = load_model(ckpt, torch_device, use_ema)
        report = evaluate_kitti(model, frames, torch_device, beam_list,
                                progress=None if as_json else _stderr, crop=window)
        report["split"] = split
    else:
        raise ConfigError(f"unknown --dataset {dataset!r}; choose one of kitti, nyu")
    _print_report(report, as_json)


def _print_report(report: dict[str, object], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    from train.metrics import format_metrics

    groups = report.get("beams") or {"": report.get("metrics")}
    for beams, metrics in groups.items():  # type: ignore[union-attr]
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
    from train.evaluate import load_model, parse_device
    from train.export import export_frames
    from train.kitti.layout import find_frames, parse_split

    if parse_split(split) not in ("test", "selval"):
        raise ConfigError(f"export writes the flat benchmark sets; --split must be test or "
                         f"selval, got {split!r}")
    torch_device = parse_device(device)
    frames = find_frames(kitti, split)
    summary = export_frames(load_model(ckpt, torch_device, use_ema), frames, out, torch_device,
                            progress=_stderr)
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
    """Complete depth for your own image + LiDAR: 16-bit PNG, .npy, colourised PNG (+ .ply)."""
    from train.complete import complete_frame, load_inputs
    from train.evaluate import load_model, parse_device

    inputs = load_inputs(image, calib, sparse, velodyne, camera)
    torch_device = parse_device(device)
    paths = complete_frame(load_model(ckpt, torch_device, use_ema), inputs, out, image.stem,
                           torch_device, ply, max_depth or None)
    for kind, path in paths.items():
        typer.echo(f"{kind}: {path}")


def register(app: typer.Typer) -> None:
    """Add the real-data sub-commands to the ``dmd3c`` app."""
    app.command("finetune")(finetune_command)
    app.command("evaluate")(evaluate_command)
    app.command("export")(export_command)
    app.command("complete")(complete_command)
