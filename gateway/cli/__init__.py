"""``certgate``: serve, and operate the gateway from its host.

Operator commands build the same components as the server (gateway.server.wiring) and act on
the same store and CA, so ``certgate enroll`` is judged by exactly the template policy a protocol
request meets. Output is a human table by default and JSON with ``--json``.

One module per command group (:mod:`~gateway.cli.serve`, :mod:`~gateway.cli.templates`,
:mod:`~gateway.cli.enroll`, :mod:`~gateway.cli.requests`, :mod:`~gateway.cli.certs`,
:mod:`~gateway.cli.ca`), each with a ``register(subparsers, common)`` exactly like the
front-ends' ``certgate.cli`` entry points; :mod:`~gateway.cli.main` assembles and runs them.
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
