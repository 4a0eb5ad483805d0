"""``certgate enroll``: submit a CSR locally, judged by the same template policy as a protocol
request."""

from __future__ import annotations

import argparse
import uuid
from pathlib import Path

from gateway.cli.common import SubParsers, print_outcome
from gateway.errors import CertgateError
from gateway.model import EnrollmentRequest
from gateway.pkix import load_csr
from gateway.server.wiring import Components
from gateway.service import local_requester


async def cmd_enroll(c: Components, args: argparse.Namespace) -> int:
    try:
        data = Path(args.csr).read_bytes()
    except OSError as exc:
        raise CertgateError(f"cannot read {args.csr}: {exc.strerror}") from None
    request = EnrollmentRequest(
        csr=load_csr(data),
        template=args.template,
        requester=local_requester(args.principal),
        transaction_id=args.transaction_id or str(uuid.uuid4()),
    )
    outcome = await c.service.enroll(request)
    stored = await c.store.find_request("cli", request.transaction_id)
    return print_outcome(args, outcome, stored.id if stored else None)


def register(sub: SubParsers, common: argparse.ArgumentParser) -> None:
    """``certgate enroll``."""
    enroll = sub.add_parser("enroll", parents=[common], help="submit a CSR locally")
    enroll.add_argument("--template", "-t", required=True)
    enroll.add_argument("--csr", required=True, help="PKCS#10 file (PEM or DER)")
    enroll.add_argument("--principal", default="operator", help="requester principal")
    enroll.add_argument("--transaction-id", help="idempotency key (default: random)")
    enroll.add_argument("--out", "-o", help="write the PEM chain here")
    enroll.set_defaults(func=cmd_enroll)
