"""``certgate ca show|crl|export``: the CA chain and its CRL."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.cli.common import EXIT_OK, emit, fields, print_json
from gateway.cli.records import pem
from gateway.pkix import fingerprint, pem_chain

if TYPE_CHECKING:  # the server's components: only the gateway-level commands get them
    from gateway.server.wiring import Components


async def cmd_ca_show(c: Components, args: argparse.Namespace) -> int:
    chain = await c.service.ca_chain()
    data = [
        {
            "subject": cert.subject.rfc4514_string(),
            "issuer": cert.issuer.rfc4514_string(),
            "serial": format(cert.serial_number, "x"),
            "not_before": cert.not_valid_before_utc,
            "not_after": cert.not_valid_after_utc,
            "sha256": fingerprint(cert),
        }
        for cert in chain
    ]
    human = "\n\n".join(fields(d) for d in data)
    emit(args, data, human)
    return EXIT_OK


async def cmd_ca_crl(c: Components, args: argparse.Namespace) -> int:
    """A fresh CRL: DER to ``--out``, PEM (or ``--der``) on stdout; ``--json`` says both."""
    der = await c.service.crl()
    if args.out:
        Path(args.out).write_bytes(der)
    if args.json:
        print_json({"crl_pem": pem("X509 CRL", der).decode(), "file": args.out})
    elif not args.out:
        sys.stdout.buffer.write(der if args.der else pem("X509 CRL", der))
    return EXIT_OK


async def cmd_ca_export(c: Components, args: argparse.Namespace) -> int:
    """The chain as PEM, issuing CA first: to ``--out`` or stdout; ``--json`` says both."""
    chain = pem_chain(await c.service.ca_chain())
    if args.out:
        Path(args.out).write_bytes(chain)
    if args.json:
        print_json({"chain_pem": chain.decode(), "file": args.out})
    elif not args.out:
        sys.stdout.buffer.write(chain)
    return EXIT_OK
