"""``dmd3c`` sub-commands of the data-generation room (generate, teach)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this room's sub-commands to the ``dmd3c`` app."""
