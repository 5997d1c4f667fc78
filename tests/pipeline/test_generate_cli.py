"""``dmd3c generate`` / ``teach`` options derived from the config dataclasses, help at 80
columns, stdout kept for results, per-sample progress, and the teach lease (no Ray here)."""

from __future__ import annotations

import dataclasses
import io
import os
import sys
import time
import typing
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import typer
from tqdm import tqdm
from typer.testing import CliRunner

from data_schemas.errors import ConfigError, StoreBusyError
from data_schemas.lease import LEASE_NAME, LeaseRecord
from dmd3c.cli import app
from pipeline.cli import (
    GENERATE_OPTIONS,
    TEACH_OPTIONS,
    stdout_to_stderr,
)
from pipeline.config_options import Naming, build_config, derive_options, field_docs
from pipeline.corpus import CanvasConfig, CorpusConfig, ShardPlan, list_corpus
from pipeline.generate import (
    GenerateConfig,
    GenerateSummary,
    ShardContext,
    decode_shard,
    simulate_shard,
)
from pipeline.orchestrate import ShardProgress, _show
from pipeline.sensors import load_sensor
from pipeline.simulate import SimConfig
from pipeline.teach import TeachConfig, run_teach
from pipeline.teacher import TeacherConfig
from tests.pipeline.generate_fixtures import CANVAS, make_corpus, png_bytes, scene_image


