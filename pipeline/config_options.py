"""Command-line options derived from config dataclasses: one option per field, nothing twice.

:func:`derive_options` walks a dataclass tree (``GenerateConfig`` -> ``canvas`` ->
``height``) and makes one option per leaf field: its name from the field path (a prefix
per nested group, e.g. ``--teacher-input-size`` for ``teacher_run.input_size``, unless an
explicit name is given), its default from the dataclass default, its help from the field
docstring (the string literal under the field, read from the class source). A field added
to a config dataclass becomes an option by itself. :func:`build_config` turns the parsed
values back into the dataclass tree; the dataclasses validate them (``__post_init__``).

Field types understood: bool, int, float, str, Path, ``X | None``, ``Literal[...]`` (shown
as text; the dataclass checks the value), ``tuple[X, ...]`` (a repeatable option) and
fixed ``tuple[X, X]`` (an option taking two values), nested dataclasses.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import linecache
import logging
import re
import tokenize
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from typer.core import TyperCommand

log = logging.getLogger(__name__)

_SCALARS = (bool, int, float, str, Path)
_METAVARS = {int: "INT", float: "FLOAT", str: "TEXT", Path: "PATH"}


@dataclass(frozen=True)
class Naming:
    """How options of one config tree are named, grouped and shown."""

    names: Mapping[str, str] = field(default_factory=dict)
    """Explicit option names by field path (``"sim.backend": "--raycast-backend"``)."""
    prefixes: Mapping[str, str] = field(default_factory=dict)
    """Name prefix by group path (``"teacher_run": "teacher-"``); groups not listed here
    nor in ``unprefixed`` get their field name (``jitter-``)."""
    unprefixed: frozenset[str] = frozenset()
    """Top-level groups whose fields are named by the field name alone."""
    panels: Mapping[str, str] = field(default_factory=dict)
    """Help section by top-level field name; others go to ``default_panel``."""
    default_panel: str = "Options"
    hidden: frozenset[str] = frozenset()
    """Field or group paths left out of ``--help`` (test-only faults)."""
    extra_help: Mapping[str, Callable[[], str]] = field(default_factory=dict)
    """Text appended to a field's docstring, computed when the help is built."""


@dataclass(frozen=True)
class Option:
    """One command-line option for the leaf field ``path`` of a config dataclass."""

    path: tuple[str, ...]
    flag: str
    """``--height``; booleans that default to True also get ``--no-...``."""
    annotation: Any
    """The type typer parses (lists for repeatable options)."""
    default: Any
    help: str
    panel: str
    hidden: bool

    @property
    def param(self) -> str:
        """The Python parameter name of the option (``canvas__height``)."""
        return "__".join(self.path)

    def typer_parameter(self) -> inspect.Parameter:
        decls = [f"{self.flag}/--no-{self.flag[2:]}"] if (
            self.annotation is bool and self.default is True) else [self.flag]
        info = typer.Option(*decls, help=self.help, rich_help_panel=self.panel,
                            hidden=self.hidden, metavar=_metavar(self.annotation),
                            show_default=self.default not in (None, (), []))
        default = ... if self.default is dataclasses.MISSING else self.default
        return inspect.Parameter(self.param, inspect.Parameter.KEYWORD_ONLY, default=default,
                                 annotation=Annotated[self.annotation, info])


def _metavar(annotation: Any) -> str | None:
    if annotation is bool:
        return None
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is tuple:
        return " ".join(_METAVARS.get(a, "VALUE") for a in args)
    inner = args[0] if typing.get_origin(annotation) is list else annotation
    return _METAVARS.get(_strip_none(inner), "VALUE")


def _strip_none(annotation: Any) -> Any:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if _is_union(annotation) and len(args) == 1:
        return args[0]
    return annotation


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


# -- reading the dataclasses -------------------------------------------------------------
def field_docs(cls: type) -> dict[str, str]:
    """Field name -> the docstring written under it in the class body (whitespace folded)."""
    node = _class_node(cls)
    docs: dict[str, str] = {}
    statements = node.body if node is not None else []
    for stmt, after in zip(statements, statements[1:], strict=False):
        if (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
                and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)):
            docs[stmt.target.id] = " ".join(after.value.value.replace("``", "").split())
    return docs


def _class_node(cls: type) -> ast.ClassDef | None:
    """The class statement of ``cls``. A top-level class is parsed alone (the option trees
    come from a dozen classes: parsing each whole file would be most of the CLI's start-up);
    a nested or local one is looked up in the parse of its whole file."""
    try:
        filename = inspect.getsourcefile(cls) or ""
    except TypeError:  # a built-in class
        return None
    lines = linecache.getlines(filename)
    alone = _top_level_class(lines, cls.__name__) if cls.__qualname__ == cls.__name__ else None
    return alone or _class_nodes(filename).get(cls.__qualname__)


def _top_level_class(lines: list[str], name: str) -> ast.ClassDef | None:
    """The first ``class <name>`` statement at the left margin of ``lines``, parsed alone."""
    header = re.compile(rf"class\s+{re.escape(name)}\s*[(:]")
    start = next((i for i, line in enumerate(lines) if header.match(line)), None)
    if start is None:
        return None
    try:
        body = ast.parse("".join(inspect.getblock(lines[start:]))).body
    except (SyntaxError, tokenize.TokenError):
        return None
    return body[0] if body and isinstance(body[0], ast.ClassDef) else None


@functools.cache
def _class_nodes(filename: str) -> dict[str, ast.ClassDef]:
    """Qualified name -> the first class statement of that name in the source file."""
    source = "".join(linecache.getlines(filename))
    found: dict[str, ast.ClassDef] = {}
    if source:
        _collect_classes(ast.parse(source).body, "", found)
    return found


