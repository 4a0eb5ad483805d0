"""``certgate serve``: run the gateway (``--workers N`` processes sharing one port)."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING

from gateway.cli.common import SubParsers

if TYPE_CHECKING:  # the command tree is imported for --help: nothing heavy at import
    from gateway.config import Config


def register(sub: SubParsers, common: argparse.ArgumentParser) -> None:
    """``certgate serve``."""
    serve = sub.add_parser("serve", parents=[common], help="run the gateway")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int, default=1, help="processes sharing one port")
    serve.set_defaults(creates=True)  # serving a new data directory creates its gateway


def run(config: Config, args: argparse.Namespace, once_bound: Callable[[], None]) -> int:
    """Serve until SIGTERM/SIGINT; ``--host``/``--port`` override ``[server]``.
    ``once_bound`` prepares the data directory after the port is bound."""
    from gateway.server.run import serve  # the server stack only for this command

    if args.host or args.port is not None:
        server = config.server.listening_on(
            args.host or config.server.host,
            config.server.port if args.port is None else args.port,
        )
        config = dataclasses.replace(config, server=server)
    from gateway.observability.logs import configure_logging

    configure_logging(config.log_level, config.log_format)
    return serve(config, workers=args.workers, once_bound=once_bound)