def leaf_paths(cls: type, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every leaf field of a dataclass tree (written here independently of the CLI code)."""
    hints = typing.get_type_hints(cls)
    found = []
    for spec in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[spec.name]):
            found += leaf_paths(hints[spec.name], (*path, spec.name))
        else:
            found.append((*path, spec.name))
    return found


def parse(args: list[str], name: str = "generate") -> dict[str, object]:
    command = typer.main.get_command(app).commands[name]  # type: ignore[attr-defined]
    return command.make_context(name, args).params


@pytest.mark.parametrize(("cls", "options"), [(GenerateConfig, GENERATE_OPTIONS),
                                              (TeachConfig, TEACH_OPTIONS)])
def test_every_config_field_is_an_option(cls: type, options: list) -> None:
    assert sorted(o.path for o in options) == sorted(leaf_paths(cls))
    flags = [o.flag for o in options]
    assert len(flags) == len(set(flags))
    assert {o.path[:2] for o in options if o.hidden} <= {("run", "fault")}


def test_defaults_are_the_dataclass_defaults() -> None:
    cfg = build_config(GenerateConfig, GENERATE_OPTIONS, parse(["--store", "s.zarr"]))
    assert cfg == GenerateConfig(store="s.zarr")
    teach = build_config(TeachConfig, TEACH_OPTIONS, parse(["--kitti", "k", "--out", "o"],
                                                           "teach"))
    assert teach == TeachConfig(kitti="k", out="o")


def test_options_land_in_their_fields() -> None:
    cfg = build_config(GenerateConfig, GENERATE_OPTIONS, parse([
        "--store", "s.zarr", "--corpus", "a", "--corpus", "b", "--include", "*.png",
        "--height", "100", "--teacher-input-size", "56", "--teacher-precision", "fp32",
        "--sensor", "vlp16", "--beams", "8", "--raycast-backend", "embree",
        "--jitter-rotation-std-deg", "0.5", "--intrinsics-hfov-deg", "50", "70",
        "--metric-max-depth-m", "80", "--no-progress", "--break-lease", "--workers", "2",
        "--fault-shard-delay", "1.5"]))
    assert cfg.corpus == CorpusConfig(("a", "b"), ("*.png",))
    assert cfg.canvas == CanvasConfig(height=100)
    assert cfg.teacher_run == TeacherConfig(input_size=56, precision="fp32")
    assert (cfg.sensor.preset, cfg.sensor.beams, cfg.sim.backend) == ("vlp16", 8, "embree")
    assert cfg.sim.jitter.rotation_std_deg == 0.5 and cfg.intrinsics.hfov_deg == (50.0, 70.0)
    assert cfg.metric.max_depth_m == 80.0 and cfg.run.workers == 2
    assert not cfg.run.progress and cfg.run.break_lease and cfg.run.fault.shard_delay_s == 1.5


def test_help_text_is_the_field_docstring() -> None:
    by_flag = {o.flag: o for o in GENERATE_OPTIONS}
    assert by_flag["--height"].help.startswith("Canvas height (px); 352 x 1216 is the KITTI")
    assert by_flag["--teacher-batch-size"].help == "Images per forward pass."
    assert "Presets: " in by_flag["--sensor"].help and "vlp16" in by_flag["--sensor"].help


@dataclass(frozen=True)
class _Inner:
    size: int = 3
    """How big."""
    mode: typing.Literal["a", "b"] = "a"
    """Which mode."""


@dataclass(frozen=True)
class _Outer:
    name: str
    """The name."""
    inner: _Inner = field(default_factory=_Inner)
    scale: tuple[float, float] = (1.0, 2.0)
    tags: tuple[str, ...] = ()
    """Tags (repeatable)."""
    limit: int | None = None
    """Optional limit."""


def test_a_new_field_becomes_an_option_by_itself() -> None:
    options = derive_options(_Outer, Naming())
    by_flag = {o.flag: o for o in options}
    assert sorted(by_flag) == ["--inner-mode", "--inner-size", "--limit", "--name", "--scale",
                               "--tags"]
    assert by_flag["--inner-size"].help == "How big." and by_flag["--inner-size"].default == 3
    assert by_flag["--inner-mode"].help == "Which mode. One of: a, b."
    assert by_flag["--name"].default is dataclasses.MISSING
    built = build_config(_Outer, options, {"name": "x", "inner__size": 5, "tags": ["p", "q"],
                                           "scale": (3.0, 4.0), "limit": None})
    assert built == _Outer("x", _Inner(5), (3.0, 4.0), ("p", "q"))


def test_option_name_clash_is_refused() -> None:
    with pytest.raises(TypeError, match=r"\['--size'\]"):
        derive_options(_Outer, Naming(names={"limit": "--size"}, unprefixed=frozenset({"inner"})))


def test_field_docs_reads_the_strings_under_fields() -> None:
    assert field_docs(SimConfig)["backend"] == "Ray-cast backend: fast | embree | open3d."
    assert field_docs(_Outer) == {"name": "The name.", "tags": "Tags (repeatable).",
                                  "limit": "Optional limit."}


def test_field_docs_of_nested_and_local_classes() -> None:
    class Holder:
        @dataclass(frozen=True)
        class Nested:
            depth: float = 1.0
            """Depth (m)."""

    @dataclass(frozen=True)
    class Local:
        count: int = 2
        """How many ``items``."""

    assert field_docs(Holder.Nested) == {"depth": "Depth (m)."}
    assert field_docs(Local) == {"count": "How many items."}


@pytest.mark.parametrize("name", ["generate", "teach", "inspect"])
def test_help_is_readable_at_80_columns(name: str) -> None:
    result = CliRunner().invoke(app, [name, "--help"], env={"COLUMNS": "80"},
                                terminal_width=80)
    assert result.exit_code == 0, result.output
    assert max(len(line) for line in result.output.splitlines()) <= 80
    assert "…" not in result.output
    options = {"generate": GENERATE_OPTIONS, "teach": TEACH_OPTIONS}.get(name, [])
    for option in options:
        if not option.hidden:
            assert option.flag in result.output


def test_bad_value_is_a_config_error_quoting_it(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["generate", "--store", str(tmp_path / "s.zarr"),
                                      "--height", "4"])
    assert isinstance(result.exception, ConfigError)
    assert "--height 4" in str(result.exception)
    assert not (tmp_path / "s.zarr").exists()


def test_stdout_to_stderr_moves_writes_below_python_too(capfd: pytest.CaptureFixture) -> None:
    with stdout_to_stderr():
        print("python-level")
        os.write(sys.stdout.fileno(), b"fd-level\n")
    print("result")
    out, err = capfd.readouterr()
    assert out == "result\n"
    assert "python-level" in err and "fd-level" in err


def test_progress_counts_samples_and_retries() -> None:
    board = ShardProgress()
    board.start("decode", 0)
    board.start("finish", 0)
    for _ in range(2):
        board.advance(0)
    board.start("finish", 0)  # the worker died: the shard starts over
    board.advance(0)
    board.start("finish", 1)
    assert board.snapshot() == ({0: 1, 1: 0}, 1)


def test_progress_bar_moves_per_sample_and_back_on_a_retry() -> None:
    bar = tqdm(total=10, file=io.StringIO())
    summary = GenerateSummary("s", 3)
    _show(bar, {}, {0: 2}, summary)
    assert bar.n == 2
    _show(bar, {0: 4}, {0: 4, 1: 3}, summary)  # shard 0 done (4 items), shard 1 at 3
    assert bar.n == 7
    _show(bar, {0: 4}, {0: 4, 1: 0}, summary)  # shard 1 retried
    assert bar.n == 4


def test_simulation_reports_each_sample(tmp_path: Path) -> None:
    make_corpus(tmp_path, 3)
    items = list_corpus(CorpusConfig((str(tmp_path),)))
    decoded = decode_shard(ShardPlan(0, tuple(items)), CANVAS)
    rows, cols = CANVAS.height, CANVAS.width
    raw = np.broadcast_to(np.linspace(0.1, 1.0, rows)[None, :, None], (3, rows, cols)).copy()
    ctx = ShardContext("unused", "disparity", load_sensor("vlp16"), SimConfig(),
                       GenerateConfig("s").intrinsics, GenerateConfig("s").metric, 0,
                       GenerateConfig("s").run.fault)
    calls: list[int] = []
    batch = simulate_shard(decoded, raw.astype(np.float32), ctx, lambda: calls.append(1))
    assert len(calls) == 3 == len(batch["key"])  # type: ignore[arg-type]


def test_teach_refuses_a_store_leased_by_a_live_job(tmp_path: Path) -> None:
    image = tmp_path / "kitti" / "val_selection_cropped" / "image" / "a.png"
    image.parent.mkdir(parents=True)
    image.write_bytes(png_bytes(scene_image(1)))
    out = tmp_path / "maps.zarr"
    out.mkdir()
    now = time.time()
    (out / LEASE_NAME).write_bytes(LeaseRecord("bob@far:9:x", "dmd3c teach", "bob", "far", 9,
                                               None, now - 50, now - 1).to_json())
    cfg = TeachConfig(str(tmp_path / "kitti"), str(out), "tiny-random",
                      TeacherConfig(input_size=42), progress=False)
    with pytest.raises(StoreBusyError, match="in use by dmd3c teach of bob@far pid 9"):
        run_teach(cfg)
    assert sorted(p.name for p in out.iterdir()) == [LEASE_NAME]
    summary = run_teach(dataclasses.replace(cfg, break_lease=True))
    assert summary.written == 1 and not (out / LEASE_NAME).exists()
