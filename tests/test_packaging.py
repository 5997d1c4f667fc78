"""Project metadata stays consistent: environment.yml mirrors pyproject's dependencies."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def test_environment_yml_equals_pyproject_dependencies() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = set(project["dependencies"]) | set(project["optional-dependencies"]["test"])
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip_list = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert set(pip_list) - {"-e ."} == wanted


def test_readme_starts_with_the_two_commands() -> None:
    lines = [line.strip() for line in (REPO / "README.md").read_text().splitlines()]
    commands = [line for line in lines if line.startswith("make ")]
    assert commands[:2] == ["make generate-data", "make test"]
