"""What a webhook says: the JSON body of each event, built when its outbox row is made.

``{"type", "id", "timestamp", "data": {request_id, serial, subject, template, protocol,
requester, reason, ...}}``: names, ids and reasons only. No CSR, no challenge password, no
credential ever goes in (the request's subject is read from its CSR here, nothing else of it).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509
from sqlalchemy.engine import Row

__all__ = ["DueEvent", "audit_data", "body", "event_key", "iso", "new_event_id"]


@dataclass(frozen=True)
class DueEvent:
    """A certificate whose renewal window is open (:class:`gateway.service.DueCertificate`)."""

    serial: str
    request_id: str | None
    subject: str
    template: str
    not_after: datetime
    window_start: datetime
    reason: str


def new_event_id() -> str:
    """``msg_`` + 128 random bits: the ``webhook-id`` of every attempt at one row."""
    return "msg_" + secrets.token_hex(16)


def iso(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def csr_subject(der: bytes | None) -> str | None:
    if not der:
        return None
    try:
        return x509.load_der_x509_csr(bytes(der)).subject.rfc4514_string()
    except ValueError:
        return None


def body(event: str, event_id: str, at: datetime, data: Mapping[str, Any]) -> str:
    """The JSON body: ``{type, id, timestamp, data}``; ``None`` values left out. No secret
    goes in: no CSR, no challenge, no credential, only names, ids and reasons."""
    payload = {
        "type": event,
        "id": event_id,
        "timestamp": iso(at),
        "data": {k: v for k, v in data.items() if v is not None},
    }
    return json.dumps(payload, separators=(",", ":"), sort_keys=True)


def audit_data(row: Row[Any], request: Row[Any] | None, cert: Row[Any] | None) -> dict[str, Any]:
    """The ``data`` of an audited event from its audit row, its request's row and its
    certificate's row (either may be missing: ``None`` values are left out of the body)."""
    detail: Mapping[str, Any] = row.detail or {}
    data: dict[str, Any] = {
        "request_id": row.request_id,
        "serial": row.serial,
        "subject": cert.subject if cert is not None else None,
        "template": (cert.template if cert is not None else None)
        or (request.template if request is not None else None),
        "protocol": request.protocol if request is not None else None,
        "requester": request.requester_principal if request is not None else None,
    }
    if data["subject"] is None and request is not None:
        data["subject"] = csr_subject(request.csr_der)
    if row.event == "request.pending":
        data["reason"] = detail.get("reason")
    elif row.event == "request.denied":
        data.update(reason=detail.get("detail"), rule=detail.get("rule"), code=detail.get("code"))
    elif row.event == "certificate.revoked":
        data.update(reason=detail.get("reason"), revoked_at=detail.get("at"))
    if cert is not None and row.event in ("certificate.issued", "certificate.revoked"):
        data["not_after"] = iso(cert.not_after)
    return data


def event_key(row: Row[Any]) -> str:
    """What makes an audited event one event: its audit id, except for ``request.pending``,
    which the store audits again each time a CA-pending request is polled and is still
    pending: that is one event per request and reason (approval, ca)."""
    reason = (row.detail or {}).get("reason")
    if row.event == "request.pending" and row.request_id:
        return f"pending:{row.request_id}:{reason}"
    return f"audit:{row.id}"
