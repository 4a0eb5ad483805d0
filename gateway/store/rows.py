"""Rows <-> :mod:`gateway.model` records (the only place that knows both shapes). A row is a
Core ``Row`` or, from the raw SQLite paths, a ``SimpleNamespace`` of the same decoded columns
(:meth:`gateway.store.sqlite_fast.FastTable.decode`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy.engine import Row

from gateway.model import (
    AttemptHead,
    AuditEvent,
    CertificateRecord,
    CertificateStatus,
    PendingReason,
    Requester,
    RequestKind,
    RequestRecord,
    RequestState,
    RevocationReason,
)


def request_from_row(row: Row[Any] | SimpleNamespace) -> RequestRecord:
    return RequestRecord(
        id=row.id,
        protocol=row.protocol,
        transaction_id=row.transaction_id,
        template=row.template,
        kind=RequestKind(row.kind),
        requester=Requester.from_json(row.requester),
        csr_der=bytes(row.csr_der),
        spki_sha256=row.spki_sha256,
        state=RequestState(row.state),
        created_at=row.created_at,
        updated_at=row.updated_at,
        pending_reason=None if row.pending_reason is None else PendingReason(row.pending_reason),
        connector=row.connector,
        ca_request_id=row.ca_request_id,
        denial_code=row.denial_code,
        denial_rule=row.denial_rule,
        denial_detail=row.denial_detail,
        certificate_serial=row.certificate_serial,
        prior_serial=row.prior_serial,
        not_before=row.not_before,
        not_after=row.not_after,
        next_poll_at=row.next_poll_at,
    )


#: The columns of an :class:`AttemptHead`, in its field order.
ATTEMPT_COLUMNS = AttemptHead._fields


def attempt_from_row(row: Any) -> AttemptHead:
    """An :class:`AttemptHead` from a row of :data:`ATTEMPT_COLUMNS` (updated_at decoded)."""
    pending = row.pending_reason
    return AttemptHead(
        row.id,
        row.transaction_id,
        RequestState(row.state),
        None if pending is None else PendingReason(pending),
        bytes(row.csr_der),
        row.spki_sha256,
        row.updated_at,
    )


def request_values(record: RequestRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "protocol": record.protocol,
        "transaction_id": record.transaction_id,
        "template": record.template,
        "kind": record.kind.value,
        "requester": record.requester.to_json(),
        "requester_principal": record.requester.principal,
        "csr_der": record.csr_der,
        "spki_sha256": record.spki_sha256,
        "state": record.state.value,
        "pending_reason": None if record.pending_reason is None else record.pending_reason.value,
        "connector": record.connector,
        "ca_request_id": record.ca_request_id,
        "denial_code": record.denial_code,
        "denial_rule": record.denial_rule,
        "denial_detail": record.denial_detail,
        "certificate_serial": record.certificate_serial,
        "prior_serial": record.prior_serial,
        "not_before": record.not_before,
        "not_after": record.not_after,
        "next_poll_at": record.next_poll_at,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
    }


def certificate_from_row(row: Row[Any] | SimpleNamespace) -> CertificateRecord:
    return CertificateRecord(
        serial=row.serial,
        request_id=row.request_id,
        subject=row.subject,
        sans=tuple(row.sans),
        template=row.template,
        template_major=row.template_major,
        requester=row.requester,
        not_before=row.not_before,
        not_after=row.not_after,
        status=CertificateStatus(row.status),
        der=bytes(row.der),
        spki_sha256=row.spki_sha256,
        issuer=row.issuer,
        revoked_at=row.revoked_at,
        revocation_reason=(
            None if row.revocation_reason is None else RevocationReason(row.revocation_reason)
        ),
        superseded_by=row.superseded_by,
    )


def certificate_values(record: CertificateRecord) -> dict[str, Any]:
    return {
        "serial": record.serial,
        "request_id": record.request_id,
        "subject": record.subject,
        "sans": list(record.sans),
        "template": record.template,
        "template_major": record.template_major,
        "requester": record.requester,
        "not_before": record.not_before,
        "not_after": record.not_after,
        "status": record.status.value,
        "der": record.der,
        "spki_sha256": record.spki_sha256,
        "issuer": record.issuer,
        "revoked_at": record.revoked_at,
        "revocation_reason": (
            None if record.revocation_reason is None else int(record.revocation_reason)
        ),
        "superseded_by": record.superseded_by,
    }


def audit_from_row(row: Row[Any]) -> AuditEvent:
    return AuditEvent(
        id=row.id,
        at=row.at,
        event=row.event,
        actor=row.actor,
        request_id=row.request_id,
        serial=row.serial,
        detail=dict(row.detail),  # a fresh dict per call; dataclasses.asdict can copy it
    )


#: How a raw write path encodes a datetime column (SQLite: ISO text; asyncpg: aware UTC).
EncodeDatetime = Callable[[datetime | None], Any]


def request_params(r: RequestRecord, dt: EncodeDatetime) -> tuple[Any, ...]:
    """``r`` as the ``requests`` columns in table order, datetimes through ``dt``: the
    parameters of the raw INSERTs (sqlite_queries, postgres_queries)."""
    pending = r.pending_reason
    return (
        r.id, r.protocol, r.transaction_id, r.template, r.kind.value,
        r.requester.json_text, r.requester.principal, r.csr_der, r.spki_sha256,
        r.state.value, None if pending is None else pending.value, r.connector,
        r.ca_request_id, r.denial_code, r.denial_rule, r.denial_detail, r.certificate_serial,
        r.prior_serial, dt(r.not_before), dt(r.not_after), dt(r.next_poll_at),
        dt(r.created_at), dt(r.updated_at),
    )  # fmt: skip


def certificate_params(c: CertificateRecord, dt: EncodeDatetime) -> tuple[Any, ...]:
    """``c`` as the ``certificates`` columns in table order, datetimes through ``dt``."""
    reason = c.revocation_reason
    return (
        c.serial, c.request_id, c.subject, json.dumps(list(c.sans)), c.template,
        c.template_major, c.requester, dt(c.not_before), dt(c.not_after), c.status.value,
        c.der, c.spki_sha256, c.issuer, dt(c.revoked_at),
        None if reason is None else int(reason), c.superseded_by,
    )  # fmt: skip
