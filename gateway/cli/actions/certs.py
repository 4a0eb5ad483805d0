"""``certgate certs list|show|revoke|due``: the certificate inventory."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from gateway.cli.common import EXIT_OK, actor, emit, fields, table, ts
from gateway.cli.opening import StoreOnly
from gateway.cli.records import cert_dict
from gateway.errors import NotFound
from gateway.model import CertificateRecord, CertificateStatus, RevocationReason

if TYPE_CHECKING:  # the server's components: only the gateway-level commands get them
    from gateway.server.wiring import Components


CERT_HEADERS = ["SERIAL", "STATUS", "TEMPLATE", "SUBJECT", "SANS", "EXPIRES", "SUPERSEDED-BY"]


def normal_serial(serial: str) -> str:
    """The inventory's spelling of a serial: lower-case hex, no colons or leading zeros."""
    return serial.lower().replace(":", "").lstrip("0") or "0"


async def cmd_certs_list(c: StoreOnly | Components, args: argparse.Namespace) -> int:
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
    emit(args, [cert_dict(r) for r in records], table(rows, CERT_HEADERS))
    return EXIT_OK


async def _get_cert(c: StoreOnly | Components, serial: str) -> CertificateRecord:
    record = await c.store.get_certificate(normal_serial(serial))
    if record is None:
        raise NotFound(f"no certificate with serial {serial}")
    return record


async def cmd_certs_show(c: StoreOnly | Components, args: argparse.Namespace) -> int:
    record = await _get_cert(c, args.serial)
    data = cert_dict(record, pem=True)
    human = fields({k: v for k, v in data.items() if k != "pem"}) + "\n" + data["pem"].rstrip()
    emit(args, data, human)
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
