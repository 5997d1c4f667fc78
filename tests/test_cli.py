"""The error contract of the ``dmd3c`` command: user errors are one line (exit 2), bugs keep
their traceback (exit 1)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from data_schemas.errors import (
    CheckpointError,
    ConfigError,
    DmdError,
    InputError,
    InputNotFoundError,
    SchemaVersionError,
    StoreBusyError,
    StoreError,
    TrainingError,
)
from dmd3c.cli import run_guarded


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("error", [
    ConfigError("engine.steps=-5 must be >= 1"),
    InputError("bad.png: not an image"),
    InputNotFoundError("missing.png: no such file"),
    StoreError("s.zarr", "no zarr.json"),
    CheckpointError("x.pt", "not a checkpoint"),
    TrainingError("loss became NaN at step 3"),
])
def test_user_error_is_one_line_and_exit_status_2(error: DmdError,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    def fail() -> None:
        raise error

    with pytest.raises(SystemExit) as exit_info:
        run_guarded(fail)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err == f"dmd3c: error: {error}\n"


def test_a_bug_propagates_with_its_type() -> None:
    def bug() -> None:
        raise ValueError("internal invariant broken")

    with pytest.raises(ValueError, match="internal invariant"):
        run_guarded(bug)


def test_subprocess_user_error_vs_bug() -> None:
    user = _run("from dmd3c.cli import main; import sys; sys.argv=['dmd3c', 'inspect', "
                "'/nonexistent/store.zarr']; main()")
    assert user.returncode == 2, user.stderr
    assert user.stderr.startswith("dmd3c: error: ") and user.stderr.count("\n") == 1
    assert "Traceback" not in user.stderr
    bug = _run("from dmd3c.cli import run_guarded; run_guarded(lambda: 1 / 0)")
    assert bug.returncode == 1
    assert "Traceback" in bug.stderr and "ZeroDivisionError" in bug.stderr


def test_hierarchy_keeps_the_builtin_types_callers_catch() -> None:
    assert issubclass(ConfigError, ValueError) and issubclass(InputError, ValueError)
    assert issubclass(InputNotFoundError, FileNotFoundError)
    assert issubclass(SchemaVersionError, StoreError) and issubclass(StoreBusyError, StoreError)
    assert issubclass(TrainingError, RuntimeError)
    assert str(StoreError("s.zarr", "broken")) == "s.zarr: broken"


HEAVY = frozenset({"torch", "ray", "dask", "transformers", "open3d", "cv2", "scipy", "zarr"})
"""Libraries that only a command's work may load, never the command line itself."""

START_UP = """
import json, sys
import click, typer.main
from dmd3c.cli import app

root = typer.main.get_command(app)
ctx = click.Context(root, info_name="dmd3c")
root.get_help(ctx)
for name in root.list_commands(ctx):
    command = root.get_command(ctx, name)
    command.get_help(click.Context(command, info_name=name, parent=ctx))
generate = root.get_command(ctx, "generate")
parsed = generate.make_context("generate", ["--store", "s.zarr", "--teacher", "tiny-random",
                                            "--beams", "32"], parent=ctx)
assert parsed.params["sensor__beams"] == 32, parsed.params
print(json.dumps(sorted(sys.modules)))
"""


def test_help_and_option_parsing_load_no_heavy_library() -> None:
    """The app, every command's help and option parsing need only light modules; torch,
    Ray, zarr... load when a command runs (``dmd3c --help`` starts in about a second)."""
    done = _run(START_UP)
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout))
    assert "pipeline.generate_config" in loaded and "train.stage1.cli" in loaded
    heavy = sorted({m.split(".")[0] for m in loaded} & HEAVY)
    assert not heavy, (f"the command line imports {heavy}: import them inside the command "
                       f"that needs them (or under TYPE_CHECKING for annotations)")