def _collect_classes(body: list[ast.stmt], prefix: str, found: dict[str, ast.ClassDef]) -> None:
    for stmt in body:
        if isinstance(stmt, ast.ClassDef):
            found.setdefault(prefix + stmt.name, stmt)
            _collect_classes(stmt.body, f"{prefix}{stmt.name}.", found)
        elif isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
            _collect_classes(stmt.body, f"{prefix}{stmt.name}.<locals>.", found)


def _default(spec: dataclasses.Field[Any]) -> Any:
    if spec.default is not dataclasses.MISSING:
        return spec.default
    if spec.default_factory is not dataclasses.MISSING:
        return spec.default_factory()
    return dataclasses.MISSING


def cli_type(annotation: Any) -> Any | None:
    """The type typer parses for a field of type ``annotation``; None if not supported."""
    if annotation in _SCALARS:
        return annotation
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Literal:
        return str if all(isinstance(a, str) for a in args) else None
    if _is_union(annotation):
        inner = _strip_none(annotation)
        parsed = cli_type(inner) if inner is not annotation else None
        return parsed | None if parsed in _SCALARS else None
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis and args[0] in _SCALARS:
        return list[args[0]]  # type: ignore[valid-type]
    if origin is tuple and args and Ellipsis not in args and all(a in _SCALARS for a in args):
        return annotation
    return None


def _choices_help(annotation: Any) -> str:
    inner = _strip_none(annotation)
    if typing.get_origin(inner) is Literal:
        return "One of: " + ", ".join(str(a) for a in typing.get_args(inner)) + "."
    return ""


# -- deriving ----------------------------------------------------------------------------
def derive_options(cls: type, naming: Naming) -> list[Option]:
    """One :class:`Option` per supported leaf field of ``cls`` (depth first)."""
    options = list(_walk(cls, (), naming))
    flags = [o.flag for o in options]
    clashes = sorted({f for f in flags if flags.count(f) > 1})
    if clashes:
        raise TypeError(f"{cls.__name__}: option names {clashes} come from several fields; "
                        f"give them names or prefixes in the Naming")
    return options


def _walk(cls: type, path: tuple[str, ...], naming: Naming) -> list[Option]:
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    found: list[Option] = []
    for spec in dataclasses.fields(cls):
        here = (*path, spec.name)
        annotation = hints[spec.name]
        if dataclasses.is_dataclass(annotation):
            found += _walk(annotation, here, naming)  # type: ignore[arg-type]
            continue
        parsed = cli_type(annotation)
        if parsed is None:
            log.debug("%s: field type %s has no command-line form", ".".join(here), annotation)
            continue
        found.append(_option(here, parsed, annotation, _default(spec),
                             docs.get(spec.name, ""), naming))
    return found


def _option(path: tuple[str, ...], parsed: Any, annotation: Any, default: Any, doc: str,
            naming: Naming) -> Option:
    dotted = ".".join(path)
    flag = naming.names.get(dotted) or "--" + _prefix(path[:-1], naming) + _kebab(path[-1])
    extra = naming.extra_help.get(dotted)
    help_text = " ".join(t for t in (doc, _choices_help(annotation), extra() if extra else "")
                         if t)
    if typing.get_origin(parsed) is list and default is not dataclasses.MISSING:
        default = list(default)
    hidden = any(".".join(path[:i]) in naming.hidden for i in range(1, len(path) + 1))
    panel = naming.panels.get(path[0], naming.default_panel)
    return Option(path, flag, parsed, default, help_text, panel, hidden)


def _prefix(group: tuple[str, ...], naming: Naming) -> str:
    if not group:
        return ""
    dotted = ".".join(group)
    if dotted in naming.prefixes:
        return naming.prefixes[dotted]
    if len(group) == 1 and group[0] in naming.unprefixed:
        return ""
    return _prefix(group[:-1], naming) + _kebab(group[-1]) + "-"


def _kebab(name: str) -> str:
    return name.replace("_", "-")


# -- building back -----------------------------------------------------------------------
def build_config(cls: type, options: list[Option], values: Mapping[str, Any]) -> Any:
    """The ``cls`` tree with every option's value (by :attr:`Option.param`) in its place."""
    by_path = {o.path: values[o.param] for o in options if o.param in values}
    return _build(cls, (), by_path)


def _build(cls: type, path: tuple[str, ...], values: Mapping[tuple[str, ...], Any]) -> Any:
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for spec in dataclasses.fields(cls):
        here = (*path, spec.name)
        annotation = hints[spec.name]
        if dataclasses.is_dataclass(annotation):
            kwargs[spec.name] = _build(annotation, here, values)  # type: ignore[arg-type]
        elif here in values:
            value = values[here]
            kwargs[spec.name] = tuple(value) if isinstance(value, list | tuple) else value
    return cls(**kwargs)


# -- the command -------------------------------------------------------------------------
def command(options: list[Option], run: Callable[..., None], doc: str,
            extra: Sequence[inspect.Parameter] = ()) -> Callable[..., None]:
    """A typer command function taking every option (and ``extra`` parameters) as keyword
    arguments and calling ``run(**values)``."""

    def invoke(**values: Any) -> None:
        run(**values)

    invoke.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [o.typer_parameter() for o in options] + list(extra))
    invoke.__doc__ = doc
    return invoke


class SectionedCommand(TyperCommand):
    """Plain ``--help`` (readable at 80 columns: option names never cut), one section per
    help panel, in the order the options come."""

    def format_options(self, ctx: Any, formatter: Any) -> None:
        sections: dict[str, list[tuple[str, str]]] = {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is not None:
                panel = getattr(param, "rich_help_panel", None) or "Options"
                sections.setdefault(panel, []).append(record)
        for panel, rows in sections.items():
            with formatter.section(panel):
                formatter.write_dl(rows)
