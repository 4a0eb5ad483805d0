"""What every command group shares, built-in or plug-in: exit codes, the sub-command
scaffolding with lazily imported actions, and the output conventions (``--json`` or a table
with headers, one timestamp and one duration spelling).

This module is imported for ``certgate --help`` and for every argument error, so it imports
nothing but the standard library: no database, web or crypto stack (``tests/unit/
test_cli_imports.py`` runs the CLI in a subprocess to keep it so). Whatever a command needs is
imported by the command's action when it runs (:func:`action`).
"""

from __future__ import annotations

import argparse
import enum
import getpass
import importlib
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeAlias

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_PENDING, EXIT_DENIED = 0, 1, 2, 3, 4

#: A command's action: ``async (opened, argparse.Namespace) -> exit code``, where ``opened`` is
#: what its :class:`Opens` level asked for (:mod:`gateway.cli.opening`).
Command: TypeAlias = Callable[[Any, argparse.Namespace], Awaitable[int]]
#: What ``register`` functions add their sub-commands to.
SubParsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


class Opens(enum.Enum):
    """What a command needs opened before its action runs; each level includes the ones above.

    A listing should not pay for (or be refused because of) a CA it never touches: only
    ``GATEWAY`` opens the CA connectors (and with them the CA keys).
    """

    #: The configuration and the certificate templates; no data directory, no database.
    TEMPLATES = "templates"
    #: The store of an existing gateway, its schema at the version this certgate expects
    #: (checked read-only, never migrated); no CA. Gets ``.config`` and ``.store``.
    STORE = "store"
    #: Everything the server builds (:class:`gateway.server.wiring.Components`).
    GATEWAY = "gateway"


def action(
    parser: argparse.ArgumentParser, target: str, opens: Opens = Opens.GATEWAY
) -> argparse.ArgumentParser:
    """Make ``parser`` run ``target`` (``"package.module:function"``, imported only when the
    command runs, so that ``certgate --help`` imports none of it) on what ``opens`` names."""
    module, _, name = target.partition(":")
    if not module or not name:
        raise ValueError(f"action target {target!r} is not 'module:function'")
    parser.set_defaults(func=target, opens=opens)
    return parser


def load_action(func: str | Command) -> Command:
    """The callable behind an :func:`action` target (plug-ins may still set a callable)."""
    if callable(func):
        return func
    module, _, name = func.partition(":")
    loaded: Command = getattr(importlib.import_module(module), name)
    return loaded


def command_group(
    sub: SubParsers, common: argparse.ArgumentParser, name: str, help_: str
) -> SubParsers:
    """``certgate <name> <action>``: a group whose actions are added to the returned parsers."""
    p = sub.add_parser(name, parents=[common], help=help_, description=help_)
    return p.add_subparsers(dest="action", required=True, metavar="ACTION")


def subcommand(
    sub: SubParsers, common: argparse.ArgumentParser, name: str, help_: str
) -> argparse.ArgumentParser:
    """One action of a group, with its help text (shown in the group's ``--help``)."""
    return sub.add_parser(name, parents=[common], help=help_, description=help_)


def group_actions(sub: SubParsers, name: str) -> SubParsers:
    """The actions of the group ``name`` registered before by :func:`command_group`, for a
    plug-in that adds an action to a built-in group (``certgate templates import`` is the
    ms_ces connector's); ``KeyError`` when there is no such group."""
    for candidate in sub.choices[name]._actions:
        if isinstance(candidate, argparse._SubParsersAction):
            return candidate
    raise KeyError(f"{name!r} is not a command group")


# --- output -------------------------------------------------------------------------------


def duration(value: timedelta | int | float | None) -> str:
    """A duration as the configuration spells it (``"90d"``, ``"12h"``, ``"30s"``): the one
    duration format of CLI output, human and JSON alike, so any value printed can be pasted
    back into ``certgate.toml`` or a template (whole seconds; nothing left is ``"0s"``)."""
    if value is None:
        return ""
    from gateway.durations import format_duration  # only once there is output

    seconds = int(value.total_seconds() if isinstance(value, timedelta) else value)
    return format_duration(timedelta(seconds=seconds)) if seconds > 0 else "0s"


def ts(value: datetime | None) -> str:
    """A timestamp in a human table: UTC to the minute (JSON carries the full ISO 8601)."""
    return value.strftime("%Y-%m-%d %H:%M") if value else ""


def jsonable(value: Any) -> Any:
    """Plain JSON data: ISO 8601 timestamps, durations as :func:`duration`, enums by value."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return duration(value)
    if isinstance(value, bytes):
        return None
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items() if not isinstance(v, bytes)}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if hasattr(value, "value") and not isinstance(value, str | int):
        return value.value
    return value


def table(rows: Sequence[Sequence[object]], headers: Sequence[str]) -> str:
    """Columns under upper-case headers and a rule; an empty listing still shows its headers."""
    text = [[str(c) for c in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in text) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in text]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def fields(data: Mapping[str, Any]) -> str:
    """One record as ``key  value`` lines (``show`` commands), in the record's own order, empty
    values left out."""
    shown = {k: jsonable(v) for k, v in data.items() if v is not None and v != ""}
    width = max((len(k) for k in shown), default=0)
    return "\n".join(
        f"{k:{width}}  {json.dumps(v, sort_keys=True) if isinstance(v, dict | list) else v}"
        for k, v in shown.items()
    )


def print_json(data: Any) -> None:
    print(json.dumps(jsonable(data), indent=2, sort_keys=True))


def emit(args: argparse.Namespace, data: Any, human: str) -> None:
    """``data`` as JSON with ``--json``, else the human rendering."""
    if getattr(args, "json", False):
        print_json(data)
    else:
        print(human)


def actor() -> str:
    """Who the audit log names for an operator action: ``cli:<login>``."""
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:
        return "cli:unknown"
