"""Every ``dmd3c`` sub-command's ``--help`` is readable at 80 columns: no line longer, no
option name or help cut (no ellipsis), every option listed and every default shown."""

from __future__ import annotations

import re

import pytest
import typer.main
from typer.core import TyperGroup, TyperOption
from typer.testing import CliRunner

from dmd3c.cli import app

COMMANDS = typer.main.get_command(app)
assert isinstance(COMMANDS, TyperGroup)


def help_text(name: str) -> str:
    result = CliRunner().invoke(app, [name, "--help"], env={"COLUMNS": "80"},
                                terminal_width=80)
    assert result.exit_code == 0, result.output
    return result.output


def option_blocks(text: str) -> dict[str, str]:
    """Each option's help (its lines joined) by every flag of its first line; an option's
    lines are its first line (``  --flag ...``) and the deeper-indented lines after it."""
    blocks: dict[str, str] = {}
    flags: list[str] = []
    for line in text.splitlines():
        if re.match(r"^  -", line):
            flags = re.findall(r"--?[\w-]+", re.split(r"\s{2,}", line.strip())[0])
        elif not re.match(r"^   +\S", line):
            flags = []
        for flag in flags:
            blocks[flag] = " ".join(f"{blocks.get(flag, '')} {line}".split())
    return blocks


def shown_defaults(command: typer.main.TyperCommand | TyperGroup) -> list[TyperOption]:
    """Options with a default worth showing (not a required value, empty or an off flag)."""
    return [p for p in command.params if isinstance(p, TyperOption) and not p.hidden
            and not p.required and p.default not in (None, "", False, (), [])]


def test_every_command_is_covered() -> None:
    assert {"pretrain", "finetune", "evaluate", "export", "complete", "generate", "teach",
            "inspect"} <= set(COMMANDS.commands)


@pytest.mark.parametrize("name", sorted(COMMANDS.commands))
def test_help_is_readable_at_80_columns(name: str) -> None:
    text = help_text(name)
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "…" not in text
    blocks = option_blocks(text)
    command = COMMANDS.commands[name]
    for param in command.params:
        if isinstance(param, TyperOption) and not param.hidden:
            assert param.opts[0] in blocks, (name, param.opts)
    for option in shown_defaults(command):
        assert "[default: " in blocks[option.opts[0]], (name, option.opts)
