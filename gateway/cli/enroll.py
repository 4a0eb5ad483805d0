"""``certgate enroll``: submit a CSR locally, judged by the same template policy as a protocol
request. Action in :mod:`gateway.cli.actions.enroll`."""

from __future__ import annotations

import argparse

from gateway.cli.common import SubParsers, action


def register(sub: SubParsers, common: argparse.ArgumentParser) -> None:
    """``certgate enroll``."""
    help_ = "submit a CSR locally, judged by the template like a protocol request"
    enroll = sub.add_parser("enroll", parents=[common], help=help_, description=help_)
    enroll.add_argument("--template", "-t", required=True, help="certificate template name")
    enroll.add_argument("--csr", required=True, help="PKCS#10 file (PEM or DER)")
    enroll.add_argument("--principal", default="operator", help="requester principal")
    enroll.add_argument("--transaction-id", help="idempotency key (default: random)")
    enroll.add_argument("--out", "-o", help="write the PEM chain here")
    action(enroll, "gateway.cli.actions.enroll:cmd_enroll")
