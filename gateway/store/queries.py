"""Transaction bodies: synchronous Core functions, each run in one transaction by
:class:`gateway.store.engine.Database`.

Hot statements are built once at import (SQLAlchemy caches their compiled form), and every
write path is as short as it can be: a conditional ``UPDATE ... RETURNING`` both checks the
state machine and changes the row in one statement; the follow-up read only happens on the
error path. Bodies never read the clock: ``now`` comes from the caller, so a retried body
writes the same facts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from gateway.errors import Conflict, NotFound
from gateway.model import (
    AuditEvent,
    CertificateRecord,
    CertificateStatus,
    PendingReason,
    RequestRecord,
    RequestState,
    RevocationReason,
)
from gateway.store import sqlite_fast as fast
from gateway.store.rows import (
    audit_from_row,
    certificate_from_row,
    certificate_values,
    request_from_row,
    request_values,
)
from gateway.store.tables import audit_events, ca_journal, certificates, requests

#: States a request can still leave; issued, denied and failed are final.
OPEN_STATES = (RequestState.RECEIVED, RequestState.PENDING)
# A constant fragment instead of ``in_([...])``: expanding IN lists are re-rendered per call.
_IS_OPEN = sa.text("state IN ({})".format(", ".join(f"'{s.value}'" for s in OPEN_STATES)))

_REQ = requests.c
_CERT = certificates.c


# Plain INSERTs: SQLAlchemy cannot cache the compiled form of ``ON CONFLICT`` inserts (it
# recompiled the 23-column request insert on every call, ~250 us), so a unique violation is
# caught instead (see SQLStore.create_request and SQLJournal.put).
_INSERT_REQUEST = sa.insert(requests)
_INSERT_JOURNAL = sa.insert(ca_journal)
_INSERT_AUDIT = sa.insert(audit_events)
_INSERT_CERT = sa.insert(certificates)
_SELECT_REQUEST = sa.select(requests)
_SELECT_CERT = sa.select(certificates)
_SELECT_REQUEST_BY_ID = _SELECT_REQUEST.where(_REQ.id == sa.bindparam("rid"))
_SELECT_REQUEST_BY_TXN = _SELECT_REQUEST.where(
    _REQ.protocol == sa.bindparam("p"), _REQ.transaction_id == sa.bindparam("t")
)
# Bound parameters, so SQLAlchemy compiles this once (EST looks it up on every enrollment).
_SELECT_REQUESTS_BY_KEY = _SELECT_REQUEST.where(
    _REQ.requester_principal == sa.bindparam("pr"),
    _REQ.spki_sha256 == sa.bindparam("k"),
    _REQ.template == sa.bindparam("tp"),
    _REQ.protocol == sa.bindparam("p"),
).order_by(_REQ.created_at.desc(), _REQ.id.desc())
_SELECT_CERT_BY_SERIAL = _SELECT_CERT.where(_CERT.serial == sa.bindparam("s"))
#: SET columns come from the parameter keys; only open requests match.
_UPDATE_OPEN_REQUEST = (
    sa.update(requests).where(_REQ.id == sa.bindparam("rid"), _IS_OPEN).returning(*requests.c)
)
_MARK_SUPERSEDED = (
    sa.update(certificates)
    .where(_CERT.serial == sa.bindparam("old"))
    .values(superseded_by=sa.bindparam("new"))
)
_REVOKE = (
    sa.update(certificates)
    .where(_CERT.serial == sa.bindparam("s"), _CERT.status == CertificateStatus.VALID.value)
    .returning(*certificates.c)
)
_SELECT_JOURNAL = sa.select(ca_journal.c.certificate_der).where(
    ca_journal.c.request_id == sa.bindparam("rid")
)

# The per-issuance writes on SQLite bypass Core (see gateway/store/sqlite_fast.py).
_FAST_REQUESTS = fast.FastTable(requests)
_FAST_CERTS = fast.FastTable(certificates)
_FAST_INSERT_TWO_AUDITS = fast.INSERT_AUDIT + ", (?, ?, ?, ?, ?, ?)"
_FAST_AUDIT = fast.FastTable(audit_events)
_FAST_JOURNAL = fast.FastTable(ca_journal)
_FAST_ISSUE = (
    "UPDATE requests SET state = ?, certificate_serial = ?, next_poll_at = NULL, "
    "updated_at = ? WHERE id = ? AND state IN ('received', 'pending')"
)
_FAST_SUPERSEDE = "UPDATE certificates SET superseded_by = ? WHERE serial = ?"


def _sqlite(conn: Connection) -> bool:
    return conn.dialect.name == "sqlite"


#: Who the gateway's own transitions are attributed to in the audit trail.
SYSTEM_ACTOR = "certgate"


# --- audit ----------------------------------------------------------------------------------


def append_audit(
    conn: Connection,
    now: datetime,
    event: str,
    actor: str,
    request_id: str | None = None,
    serial: str | None = None,
    detail: Mapping[str, Any] | None = None,
) -> None:
    values = {
        "at": now,
        "event": event,
        "actor": actor,
        "request_id": request_id,
        "serial": serial,
        "detail": dict(detail or {}),
    }
    if _sqlite(conn):
        fast.insert(conn, _FAST_AUDIT, values)
    else:
        conn.execute(_INSERT_AUDIT, values)


def list_audit(conn: Connection, request_id: str | None, limit: int) -> list[AuditEvent]:
    stmt = sa.select(audit_events).order_by(audit_events.c.id.desc()).limit(limit)
    if request_id is not None:
        stmt = stmt.where(audit_events.c.request_id == request_id)
    rows = conn.execute(stmt).all()
    return [audit_from_row(row) for row in reversed(rows)]


def search_audit(
    conn: Connection,
    *,
    since: datetime | None = None,
    events: Sequence[str] = (),
    serial: str | None = None,
    request_id: str | None = None,
    limit: int = 100,
) -> list[AuditEvent]:
    """The newest ``limit`` events matching every filter given, oldest first (a log's order).

    ``events`` matches an event name exactly or as a dotted prefix (``"request"`` finds
    ``request.received`` and ``request.denied``); ``since`` is inclusive."""
    a = audit_events.c
    stmt = sa.select(audit_events).order_by(a.id.desc()).limit(limit)
    if since is not None:
        stmt = stmt.where(a.at >= since)
    if events:
        named = [sa.or_(a.event == e, a.event.startswith(f"{e}.", autoescape=True)) for e in events]
        stmt = stmt.where(sa.or_(*named))
    if serial is not None:
        stmt = stmt.where(a.serial == serial)
    if request_id is not None:
        stmt = stmt.where(a.request_id == request_id)
    return [audit_from_row(row) for row in reversed(conn.execute(stmt).all())]


def get_audit(conn: Connection, event_id: int) -> AuditEvent | None:
    row = conn.execute(sa.select(audit_events).where(audit_events.c.id == event_id)).first()
    return None if row is None else audit_from_row(row)


# --- requests -------------------------------------------------------------------------------


def create_request(conn: Connection, record: RequestRecord, now: datetime) -> RequestRecord:
    """Insert the request and its ``request.received`` audit event.

    A duplicate (protocol, transaction_id) raises ``IntegrityError`` and rolls back; the caller
    then reads the row that won (see :meth:`gateway.store.SQLStore.create_request`).
    """
    if _sqlite(conn):
        fast.insert(conn, _FAST_REQUESTS, request_values(record))
    else:
        conn.execute(_INSERT_REQUEST, request_values(record))
    append_audit(
        conn,
        now,
        "request.received",
        record.requester.principal,
        request_id=record.id,
        detail=_received_detail(record),
    )
    return record


def _received_detail(record: RequestRecord) -> dict[str, Any]:
    return {
        "protocol": record.protocol,
        "transaction_id": record.transaction_id,
        "template": record.template,
        "kind": record.kind.value,
        "auth_method": record.requester.auth_method,
        "spki_sha256": record.spki_sha256,
    }


def create_issued(
    conn: Connection,
    record: RequestRecord,
    certificate: CertificateRecord,
    supersedes: str | None,
    now: datetime,
) -> RequestRecord:
    """One transaction for an in-process CA: the request (already issued), its certificate,
    supersession and both audit events. A duplicate transaction raises ``IntegrityError``."""
    if _sqlite(conn):
        _create_issued_sqlite(conn, record, certificate, supersedes, now)
        return record
    create_request(conn, record, now)
    conn.execute(_INSERT_CERT, certificate_values(certificate))
    if supersedes is not None:
        conn.execute(_MARK_SUPERSEDED, {"old": supersedes, "new": certificate.serial})
    _audit_issued(conn, record.id, certificate, supersedes, now)
    return record


def _create_issued_sqlite(
    conn: Connection,
    record: RequestRecord,
    certificate: CertificateRecord,
    supersedes: str | None,
    now: datetime,
) -> None:
    """:func:`create_issued` on the raw SQLite cursor: the same rows and audit events, each
    row's parameters built in one expression (sqlite_fast's fixed column order)."""
    at = fast.encode_datetime(now)
    statements: list[tuple[str, tuple[Any, ...]]] = [
        (fast.INSERT_REQUEST, fast.request_row(record)),
        (fast.INSERT_CERTIFICATE, fast.certificate_row(certificate)),
    ]
    if supersedes is not None:
        statements.append((_FAST_SUPERSEDE, (certificate.serial, supersedes)))
    # both events in one statement, in order (received, then issued)
    statements.append(
        (
            _FAST_INSERT_TWO_AUDITS,
            (at, "request.received", record.requester.principal, record.id, None,
             fast.encode_json(_received_detail(record)),
             at, "certificate.issued", SYSTEM_ACTOR, record.id, certificate.serial,
             fast.encode_json(_issued_detail(certificate, supersedes))),
        )
    )  # fmt: skip
    fast.run_statements(conn, statements)


def create_denied(conn: Connection, record: RequestRecord, now: datetime) -> RequestRecord:
    """The request (already denied) and its ``request.received`` + ``request.denied`` events."""
    create_request(conn, record, now)
    append_audit(
        conn,
        now,
        "request.denied",
        SYSTEM_ACTOR,
        request_id=record.id,
        detail={
            "code": record.denial_code,
            "rule": record.denial_rule,
            "detail": record.denial_detail,
        },
    )
    return record


def get_request(conn: Connection, request_id: str) -> RequestRecord | None:
    row = conn.execute(_SELECT_REQUEST_BY_ID, {"rid": request_id}).first()
    return None if row is None else request_from_row(row)


def find_request(conn: Connection, protocol: str, transaction_id: str) -> RequestRecord | None:
    if _sqlite(conn):  # every enrollment asks this first: the raw cursor, no Core round
        raw = fast.fetch_one(conn, fast.SELECT_REQUEST_BY_TXN, (protocol, transaction_id))
        return None if raw is None else request_from_row(_FAST_REQUESTS.decode(raw))
    row = conn.execute(_SELECT_REQUEST_BY_TXN, {"p": protocol, "t": transaction_id}).first()
    return None if row is None else request_from_row(row)


def list_requests(conn: Connection, state: RequestState | None, limit: int) -> list[RequestRecord]:
    stmt = _SELECT_REQUEST.order_by(_REQ.created_at.desc(), _REQ.id.desc()).limit(limit)
    if state is not None:
        stmt = stmt.where(_REQ.state == state.value)
    return [request_from_row(row) for row in conn.execute(stmt)]


def find_requests_by_key(
    conn: Connection, protocol: str, principal: str, spki_sha256: str, template: str
) -> list[RequestRecord]:
    if _sqlite(conn):  # EST asks this on every enrollment: the raw cursor
        rows = fast.fetch_all(
            conn, fast.SELECT_REQUESTS_BY_KEY, (principal, spki_sha256, template, protocol)
        )
        return [request_from_row(_FAST_REQUESTS.decode(row)) for row in rows]
    params = {"pr": principal, "k": spki_sha256, "tp": template, "p": protocol}
    return [request_from_row(row) for row in conn.execute(_SELECT_REQUESTS_BY_KEY, params)]


def _existing(conn: Connection, request_id: str) -> Row[Any]:
    row = conn.execute(_SELECT_REQUEST_BY_ID, {"rid": request_id}).first()
    if row is None:
        raise NotFound(f"no request {request_id!r}")
    return row


def _illegal(row: Row[Any], target: RequestState) -> Conflict:
    return Conflict(f"request {row.id!r} is {row.state}; it cannot become {target.value}")


def transition(
    conn: Connection,
    request_id: str,
    target: RequestState,
    values: Mapping[str, Any],
    now: datetime,
    event: str,
    detail: Mapping[str, Any],
) -> RequestRecord:
    """Move an open request to ``target`` (setting ``values``) and audit it, or refuse:
    ``NotFound`` for an unknown id, ``Conflict`` when the request is already final."""
    params = {"rid": request_id, "state": target.value, "updated_at": now, **values}
    row = conn.execute(_UPDATE_OPEN_REQUEST, params).first()
    if row is None:
        raise _illegal(_existing(conn, request_id), target)
    append_audit(conn, now, event, SYSTEM_ACTOR, request_id=request_id, detail=detail)
    return request_from_row(row)


def record_issued(
    conn: Connection,
    request_id: str,
    certificate: CertificateRecord,
    supersedes: str | None,
    now: datetime,
) -> RequestRecord:
    """Certificate row + request issued + supersession + audit, or nothing (idempotent)."""
    if _sqlite(conn):
        return _record_issued_sqlite(conn, request_id, certificate, supersedes, now)
    params = {
        "rid": request_id,
        "state": RequestState.ISSUED.value,
        "certificate_serial": certificate.serial,
        "next_poll_at": None,
        "updated_at": now,
    }
    row = conn.execute(_UPDATE_OPEN_REQUEST, params).first()
    if row is None:
        current = _existing(conn, request_id)
        if current.state == RequestState.ISSUED.value:  # a replayed outcome changes nothing
            return request_from_row(current)
        raise _illegal(current, RequestState.ISSUED)
    try:
        conn.execute(_INSERT_CERT, certificate_values(certificate))
    except sa.exc.IntegrityError as exc:
        raise Conflict(f"certificate serial {certificate.serial} is already recorded") from exc
    if supersedes is not None:
        conn.execute(_MARK_SUPERSEDED, {"old": supersedes, "new": certificate.serial})
    _audit_issued(conn, request_id, certificate, supersedes, now)
    return request_from_row(row)


def _audit_issued(
    conn: Connection,
    request_id: str,
    certificate: CertificateRecord,
    supersedes: str | None,
    now: datetime,
) -> None:
    append_audit(
        conn,
        now,
        "certificate.issued",
        SYSTEM_ACTOR,
        request_id=request_id,
        serial=certificate.serial,
        detail=_issued_detail(certificate, supersedes),
    )


def _issued_detail(certificate: CertificateRecord, supersedes: str | None) -> dict[str, Any]:
    return {
        "serial": certificate.serial,
        "template": certificate.template,
        "template_major": certificate.template_major,
        "requester": certificate.requester,
        "subject": certificate.subject,
        "not_after": certificate.not_after.isoformat(),
        "supersedes": supersedes,
    }


def _record_issued_sqlite(
    conn: Connection,
    request_id: str,
    certificate: CertificateRecord,
    supersedes: str | None,
    now: datetime,
) -> RequestRecord:
    """:func:`record_issued` on the raw SQLite cursor (same statements, same semantics)."""
    params = (RequestState.ISSUED.value, certificate.serial, fast.encode_datetime(now), request_id)
    if fast.execute(conn, _FAST_ISSUE, params) == 0:
        current = _existing(conn, request_id)
        if current.state == RequestState.ISSUED.value:
            return request_from_row(current)
        raise _illegal(current, RequestState.ISSUED)
    try:
        fast.insert(conn, _FAST_CERTS, certificate_values(certificate))
    except sa.exc.IntegrityError as exc:
        raise Conflict(f"certificate serial {certificate.serial} is already recorded") from exc
    if supersedes is not None:
        fast.execute(conn, _FAST_SUPERSEDE, (certificate.serial, supersedes))
    _audit_issued(conn, request_id, certificate, supersedes, now)
    row = _FAST_REQUESTS.get(conn, request_id)
    assert row is not None
    return request_from_row(row)


def claim_due_polls(
    conn: Connection, now: datetime, lease_seconds: int, limit: int
) -> list[RequestRecord]:
    """One ``UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED) RETURNING``.

    On PostgreSQL a competing claimer skips rows another transaction has locked, and a row
    claimed and committed meanwhile is re-checked against the WHERE clause and dropped; on
    SQLite the write transaction already excludes every other writer. ``FOR UPDATE`` renders
    as nothing there.
    """
    lease = timedelta(seconds=lease_seconds)
    due = sa.or_(_REQ.next_poll_at.is_(None), _REQ.next_poll_at <= now)
    candidates = (
        sa.select(_REQ.id)
        .where(
            sa.or_(
                sa.and_(
                    _REQ.state == RequestState.PENDING.value,
                    _REQ.pending_reason == PendingReason.CA.value,
                    due,
                ),
                sa.and_(
                    _REQ.state == RequestState.RECEIVED.value,
                    _REQ.updated_at < now - lease,
                    due,
                ),
            )
        )
        .order_by(_REQ.created_at, _REQ.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    stmt = (
        sa.update(requests)
        .where(_REQ.id.in_(candidates.scalar_subquery()))
        .values(next_poll_at=now + lease)
        .returning(*requests.c)
    )
    records = [request_from_row(row) for row in conn.execute(stmt)]
    records.sort(key=lambda r: (r.created_at, r.id))
    return records


# --- certificates ---------------------------------------------------------------------------


def get_certificate(conn: Connection, serial: str) -> CertificateRecord | None:
    if _sqlite(conn):  # every ACME download, EST client-certificate check and outcome read
        found = _FAST_CERTS.get(conn, serial)
        return None if found is None else certificate_from_row(found)
    row = conn.execute(_SELECT_CERT_BY_SERIAL, {"s": serial}).first()
    return None if row is None else certificate_from_row(row)


def list_certificates(
    conn: Connection, status: CertificateStatus | None, limit: int
) -> list[CertificateRecord]:
    stmt = _SELECT_CERT.order_by(_CERT.not_before.desc(), _CERT.serial).limit(limit)
    if status is not None:
        stmt = stmt.where(_CERT.status == status.value)
    return [certificate_from_row(row) for row in conn.execute(stmt)]


def revoke_certificate(
    conn: Connection, serial: str, reason: RevocationReason, when: datetime, now: datetime
) -> CertificateRecord:
    params = {
        "s": serial,
        "status": CertificateStatus.REVOKED.value,
        "revoked_at": when,
        "revocation_reason": int(reason),
    }
    row = conn.execute(_REVOKE, params).first()
    if row is None:
        if conn.execute(_SELECT_CERT_BY_SERIAL, {"s": serial}).first() is None:
            raise NotFound(f"no certificate with serial {serial}")
        raise Conflict(f"certificate {serial} is already revoked")
    append_audit(
        conn,
        now,
        "certificate.revoked",
        SYSTEM_ACTOR,
        request_id=row.request_id,
        serial=serial,
        detail={"reason": reason.name.lower(), "reason_code": int(reason), "at": when.isoformat()},
    )
    return certificate_from_row(row)


def revoked_certificates(conn: Connection) -> list[CertificateRecord]:
    stmt = _SELECT_CERT.where(_CERT.status == CertificateStatus.REVOKED.value).order_by(
        _CERT.revoked_at, _CERT.serial
    )
    return [certificate_from_row(row) for row in conn.execute(stmt)]


# --- issuance journal -----------------------------------------------------------------------


def journal_get(conn: Connection, request_id: str) -> bytes | None:
    der = conn.execute(_SELECT_JOURNAL, {"rid": request_id}).scalar_one_or_none()
    return None if der is None else bytes(der)


def journal_put(conn: Connection, request_id: str, der: bytes, now: datetime) -> bytes:
    """Insert; a second put for the same id raises ``IntegrityError`` (the caller then reads
    the certificate that was recorded first)."""
    values = {"request_id": request_id, "certificate_der": der, "created_at": now}
    if _sqlite(conn):
        fast.insert(conn, _FAST_JOURNAL, values)
    else:
        conn.execute(_INSERT_JOURNAL, values)
    return der
