"""``dmd3c`` sub-commands for real data: finetune, evaluate, export, complete."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the real-data sub-commands to the ``dmd3c`` app."""
