"""``certgate``: serve, and operate the gateway from its host.

Operator commands act on the same store and CA as the server. What issues, approves or revokes
builds the server's own components (gateway.server.wiring), so ``certgate enroll`` is judged by
exactly the template policy a protocol request meets; listings open only the store
(:mod:`~gateway.cli.opening`). Output is a table with headers by default and JSON with
``--json`` (errors included).

One light module per command group declares its argparse tree (:mod:`~gateway.cli.init`,
:mod:`~gateway.cli.serve`, :mod:`~gateway.cli.templates`, :mod:`~gateway.cli.enroll`,
:mod:`~gateway.cli.requests`, :mod:`~gateway.cli.certs`, :mod:`~gateway.cli.ca`,
:mod:`~gateway.cli.audit`), each with a ``register(subparsers, common)`` exactly like the
front-ends' ``certgate.cli`` entry points; what the commands do is in
:mod:`gateway.cli.actions`, imported only for the command that runs, so ``certgate --help``
imports no database, web or crypto stack. :mod:`~gateway.cli.main` assembles and runs them.
"""

from gateway.cli.common import EXIT_DENIED, EXIT_ERROR, EXIT_OK, EXIT_PENDING, EXIT_USAGE
from gateway.cli.main import CLI_GROUP, build_parser, main

__all__ = [
    "CLI_GROUP",
    "EXIT_DENIED",
    "EXIT_ERROR",
    "EXIT_OK",
    "EXIT_PENDING",
    "EXIT_USAGE",
    "build_parser",
    "main",
]
