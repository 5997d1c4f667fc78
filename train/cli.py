"""The training room's ``dmd3c`` sub-commands: pretrain (stage 1), finetune (stage 2),
evaluate, export and complete (inference)."""

from __future__ import annotations

import typer

from train.infer.cli import complete_command, evaluate_command, export_command
from train.stage1.cli import pretrain_command
from train.stage2.cli import finetune_command


def register(app: typer.Typer) -> None:
    """Add this room's sub-commands to the ``dmd3c`` app."""
    app.command("pretrain")(pretrain_command)
    app.command("finetune")(finetune_command)
    app.command("evaluate")(evaluate_command)
    app.command("export")(export_command)
    app.command("complete")(complete_command)
