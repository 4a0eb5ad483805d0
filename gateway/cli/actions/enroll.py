"""``certgate enroll``: submit a CSR locally, judged by the same template policy as a protocol
request."""

from __future__ import annotations

import argparse
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.cli.records import print_outcome
from gateway.errors import CertgateError
from gateway.model import EnrollmentRequest
from gateway.pkix import load_csr
from gateway.service import local_requester

if TYPE_CHECKING:  # the server's components: only the gateway-level commands get them
    from gateway.server.wiring import Components


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
    request_id = await c.service.request_id_of("cli", request.transaction_id, outcome)
    return print_outcome(args, outcome, request_id or None)
