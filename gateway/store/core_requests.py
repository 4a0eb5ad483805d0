"""Requests and their state machine in SQLAlchemy Core: create (received, issued or denied in
one transaction), find, list, transitions, issuance and the poller's claims.

Part of :class:`gateway.store.repository.CoreQueries`. Hot statements are built once at import
(SQLAlchemy caches their compiled form), and every write path is as short as it can be: a
conditional ``UPDATE ... RETURNING`` both checks the state machine and changes the row in one
statement; the follow-up read only happens on the error path. Bodies never read the clock:
``now`` comes from the caller, so a retried body writes the same facts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from gateway.errors import Conflict, NotFound
from gateway.model import (
    AttemptHead,
    CertificateRecord,
    PendingReason,
    RequestRecord,
    RequestState,
)
from gateway.store.core_audit import SYSTEM_ACTOR
from gateway.store.core_inventory import InventoryQueries
from gateway.store.rows import (
    ATTEMPT_COLUMNS,
    attempt_from_row,
    certificate_values,
    request_from_row,
    request_values,
)
from gateway.store.tables import certificates, requests

#: States a request can still leave; issued, denied and failed are final.
OPEN_STATES = (RequestState.RECEIVED, RequestState.PENDING)
# A constant fragment instead of ``in_([...])``: expanding IN lists are re-rendered per call.
_IS_OPEN = sa.text("state IN ({})".format(", ".join(f"'{s.value}'" for s in OPEN_STATES)))

_REQ = requests.c
_CERT = certificates.c

# Plain INSERTs: SQLAlchemy cannot cache the compiled form of ``ON CONFLICT`` inserts (it
# recompiled the 23-column request insert on every call, ~250 us), so a unique violation is
# caught instead (see SQLStore.create_request).
_INSERT_CERT = sa.insert(certificates)
_SELECT_REQUEST = sa.select(requests)
_SELECT_REQUEST_BY_ID = _SELECT_REQUEST.where(_REQ.id == sa.bindparam("rid"))
_SELECT_REQUEST_BY_TXN = _SELECT_REQUEST.where(
    _REQ.protocol == sa.bindparam("p"), _REQ.transaction_id == sa.bindparam("t")
)
_SELECT_ATTEMPTS_BY_TXNS = sa.select(*(requests.c[name] for name in ATTEMPT_COLUMNS)).where(
    _REQ.protocol == sa.bindparam("p"),
    _REQ.transaction_id.in_(sa.bindparam("ts", expanding=True)),
)
# Bound parameters, so SQLAlchemy compiles this once (EST looks it up on every enrollment).
_SELECT_REQUESTS_BY_KEY = _SELECT_REQUEST.where(
    _REQ.requester_principal == sa.bindparam("pr"),
    _REQ.spki_sha256 == sa.bindparam("k"),
    _REQ.template == sa.bindparam("tp"),
    _REQ.protocol == sa.bindparam("p"),
).order_by(_REQ.created_at.desc(), _REQ.id.desc())
#: SET columns come from the parameter keys; only open requests match.
_UPDATE_OPEN_REQUEST = (
    sa.update(requests).where(_REQ.id == sa.bindparam("rid"), _IS_OPEN).returning(*requests.c)
)
_MARK_SUPERSEDED = (
    sa.update(certificates)
    .where(_CERT.serial == sa.bindparam("old"))
    .values(superseded_by=sa.bindparam("new"))
)


def received_detail(record: RequestRecord) -> dict[str, Any]:
    """The ``request.received`` event's detail."""
    return {
        "protocol": record.protocol,
        "transaction_id": record.transaction_id,
        "template": record.template,
        "kind": record.kind.value,
        "auth_method": record.requester.auth_method,
        "spki_sha256": record.spki_sha256,
    }


def issued_detail(certificate: CertificateRecord, supersedes: str | None) -> dict[str, Any]:
    """The ``certificate.issued`` event's detail."""
    return {
        "serial": certificate.serial,
        "template": certificate.template,
        "template_major": certificate.template_major,
        "requester": certificate.requester,
        "subject": certificate.subject,
        "not_after": certificate.not_after.isoformat(),
        "supersedes": supersedes,
    }


def illegal(row: Row[Any], target: RequestState) -> Conflict:
    """The refusal of a transition out of a final state."""
    return Conflict(f"request {row.id!r} is {row.state}; it cannot become {target.value}")


