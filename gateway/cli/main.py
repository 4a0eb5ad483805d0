"""The ``certgate`` parser and entry point: built-in command groups in a fixed order, then the
front-ends' groups from the ``certgate.cli`` entry points; configuration errors exit 2 and
gateway errors exit 1, each with a one-line message instead of a traceback."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points
from pathlib import Path

from gateway.cli import ca, certs, enroll, init, requests, serve, templates
from gateway.cli.common import EXIT_ERROR, EXIT_USAGE, Command
from gateway.cli.datadir import (
    DataDirError,
    prepare_data_dir,
    require_local_cas,
    require_schema,
)
from gateway.config import Config, default_config_path, load_config
from gateway.errors import CertgateError, ConfigError
from gateway.server.wiring import build

#: Entry-point group through which front-ends add operator commands: each entry is a callable
#: ``register(subparsers, common_parent_parser)`` that adds sub-commands whose ``func`` is an
#: ``async (Components, argparse.Namespace) -> int``.
CLI_GROUP = "certgate.cli"

#: The built-in command groups, in the order ``certgate --help`` lists them.
BUILTIN_GROUPS = (init, serve, templates, enroll, requests, certs, ca)

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
        "--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output"
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
    sub = parser.add_subparsers(dest="command", required=True)
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


async def _run_command(config: Config, func: Command, args: argparse.Namespace) -> int:
    if not getattr(args, "creates", False):
        await require_schema(config)
        require_local_cas(config, args)
    components = await build(config)
    try:
        return await func(components, args)
    finally:
        await components.close()


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line, with ``--config``/``--data``/``--json`` taken from wherever they
    were given: before the command group, between its words, or after them."""
    args = build_parser().parse_args(argv)
    for name, default in COMMON_DEFAULTS.items():
        if not hasattr(args, name):
            setattr(args, name, default)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.command != "serve" else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        before_config = getattr(args, "before_config", None)
        if before_config is not None:  # `certgate init DIR` writes the site it then opens
            before_config(args)
        config = load_config(args.config or default_config_path(), data_dir=args.data)
        if args.command == "serve":  # it binds its port before creating the data directory
            return serve.run(config, args, lambda: prepare_data_dir(config, args, create=True))
        # Only init and serve may create a data directory, database and CA; everything else
        # acts on an existing one, so a mistyped --data never yields a fresh, empty gateway.
        prepare_data_dir(config, args, create=getattr(args, "creates", False))
        return asyncio.run(_run_command(config, args.func, args))
    except ConfigError as exc:
        print(f"certgate: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except DataDirError as exc:
        print(f"certgate: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except CertgateError as exc:
        print(f"certgate: {exc.code.value}: {exc.detail}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `certgate ... | head`: the reader left; that is not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
