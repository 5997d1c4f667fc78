"""``dmd3c`` sub-commands of the data-generation room (generate, teach).

Their options are derived from the config dataclasses (:mod:`pipeline.config_options`):
``GenerateConfig`` and ``TeachConfig`` (:mod:`pipeline.generate_config`,
:mod:`pipeline.teach_config`) with every nested config; names, defaults and help
come from the fields, so a field added there is an option here.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import sys
from collections.abc import Iterator
from typing import Annotated, Any

import typer

from pipeline.config_options import (
    Naming,
    SectionedCommand,
    build_config,
    command,
    derive_options,
)
from pipeline.generate_config import GenerateConfig
from pipeline.sensors import known_sensors
from pipeline.teach_config import TeachConfig
from pipeline.teacher import TEACHERS


def _teacher_names() -> str:
    """The registry, sizes folded: ``depth-anything-v2-{small,base,large}, ...``."""
    stems: dict[str, list[str]] = {}
    for name in TEACHERS:
        stem, _, size = name.rpartition("-")
        if size in ("small", "base", "large"):
            stems.setdefault(stem, []).append(size)
        else:
            stems.setdefault(name, [])
    folded = [f"{stem}-{{{','.join(sizes)}}}" if sizes else stem
              for stem, sizes in stems.items()]
    return "Registry: " + ", ".join(folded) + " (tiny-random: random weights, for tests)."


def _sensor_names() -> str:
    return "Presets: " + ", ".join(known_sensors()) + "."


_TEACHER_PANEL = "Teacher"
GENERATE_NAMING = Naming(
    names={"corpus.roots": "--corpus", "sensor.preset": "--sensor",
           "sim.backend": "--raycast-backend", "run.fault.shard_delay_s": "--fault-shard-delay"},
    prefixes={"teacher_run": "teacher-", "run.fault": "fault-"},
    unprefixed=frozenset({"corpus", "canvas", "sensor", "sim", "run"}),
    panels={"store": "Store", "seed": "Store", "shard_size": "Store", "corpus": "Corpus",
            "canvas": "Canvas", "teacher": _TEACHER_PANEL, "teacher_run": _TEACHER_PANEL,
            "sensor": "LiDAR simulation", "sim": "LiDAR simulation",
            "intrinsics": "Camera and metric depth", "metric": "Camera and metric depth",
            "run": "Running (Ray)"},
    hidden=frozenset({"run.fault"}),
    extra_help={"teacher": _teacher_names, "sensor.preset": _sensor_names},
)
TEACH_NAMING = Naming(
    prefixes={"teacher_run": "teacher-"},
    panels={"kitti": "Input and output", "out": "Input and output", "include": "Input and output",
            "teacher": _TEACHER_PANEL, "teacher_run": _TEACHER_PANEL},
    default_panel="Running",
    extra_help={"teacher": _teacher_names},
)
GENERATE_OPTIONS = derive_options(GenerateConfig, GENERATE_NAMING)
TEACH_OPTIONS = derive_options(TeachConfig, TEACH_NAMING)

_JSON = inspect.Parameter(
    "as_json", inspect.Parameter.KEYWORD_ONLY, default=False,
    annotation=Annotated[bool, typer.Option(
        "--json", help="Print the summary as JSON (stdout then carries only the JSON).",
        rich_help_panel="Store")])


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send everything written to stdout meanwhile (Ray's ``(raylet) ...`` lines included,
    also those written below Python) to stderr, so that stdout carries only results."""
    sys.stdout.flush()
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # an in-memory stdout (tests)
        fd = -1
    saved = os.dup(fd) if fd >= 0 else -1
    if fd >= 0:
        os.dup2(sys.stderr.fileno(), fd)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        if saved >= 0:
            os.dup2(saved, fd)
            os.close(saved)


def _generate(as_json: bool, **values: Any) -> None:
    from pipeline.job import run_generate

    cfg = build_config(GenerateConfig, GENERATE_OPTIONS, values)
    with stdout_to_stderr():
        summary = run_generate(cfg)
    typer.echo(json.dumps(summary.to_json(), indent=1) if as_json
               else "\n".join(summary.lines()))


def _teach(**values: Any) -> None:
    from pipeline.teach import run_teach

    cfg = build_config(TeachConfig, TEACH_OPTIONS, values)
    with stdout_to_stderr():
        summary = run_teach(cfg)
    typer.echo(f"teacher maps {summary.out}: {summary.written} written, {summary.already} "
               f"already complete, {summary.seconds:.1f} s")
    if cfg.align == "lidar":
        typer.echo(f"aligned to LiDAR: {summary.written - len(summary.unaligned)}, unaligned "
                   f"{len(summary.unaligned)}")
    for key, why in {**summary.unaligned, **summary.skipped}.items():
        typer.echo(f"  {key}: {why}")


generate_command = command(GENERATE_OPTIONS, _generate, extra=[_JSON], doc="""\
Generate a sharded sample store from an image corpus (teacher + simulated LiDAR, Ray).

Re-running the same command resumes: committed shards are kept, the rest redone; a store
already complete with the same config returns at once. One job per store: a second job
on the same store is refused while the first runs.""")

teach_command = command(TEACH_OPTIONS, _teach, doc="""\
Store teacher outputs of KITTI images at full resolution, keyed by image path.""")


def register(app: typer.Typer) -> None:
    """Add this room's sub-commands to the ``dmd3c`` app."""
    app.command("generate", cls=SectionedCommand)(generate_command)
    app.command("teach", cls=SectionedCommand)(teach_command)
