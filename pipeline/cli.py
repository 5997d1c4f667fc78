"""``dmd3c`` sub-commands of the data-generation room (generate, teach)."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer

from data_schemas import DEFAULT_SHARD_SIZE
from pipeline.corpus import DEFAULT_INCLUDE, CanvasConfig, CorpusConfig
from pipeline.simulate import SimConfig
from pipeline.teacher import DEFAULT_TEACHER, TeacherConfig
from pipeline.teachers.registry import TEACHERS

_TEACHER_HELP = (f"Registry name ({', '.join(TEACHERS)}; tiny-random = random-weight test "
                 f"teacher), a local folder (save_pretrained / huggingface-cli download) or a "
                 f"hub id of a transformers depth model.")

Teacher = Annotated[str, typer.Option("--teacher", help=_TEACHER_HELP)]
InputSize = Annotated[int, typer.Option(
    "--teacher-input-size", min=14, help="Shorter side of the teacher input, px (multiple of 14 "
    "after rounding; Depth Anything V2 native: 518).")]
TeacherBatch = Annotated[int, typer.Option("--teacher-batch-size", min=1,
                                           help="Images per teacher forward pass.")]
Device = Annotated[str, typer.Option("--teacher-device", help="auto | cpu | cuda.")]
Precision = Annotated[str, typer.Option(
    "--teacher-precision", help="fp32 (default: the official inference) | bf16 | fp16 (opt-in: "
    "faster on GPU, ~1e-3 to 1e-2 relative difference).")]
PosEmbed = Annotated[str, typer.Option(
    "--teacher-pos-embed", help="DINOv2 position-embedding interpolation: official | "
    "transformers.")]
Prompt = Annotated[str, typer.Option(
    "--teacher-prompt", help="Depth prompt of Prompt Depth Anything: none | lidar (each "
    "image's KITTI LiDAR map, velodyne_raw).")]
Overwrite = Annotated[bool, typer.Option(
    "--overwrite", help="Replace an existing store made with a different config.")]
Progress = Annotated[bool, typer.Option("--progress/--no-progress",
                                        help="Progress bar on stderr.")]


def generate_command(
    store: Annotated[str, typer.Option("--store", help="Output store: path or fsspec URL.")],
    corpus: Annotated[list[str] | None, typer.Option(
        "--corpus", help="Image folder or fsspec URL (repeatable); 'builtin' = the "
        "scikit-image sample photographs.")] = None,
    include: Annotated[list[str] | None, typer.Option(
        "--include", help=f"Glob of files to use (repeatable, case-insensitive, matched "
        f"from the right of the relative path). Default: {' '.join(DEFAULT_INCLUDE)}.")] = None,
    exclude: Annotated[list[str] | None, typer.Option(
        "--exclude", help="Glob of files to leave out (repeatable).")] = None,
    teacher: Teacher = DEFAULT_TEACHER,
    sensor: Annotated[str, typer.Option(
        "--sensor", help="LiDAR preset in configs/sensors (hdl64e, hdl64e-nonuniform, "
        "vlp32c, vlp16, os1-64, os1-128) or a YAML path.")] = "hdl64e",
    beams: Annotated[int | None, typer.Option(
        "--beams", help="Thin the sensor to this many lasers (64/32/16/8...).")] = None,
    height: Annotated[int, typer.Option("--height", help="Canvas height, px.")] = 352,
    width: Annotated[int, typer.Option("--width", help="Canvas width, px.")] = 1216,
    shard_size: Annotated[int, typer.Option(
        "--shard-size", min=1, help="Samples per shard (unit of work and commit).")
    ] = DEFAULT_SHARD_SIZE,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Global seed.")] = 0,
    backend: Annotated[str, typer.Option(
        "--raycast-backend", help="fast | embree | open3d.")] = "fast",
    input_size: InputSize = 518,
    teacher_batch: TeacherBatch = 4,
    device: Device = "auto",
    precision: Precision = "fp32",
    pos_embed: PosEmbed = "official",
    prompt: Prompt = "none",
    address: Annotated[str | None, typer.Option(
        "--address", help="Ray cluster (host:port, ray://host:port, auto). Default: "
        "RAY_ADDRESS, else an embedded single-node Ray.")] = None,
    workers: Annotated[int | None, typer.Option(
        "--workers", min=1, help="Embedded Ray: concurrent CPU tasks (default: all cores).")
    ] = None,
    teacher_actors: Annotated[int | None, typer.Option(
        "--teacher-actors", min=1, help="Teacher actors (default: one per GPU, 1 on CPU).")
    ] = None,
    teacher_cpus: Annotated[float | None, typer.Option(
        "--teacher-cpus", min=0.0, help="CPUs reserved per teacher actor (default 0.5 with a "
        "GPU, 1 on CPU).")] = None,
    retries: Annotated[int, typer.Option(
        "--retries", min=0, help="Ray retries of a task/actor whose process died.")] = 3,
    overwrite: Overwrite = False,
    progress: Progress = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    fault_kill_shard: Annotated[int, typer.Option("--fault-kill-shard", hidden=True)] = -1,
    fault_marker: Annotated[str, typer.Option("--fault-marker", hidden=True)] = "",
    fault_delay: Annotated[float, typer.Option("--fault-shard-delay", hidden=True)] = 0.0,
) -> None:
    """Generate a sharded sample store from an image corpus (teacher + simulated LiDAR, Ray).

    Re-running the same command resumes: committed shards are kept, the rest redone.
    """
    from pipeline.generate import FaultInjection, GenerateConfig, RunConfig, SensorChoice
    from pipeline.orchestrate import run_generate

    cfg = GenerateConfig(
        store=store,
        corpus=CorpusConfig(tuple(corpus or ("builtin",)), tuple(include or DEFAULT_INCLUDE),
                            tuple(exclude or ())),
        canvas=CanvasConfig(height, width), teacher=teacher,
        teacher_run=TeacherConfig(input_size, teacher_batch, device, precision, pos_embed,
                                  prompt),
        sensor=SensorChoice(sensor, beams), sim=SimConfig(backend=backend), seed=seed,
        shard_size=shard_size,
        run=RunConfig(address=address, workers=workers, teacher_actors=teacher_actors,
                      teacher_cpus=teacher_cpus, retries=retries, overwrite=overwrite,
                      progress=progress,
                      fault=FaultInjection(fault_kill_shard, fault_marker, fault_delay)),
    )
    summary = run_generate(cfg)
    if as_json:
        body = asdict(summary)
        body["skipped"] = [asdict(s) for s in summary.skipped]
        body.update(samples_per_s=summary.samples_per_s, skip_reasons=summary.skip_reasons())
        typer.echo(json.dumps(body, indent=1))
    else:
        typer.echo("\n".join(summary.lines()))


def teach_command(
    kitti: Annotated[str, typer.Option("--kitti", help="KITTI root (raw/, "
                                       "val_selection_cropped/, test_depth_completion_"
                                       "anonymous/).")],
    out: Annotated[str, typer.Option("--out", help="Output teacher-map store (Zarr).")],
    teacher: Teacher = DEFAULT_TEACHER,
    include: Annotated[list[str] | None, typer.Option(
        "--include", help="Image globs under the root (repeatable). Default: raw image_02/03 "
        "and the image/ folders of val_selection_cropped and test_depth_completion_"
        "anonymous.")] = None,
    input_size: InputSize = 518,
    teacher_batch: TeacherBatch = 4,
    device: Device = "auto",
    precision: Precision = "fp32",
    pos_embed: PosEmbed = "official",
    prompt: Prompt = "none",
    overwrite: Overwrite = False,
    progress: Progress = True,
    align: Annotated[str, typer.Option(
        "--align", help="none | lidar: also store each map fitted to its frame's LiDAR "
        "(robust affine fit; metric depth + scale, shift, inliers, residual).")] = "none",
) -> None:
    """Store teacher outputs of KITTI images at full resolution, keyed by image path."""
    from pipeline.teach import KITTI_IMAGES, TeachConfig, run_teach

    summary = run_teach(TeachConfig(
        kitti, out, teacher, TeacherConfig(input_size, teacher_batch, device, precision,
                                           pos_embed, prompt),
        tuple(include or KITTI_IMAGES), overwrite, progress, align))
    typer.echo(f"teacher maps {summary.out}: {summary.written} written, {summary.already} "
               f"already complete, {summary.seconds:.1f} s")
    if align == "lidar":
        typer.echo(f"aligned to LiDAR: {summary.written - len(summary.unaligned)}, unaligned "
                   f"{len(summary.unaligned)}")
    for key, why in {**summary.unaligned, **summary.skipped}.items():
        typer.echo(f"  {key}: {why}")


def register(app: typer.Typer) -> None:
    """Add this room's sub-commands to the ``dmd3c`` app."""
    app.command("generate")(generate_command)
    app.command("teach")(teach_command)