class RequestQueries(InventoryQueries):
    """Request bodies (and, being the one base class, everything the inventory needs)."""

    def create_request(
        self, conn: Connection, record: RequestRecord, now: datetime
    ) -> RequestRecord:
        """Insert the request and its ``request.received`` audit event.

        A duplicate (protocol, transaction_id) raises ``IntegrityError`` and rolls back; the
        caller then reads the row that won (see :meth:`gateway.store.SQLStore.create_request`).
        """
        self.insert_row(conn, requests, request_values(record))
        self.append_audit(
            conn,
            now,
            "request.received",
            record.requester.principal,
            request_id=record.id,
            detail=received_detail(record),
        )
        return record

    def create_issued(
        self,
        conn: Connection,
        record: RequestRecord,
        certificate: CertificateRecord,
        supersedes: str | None,
        now: datetime,
    ) -> RequestRecord:
        """One transaction for an in-process CA: the request (already issued), its certificate,
        supersession and both audit events. A duplicate transaction raises ``IntegrityError``."""
        self.create_request(conn, record, now)
        conn.execute(_INSERT_CERT, certificate_values(certificate))
        if supersedes is not None:
            conn.execute(_MARK_SUPERSEDED, {"old": supersedes, "new": certificate.serial})
        self.audit_issued(conn, record.id, certificate, supersedes, now)
        return record

    def create_denied(
        self, conn: Connection, record: RequestRecord, now: datetime
    ) -> RequestRecord:
        """The request (already denied) and its ``request.received`` + ``request.denied``
        events."""
        self.create_request(conn, record, now)
        self.append_audit(
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

    def get_request(self, conn: Connection, request_id: str) -> RequestRecord | None:
        row = conn.execute(_SELECT_REQUEST_BY_ID, {"rid": request_id}).first()
        return None if row is None else request_from_row(row)

    def find_request(
        self, conn: Connection, protocol: str, transaction_id: str
    ) -> RequestRecord | None:
        row = conn.execute(_SELECT_REQUEST_BY_TXN, {"p": protocol, "t": transaction_id}).first()
        return None if row is None else request_from_row(row)

    def find_attempts(
        self, conn: Connection, protocol: str, transaction_ids: Sequence[str]
    ) -> dict[str, AttemptHead]:
        if not transaction_ids:
            return {}
        params = {"p": protocol, "ts": list(transaction_ids)}
        rows = conn.execute(_SELECT_ATTEMPTS_BY_TXNS, params)
        return {a.transaction_id: a for a in map(attempt_from_row, rows)}

    def list_requests(
        self, conn: Connection, state: RequestState | None, limit: int
    ) -> list[RequestRecord]:
        """Newest first."""
        stmt = _SELECT_REQUEST.order_by(_REQ.created_at.desc(), _REQ.id.desc()).limit(limit)
        if state is not None:
            stmt = stmt.where(_REQ.state == state.value)
        return [request_from_row(row) for row in conn.execute(stmt)]

    def find_requests_by_key(
        self, conn: Connection, protocol: str, principal: str, spki_sha256: str, template: str
    ) -> list[RequestRecord]:
        """Newest first."""
        params = {"pr": principal, "k": spki_sha256, "tp": template, "p": protocol}
        return [request_from_row(row) for row in conn.execute(_SELECT_REQUESTS_BY_KEY, params)]

    def existing(self, conn: Connection, request_id: str) -> Row[Any]:
        """The request's row, or ``NotFound`` (the error path of a refused transition)."""
        row = conn.execute(_SELECT_REQUEST_BY_ID, {"rid": request_id}).first()
        if row is None:
            raise NotFound(f"no request {request_id!r}")
        return row

    def transition(
        self,
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
            raise illegal(self.existing(conn, request_id), target)
        self.append_audit(conn, now, event, SYSTEM_ACTOR, request_id=request_id, detail=detail)
        return request_from_row(row)

    def record_issued(
        self,
        conn: Connection,
        request_id: str,
        certificate: CertificateRecord,
        supersedes: str | None,
        now: datetime,
    ) -> RequestRecord:
        """Certificate row + request issued + supersession + audit, or nothing (idempotent:
        a request already issued is returned as it is)."""
        params = {
            "rid": request_id,
            "state": RequestState.ISSUED.value,
            "certificate_serial": certificate.serial,
            "next_poll_at": None,
            "updated_at": now,
        }
        row = conn.execute(_UPDATE_OPEN_REQUEST, params).first()
        if row is None:
            current = self.existing(conn, request_id)
            if current.state == RequestState.ISSUED.value:  # a replayed outcome changes nothing
                return request_from_row(current)
            raise illegal(current, RequestState.ISSUED)
        try:
            conn.execute(_INSERT_CERT, certificate_values(certificate))
        except sa.exc.IntegrityError as exc:
            raise Conflict(f"certificate serial {certificate.serial} is already recorded") from exc
        if supersedes is not None:
            conn.execute(_MARK_SUPERSEDED, {"old": supersedes, "new": certificate.serial})
        self.audit_issued(conn, request_id, certificate, supersedes, now)
        return request_from_row(row)

    def audit_issued(
        self,
        conn: Connection,
        request_id: str,
        certificate: CertificateRecord,
        supersedes: str | None,
        now: datetime,
    ) -> None:
        """The ``certificate.issued`` event."""
        self.append_audit(
            conn,
            now,
            "certificate.issued",
            SYSTEM_ACTOR,
            request_id=request_id,
            serial=certificate.serial,
            detail=issued_detail(certificate, supersedes),
        )

    def claim_due_polls(
        self, conn: Connection, now: datetime, lease_seconds: int, limit: int
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
