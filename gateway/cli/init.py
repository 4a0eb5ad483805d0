"""``certgate init``: create the data directory, database and CA, and say what was made.

The one command besides ``serve`` that may create a gateway; every other command refuses to
act on a data directory that holds none (:mod:`gateway.cli.datadir`). Opening an existing
gateway is harmless, so ``init`` twice is fine.
"""

from __future__ import annotations

import argparse

from gateway.cli.common import EXIT_OK, SubParsers, emit
from gateway.pkix import fingerprint
from gateway.server.wiring import Components


async def cmd_init(c: Components, args: argparse.Namespace) -> int:
    chain = await c.service.ca_chain()
    root = fingerprint(chain[-1]) if chain else None
    data = {"data_dir": str(c.config.data_dir), "root_ca_sha256": root}
    human = f"data directory  {c.config.data_dir}\nroot CA SHA-256 {root or '(no CA chain)'}"
    emit(args, data, human)
    return EXIT_OK


def register(sub: SubParsers, common: argparse.ArgumentParser) -> None:
    """``certgate init``."""
    init = sub.add_parser(
        "init", parents=[common], help="create the data directory, database and CA"
    )
    init.set_defaults(func=cmd_init, creates=True)
