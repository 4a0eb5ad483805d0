"""Records as the operator sees them: request and certificate dictionaries, and the rendering
of an enrollment outcome (its exit code tells which it was). Imported by actions only."""

from __future__ import annotations

import argparse
import base64
import dataclasses
import textwrap
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from gateway.cli.common import EXIT_DENIED, EXIT_OK, EXIT_PENDING, duration, emit
from gateway.model import CertificateRecord, Denied, Issued, Outcome, RequestRecord
from gateway.pkix import pem_chain


def request_dict(r: RequestRecord) -> dict[str, Any]:
    # Not dataclasses.asdict: it deep-copies read-only mappings inside Requester.
    d = {f.name: getattr(r, f.name) for f in dataclasses.fields(r) if f.name != "csr_der"}
    d["requester"] = r.requester.to_json()
    return d


def cert_dict(c: CertificateRecord, *, pem: bool = False) -> dict[str, Any]:
    d = {f.name: getattr(c, f.name) for f in dataclasses.fields(c) if f.name != "der"}
    d["revocation_reason"] = c.revocation_reason.name.lower() if c.revocation_reason else None
    if pem:
        d["pem"] = c.certificate.public_bytes(serialization.Encoding.PEM).decode()
    return d


def pem(label: str, der: bytes) -> bytes:
    body = "\n".join(textwrap.wrap(base64.b64encode(der).decode(), 64))
    return f"-----BEGIN {label}-----\n{body}\n-----END {label}-----\n".encode()


def print_outcome(args: argparse.Namespace, outcome: Outcome, request_id: str | None) -> int:
    """An enrollment outcome as the operator sees it; the exit code tells which it was."""
    if isinstance(outcome, Issued):
        chain = pem_chain(outcome.full_chain).decode()
        out = getattr(args, "out", None)
        if out:
            Path(out).write_text(chain)
        emit(
            args,
            {
                "status": "issued",
                "request_id": request_id,
                "serial": format(outcome.certificate.serial_number, "x"),
                "chain": chain,
            },
            chain.rstrip() if not out else f"issued, chain written to {out}",
        )
        return EXIT_OK
    if isinstance(outcome, Denied):
        emit(
            args,
            {
                "status": "denied",
                "request_id": request_id,
                "code": outcome.code,
                "rule": outcome.rule,
                "detail": outcome.detail,
            },
            f"denied by rule {outcome.rule}: {outcome.detail}",
        )
        return EXIT_DENIED
    emit(
        args,
        {
            "status": "pending",
            "request_id": outcome.request_id,
            "reason": outcome.reason.value,
            "retry_after": duration(outcome.retry_after),
        },
        f"pending ({outcome.reason.value}): request id {outcome.request_id}, "
        f"poll again in {duration(outcome.retry_after)}",
    )
    return EXIT_PENDING
