"""The ``certgate`` parser and entry point: built-in command groups in a fixed order, then the
front-ends' groups from the ``certgate.cli`` entry points; configuration errors exit 2 and
gateway errors exit 1, each with a one-line message instead of a traceback (with ``--json``, a
JSON object on standard output instead).

Parsing the command line imports the standard library and the command trees only: ``certgate
--help`` and an argument error cost no database, web or crypto import. Each command names its
action as ``"module:function"`` and what it needs opened (:class:`gateway.cli.common.Opens`);
both are imported after parsing, and only for the command that runs.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points
from pathlib import Path

from gateway.cli import (
    admin,
    audit,
    ca,
    certs,
    enroll,
    init,
    requests,
    serve,
    templates,
    webhooks,
)
from gateway.cli.common import EXIT_ERROR, EXIT_USAGE, print_json
from gateway.cli.datadir import DataDirError
from gateway.errors import CertgateError, ConfigError

#: Entry-point group through which front-ends add operator commands: each entry is a callable
#: ``register(subparsers, common_parent_parser)`` in a module that imports nothing heavy; it
#: adds sub-commands with :func:`gateway.cli.common.action` (the action module is imported
#: only when its command runs).
CLI_GROUP = "certgate.cli"

#: The built-in command groups, in the order ``certgate --help`` lists them.
BUILTIN_GROUPS = (init, serve, templates, enroll, requests, certs, ca, audit, admin, webhooks)

#: The common options' values when given nowhere.
COMMON_DEFAULTS = {"config": None, "data": None, "json": False}


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: an option given before the sub-command must survive the sub-parser's defaults.
    common.add_argument(
        "--config",
        "-c",
        type=Path,
        default=argparse.SUPPRESS,
        help="configuration file (default: $CERTGATE_CONFIG, else ./conf/certgate.toml)",
    )
    common.add_argument(
        "--data",
        type=Path,
        default=argparse.SUPPRESS,
        help="data directory (default: $CERTGATE_DATA, else [data] dir, else ./.certgate)",
    )
    common.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="machine-readable output: JSON on stdout, errors included",
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _common_options()
    parser = argparse.ArgumentParser(
        prog="certgate", parents=[common], description="certificate enrollment gateway"
    )
    # No set_defaults for the common options here: every parser shares the same option
    # objects (``parents``), so a default set on one becomes every sub-parser's default, and
    # each sub-parser then overwrote a value given before its word. main() fills them in.
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in BUILTIN_GROUPS:
        group.register(sub, common)
    for ep in entry_points(group=CLI_GROUP):
        try:
            register = ep.load()
        except ModuleNotFoundError as exc:  # a front-end declared but not installed/built
            logging.getLogger("certgate").debug("cli plug-in %s unavailable: %s", ep.name, exc)
            continue
        register(sub, common)
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line, with ``--config``/``--data``/``--json`` taken from wherever they
    were given: before the command group, between its words, or after them."""
    args = build_parser().parse_args(argv)
    for name, default in COMMON_DEFAULTS.items():
        if not hasattr(args, name):
            setattr(args, name, default)
    return args


def _fail(args: argparse.Namespace, code: int, kind: str, message: str) -> int:
    """One line on stderr, or with ``--json`` one JSON object on stdout."""
    if args.json:
        print_json({"error": {"kind": kind, "message": message, "exit_code": code}})
    else:
        print(f"certgate: {message}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.command != "serve" else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Alembic announces its plug-ins at INFO when imported, which now happens after logging is
    # set up (it used to be imported with the CLI): noise in serve's log, not an event.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    try:
        import asyncio

        from gateway.config import default_config_path, load_config

        before_config = getattr(args, "before_config", None)
        if before_config is not None:  # `certgate init DIR` writes the site it then opens
            before_config(args)
        config = load_config(args.config or default_config_path(), data_dir=args.data)
        if args.command == "serve":  # it binds its port before creating the data directory
            from gateway.cli.datadir import prepare_data_dir

            return serve.run(config, args, lambda: prepare_data_dir(config, args, create=True))
        from gateway.cli.opening import run_command

        return asyncio.run(run_command(config, args))
    except ConfigError as exc:
        return _fail(args, EXIT_USAGE, "configuration", f"configuration error: {exc}")
    except DataDirError as exc:
        return _fail(args, EXIT_USAGE, "data", str(exc))
    except CertgateError as exc:
        return _fail(args, EXIT_ERROR, exc.code.value, f"{exc.code.value}: {exc.detail}")
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `certgate ... | head`: the reader left; that is not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
