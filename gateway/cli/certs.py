"""``certgate certs list|show|revoke|due``: the certificate inventory."""

from __future__ import annotations

import argparse

from gateway.cli.common import (
    EXIT_OK,
    SubParsers,
    actor,
    cert_dict,
    command_group,
    emit,
    jsonable,
    table,
    ts,
)
from gateway.errors import NotFound
from gateway.model import CertificateRecord, CertificateStatus, RevocationReason
from gateway.server.wiring import Components


async def cmd_certs_list(c: Components, args: argparse.Namespace) -> int:
    status = CertificateStatus(args.status) if args.status else None
    records = await c.store.list_certificates(status, limit=args.limit)
    rows = [
        (
            r.serial,
            r.status.value,
            r.template,
            r.subject or "-",
            ",".join(r.sans)[:60],
            ts(r.not_after),
            r.superseded_by or "",
        )
        for r in records
    ]
    emit(
        args,
        [cert_dict(r) for r in records],
        table(
            rows, ["SERIAL", "STATUS", "TEMPLATE", "SUBJECT", "SANS", "EXPIRES", "SUPERSEDED-BY"]
        ),
    )
    return EXIT_OK


async def _get_cert(c: Components, serial: str) -> CertificateRecord:
    record = await c.store.get_certificate(serial.lower().replace(":", "").lstrip("0") or "0")
    if record is None:
        raise NotFound(f"no certificate with serial {serial}")
    return record


async def cmd_certs_show(c: Components, args: argparse.Namespace) -> int:
    record = await _get_cert(c, args.serial)
    data = cert_dict(record, pem=True)
    lines = [
        f"{k:18} {jsonable(v)}" for k, v in sorted(data.items()) if v is not None and k != "pem"
    ]
    emit(args, data, "\n".join(lines) + "\n" + data["pem"].rstrip())
    return EXIT_OK


async def cmd_certs_revoke(c: Components, args: argparse.Namespace) -> int:
    reason = RevocationReason[args.reason.upper().replace("-", "_")]
    record = await c.service.revoke(args.serial.lower().replace(":", ""), reason, actor())
    emit(args, cert_dict(record), f"revoked {record.serial} ({reason.name.lower()})")
    return EXIT_OK


async def cmd_certs_due(c: Components, args: argparse.Namespace) -> int:
    due = await c.service.due_certificates()
    rows = [
        (
            d.record.serial,
            d.record.template,
            d.record.subject or ",".join(d.record.sans),
            ts(d.window_start),
            ts(d.record.not_after),
            d.reason,
        )
        for d in due
    ]
    data = [
        {
            **cert_dict(d.record),
            "window_start": d.window_start,
            "window_end": d.window_end,
            "reason": d.reason,
        }
        for d in due
    ]
    emit(args, data, table(rows, ["SERIAL", "TEMPLATE", "NAME", "DUE-SINCE", "EXPIRES", "REASON"]))
    return EXIT_OK


def register(sub: SubParsers, common: argparse.ArgumentParser) -> None:
    """``certgate certs ...``."""
    certs = command_group(sub, common, "certs", "certificate inventory")
    cl = certs.add_parser("list", parents=[common])
    cl.add_argument("--status", choices=[s.value for s in CertificateStatus])
    cl.add_argument("--limit", type=int, default=1000)
    cl.set_defaults(func=cmd_certs_list)
    cs = certs.add_parser("show", parents=[common])
    cs.add_argument("serial")
    cs.set_defaults(func=cmd_certs_show)
    cr = certs.add_parser("revoke", parents=[common])
    cr.add_argument("serial")
    cr.add_argument(
        "--reason",
        default="unspecified",
        choices=[r.name.lower().replace("_", "-") for r in RevocationReason],
    )
    cr.set_defaults(func=cmd_certs_revoke)
    certs.add_parser("due", parents=[common]).set_defaults(func=cmd_certs_due)
