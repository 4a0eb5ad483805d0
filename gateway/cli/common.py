"""What every command group shares: exit codes, the sub-command scaffolding, ``--json`` or a
human table, record dictionaries, the rendering of an enrollment outcome, and who the operator
is."""

from __future__ import annotations

import argparse
import base64
import dataclasses
import getpass
import json
import textwrap
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeAlias

from cryptography.hazmat.primitives import serialization

from gateway.model import CertificateRecord, Denied, Issued, Outcome, RequestRecord
from gateway.pkix import pem_chain
from gateway.server.wiring import Components

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_PENDING, EXIT_DENIED = 0, 1, 2, 3, 4

#: A command: ``async (Components, argparse.Namespace) -> exit code``.
Command = Callable[[Components, argparse.Namespace], Awaitable[int]]
#: What ``register`` functions add their sub-commands to.
SubParsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def command_group(
    sub: SubParsers, common: argparse.ArgumentParser, name: str, help_: str
) -> SubParsers:
    """``certgate <name> <action>``: a group whose actions are added to the returned parsers."""
    p = sub.add_parser(name, parents=[common], help=help_)
    return p.add_subparsers(dest="action", required=True)


def jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return None
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items() if not isinstance(v, bytes)}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if hasattr(value, "value") and not isinstance(value, str | int):
        return value.value
    return value


def table(rows: Sequence[Sequence[object]], headers: Sequence[str]) -> str:
    text = [[str(c) for c in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in text) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in text]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def emit(args: argparse.Namespace, data: Any, human: str) -> None:
    if args.json:
        print(json.dumps(jsonable(data), indent=2, sort_keys=True))
    else:
        print(human)


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


def ts(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else ""


def pem(label: str, der: bytes) -> bytes:
    body = "\n".join(textwrap.wrap(base64.b64encode(der).decode(), 64))
    return f"-----BEGIN {label}-----\n{body}\n-----END {label}-----\n".encode()


def actor() -> str:
    """Who the audit log names for an operator action: ``cli:<login>``."""
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:
        return "cli:unknown"


def print_outcome(args: argparse.Namespace, outcome: Outcome, request_id: str | None) -> int:
    """An enrollment outcome as the operator sees it; the exit code tells which it was."""
    if isinstance(outcome, Issued):
        chain = pem_chain(outcome.full_chain).decode()
        if args.out:
            Path(args.out).write_text(chain)
        emit(
            args,
            {
                "status": "issued",
                "request_id": request_id,
                "serial": format(outcome.certificate.serial_number, "x"),
                "chain": chain,
            },
            chain.rstrip() if not args.out else f"issued, chain written to {args.out}",
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
            "retry_after": outcome.retry_after,
        },
        f"pending ({outcome.reason.value}): request id {outcome.request_id}",
    )
    return EXIT_PENDING
