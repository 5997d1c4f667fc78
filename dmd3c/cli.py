"""``dmd3c`` command line: sub-commands from ``data_schemas``, ``pipeline`` and ``train``.

User errors (:class:`data_schemas.errors.DmdError`: bad paths, malformed stores, invalid
options) print one line to stderr and exit with status 2, without a traceback. Any other
exception is a bug: it keeps its traceback and exits with status 1. Progress messages and
warnings of the rooms go through :mod:`logging` to stderr; results go to stdout.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

import typer

import pipeline.cli
import train.cli
from data_schemas.cli import inspect_command, migrate_command
from data_schemas.errors import DmdError

app = typer.Typer(
    name="dmd3c",
    help="Depth completion by distilling a monocular foundation model (DMD3C).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,  # plain click help: wraps at any width, never cuts option names
)
app.command("inspect")(inspect_command)
app.command("migrate")(migrate_command)
pipeline.cli.register(app)
train.cli.register(app)


@app.callback()
def _root() -> None:
    """Depth completion by distilling a monocular foundation model (DMD3C)."""

def run_guarded(entry: Callable[[], object]) -> None:
    """Run ``entry``; a :class:`DmdError` becomes ``dmd3c: error: ...`` and exit status 2.

    Anything else propagates: Python prints its traceback and exits with status 1.
    """
    try:
        entry()
    except DmdError as err:
        print(f"dmd3c: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None


ROOMS = ("data_schemas", "pipeline", "train")


def configure_logging() -> None:
    """Our rooms' INFO messages and everyone's warnings to stderr, one line each."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    for room in ROOMS:
        logging.getLogger(room).setLevel(logging.INFO)


def main() -> None:
    """Console-script entry point."""
    configure_logging()
    run_guarded(lambda: app(standalone_mode=True))


if __name__ == "__main__":
    main()
