"""``SQLStore``: the durable :class:`gateway.ports.Store` on SQLite or PostgreSQL.

It records facts and decides nothing. The only rules it keeps are the ones that make the
record trustworthy: the request state machine (received -> pending -> issued | denied |
failed; a final state is never left), one request per (protocol, transaction id), one
certificate per serial, and an audit trail nobody can rewrite.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.errors import Conflict
from gateway.model import (
    AttemptHead,
    AuditEvent,
    CertificateRecord,
    CertificateStatus,
    PendingReason,
    RequestRecord,
    RequestState,
    RevocationReason,
)
from gateway.ports import IssuanceJournal, Store
from gateway.store.engine import Body, Database, Mode, P, T
from gateway.store.journal import SQLJournal
from gateway.store.repository import StoreQueries


def _utc_now() -> datetime:
    return datetime.now(UTC)


class SQLStore:
    """The durable store (see :class:`gateway.ports.Store` for each method's contract).

    Every method is exactly one database transaction: the store picks the mode and handles
    conflicts, ``queries`` (the repository chosen when the store opened, see
    :mod:`gateway.store.repository`) runs the statements. ``clock`` supplies ``updated_at`` and
    audit timestamps (tests pass a fixed one). Protocol packages keep their own tables in the
    same database through :meth:`read` and :meth:`write`. The store is also the local CA's
    :class:`gateway.ports.IssuanceJournal` (``get``/``put``, or the ``journal`` attribute).
    """

    def __init__(
        self,
        database: Database,
        queries: StoreQueries,
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._db = database
        self._q = queries
        self._clock = clock or _utc_now
        self.journal = SQLJournal(database, queries, self._clock)

    @property
    def dialect_name(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._db.dialect_name

    @property
    def raw_sqlite(self) -> bool:
        """Whether this store opened with the raw-SQLite repository (the fast path). A
        protocol package with a raw-SQLite repository of its own chooses it on this flag,
        once, so both follow one choice (see :mod:`gateway.store.raw`)."""
        return self._q.raw_sqlite

    # -- extension points for protocol packages (ACME, SCEP state) ---------------------------

    async def read(self, body: Body[P, T], *args: P.args, **kw: P.kwargs) -> T:
        """Run ``body(conn, *args)`` (synchronous Core) without an explicit transaction: each
        statement sees the latest commit. Use :meth:`write` for an atomic multi-statement
        snapshot."""
        return await self._db.run(Mode.AUTOCOMMIT, body, *args, **kw)

    async def write(self, body: Body[P, T], *args: P.args, **kw: P.kwargs) -> T:
        """Run ``body(conn, *args)`` in one write transaction (serialized on SQLite). The body
        may run more than once on SQLite (after ``SQLITE_BUSY``), so it must not mutate its
        arguments or keep state outside the database; it must not await."""
        return await self._db.run(Mode.WRITE, body, *args, **kw)

    # -- gateway.ports.IssuanceJournal, so the store itself can be a connector's journal ------

    async def get(self, request_id: str) -> bytes | None:
        """The certificate journaled for ``request_id`` (see :class:`SQLJournal`)."""
        return await self.journal.get(request_id)

    async def put(self, request_id: str, certificate_der: bytes) -> bytes:
        """Journal a certificate; the first one recorded for the id wins and is returned."""
        return await self.journal.put(request_id, certificate_der)

    # -- lifecycle ----------------------------------------------------------------------------

    async def migrate(self) -> None:
        """``alembic upgrade head``, safe when several processes start at once."""
        # Alembic is imported here, not with the store: operator listings open the store
        # without migrating it and should not pay for loading Alembic (gateway.cli.opening).
        from gateway.store.upgrade import upgrade_to_head

        await self._db.run(Mode.WRITE, upgrade_to_head)

    async def close(self) -> None:
        await self._db.close()

    async def ping(self) -> None:
        """Readiness: the database answers (and, on SQLite, is still the file opened)."""
        self._db.check()
        await self._db.run(Mode.AUTOCOMMIT, _select_one)

    # -- requests -----------------------------------------------------------------------------

    async def create_request(self, record: RequestRecord) -> tuple[RequestRecord, bool]:
        """Insert + ``request.received`` audit; a duplicate (protocol, transaction_id) returns
        ``(existing, False)``. Race-safe: the unique constraint decides; the loser's
        transaction rolls back and it reads the winner's committed row."""
        try:
            created = await self._db.run(Mode.WRITE, self._q.create_request, record, self._clock())
        except sa.exc.IntegrityError:
            existing = await self.find_request(record.protocol, record.transaction_id)
            if existing is None:  # some other constraint (e.g. a reused id): a caller bug
                raise
            return existing, False
        return created, True

    async def create_issued(
        self, record: RequestRecord, certificate: CertificateRecord, supersedes: str | None
    ) -> tuple[RequestRecord, bool]:
        """Request + certificate + audit in one transaction (in-process CAs); a duplicate
        (protocol, transaction_id) writes nothing and returns ``(existing, False)``."""
        try:
            created = await self._db.run(
                Mode.WRITE, self._q.create_issued, record, certificate, supersedes, self._clock()
            )
        except sa.exc.IntegrityError:
            return await self._existing_after_conflict(record), False
        return created, True

    async def create_denied(self, record: RequestRecord) -> tuple[RequestRecord, bool]:
        """A request denied before the CA saw it, with its audit events, in one transaction."""
        try:
            created = await self._db.run(Mode.WRITE, self._q.create_denied, record, self._clock())
        except sa.exc.IntegrityError:
            return await self._existing_after_conflict(record), False
        return created, True

    async def _existing_after_conflict(self, record: RequestRecord) -> RequestRecord:
        existing = await self.find_request(record.protocol, record.transaction_id)
        if existing is None:  # another constraint (a reused id or serial): a caller bug
            raise Conflict(f"request {record.id} conflicts with stored data")
        return existing

    async def get_request(self, request_id: str) -> RequestRecord | None:
        return await self._db.run(Mode.AUTOCOMMIT, self._q.get_request, request_id)

    async def find_request(self, protocol: str, transaction_id: str) -> RequestRecord | None:
        return await self._db.run(Mode.AUTOCOMMIT, self._q.find_request, protocol, transaction_id)

    async def find_attempts(
        self, protocol: str, transaction_ids: Sequence[str]
    ) -> dict[str, AttemptHead]:
        """The requests stored under any of these exact (protocol, transaction key)s, by key,
        as the retry logic reads them (:class:`AttemptHead`): one query for what
        :meth:`find_request` answers one key at a time."""
        return await self._db.run(
            Mode.AUTOCOMMIT, self._q.find_attempts, protocol, tuple(transaction_ids)
        )

    async def list_requests(
        self, state: RequestState | None = None, limit: int = 100
    ) -> list[RequestRecord]:
        """Newest first."""
        return await self._db.run(Mode.AUTOCOMMIT, self._q.list_requests, state, limit)

    async def find_requests_by_key(
        self, protocol: str, principal: str, spki_sha256: str, template: str
    ) -> list[RequestRecord]:
        return await self._db.run(
            Mode.AUTOCOMMIT,
            self._q.find_requests_by_key,
            protocol,
            principal,
            spki_sha256,
            template,
        )

    async def set_pending(
        self,
        request_id: str,
        reason: PendingReason,
        *,
        connector: str | None = None,
        ca_request_id: str | None = None,
        next_poll_at: datetime | None = None,
    ) -> RequestRecord:
        """received|pending -> pending. ``connector``/``ca_request_id`` are kept when not
        given (a CA handle, once known, stays); ``next_poll_at`` is always set as given."""
        values: dict[str, Any] = {"pending_reason": reason.value, "next_poll_at": next_poll_at}
        if connector is not None:
            values["connector"] = connector
        if ca_request_id is not None:
            values["ca_request_id"] = ca_request_id
        detail = {"reason": reason.value, "connector": connector, "ca_request_id": ca_request_id}
        return await self._transition(
            request_id, RequestState.PENDING, values, "request.pending", detail
        )

    async def set_denied(
        self, request_id: str, code: str, detail: str, rule: str | None
    ) -> RequestRecord:
        values = {
            "denial_code": code,
            "denial_rule": rule,
            "denial_detail": detail,
            "next_poll_at": None,
        }
        audit = {"code": code, "rule": rule, "detail": detail}
        return await self._transition(
            request_id, RequestState.DENIED, values, "request.denied", audit
        )

    async def set_failed(self, request_id: str, detail: str) -> RequestRecord:
        """The failure text is kept in ``denial_detail`` (code and rule stay empty)."""
        values = {"denial_detail": detail, "next_poll_at": None}
        return await self._transition(
            request_id, RequestState.FAILED, values, "request.failed", {"detail": detail}
        )

    async def _transition(
        self,
        request_id: str,
        target: RequestState,
        values: Mapping[str, Any],
        event: str,
        detail: Mapping[str, Any],
    ) -> RequestRecord:
        return await self._db.run(
            Mode.WRITE, self._q.transition, request_id, target, values, self._clock(), event, detail
        )

    async def record_issued(
        self, request_id: str, certificate: CertificateRecord, supersedes: str | None = None
    ) -> RequestRecord:
        """Idempotent: for a request already issued, returns it and writes nothing."""
        return await self._db.run(
            Mode.WRITE, self._q.record_issued, request_id, certificate, supersedes, self._clock()
        )

    async def claim_due_polls(
        self, now: datetime, lease_seconds: int, limit: int = 20
    ) -> list[RequestRecord]:
        """CA-pending requests with ``next_poll_at`` due (or unset) and ``received`` requests
        idle longer than the lease; ``pending`` for approval waits for a person, not a poll."""
        return await self._db.run(Mode.WRITE, self._q.claim_due_polls, now, lease_seconds, limit)

    # -- certificates -------------------------------------------------------------------------

    async def get_certificate(self, serial: str) -> CertificateRecord | None:
        return await self._db.run(Mode.AUTOCOMMIT, self._q.get_certificate, serial)

    async def list_certificates(
        self, status: CertificateStatus | None = None, limit: int = 1000
    ) -> list[CertificateRecord]:
        """Most recently issued (``not_before``) first."""
        return await self._db.run(Mode.AUTOCOMMIT, self._q.list_certificates, status, limit)

    async def revoke_certificate(
        self, serial: str, reason: RevocationReason, when: datetime
    ) -> CertificateRecord:
        return await self._db.run(
            Mode.WRITE, self._q.revoke_certificate, serial, reason, when, self._clock()
        )

    async def revoked_certificates(self) -> list[CertificateRecord]:
        """Oldest revocation first (CRL order)."""
        return await self._db.run(Mode.AUTOCOMMIT, self._q.revoked_certificates)

    # -- audit --------------------------------------------------------------------------------

    async def audit(
        self,
        event: str,
        actor: str,
        *,
        request_id: str | None = None,
        serial: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        await self._db.run(
            Mode.WRITE,
            self._q.append_audit,
            self._clock(),
            event,
            actor,
            request_id,
            serial,
            detail,
        )

    async def audit_events(
        self, request_id: str | None = None, limit: int = 1000
    ) -> list[AuditEvent]:
        """The latest ``limit`` events, in the order they happened (oldest first)."""
        return await self._db.run(Mode.AUTOCOMMIT, self._q.list_audit, request_id, limit)

    async def search_audit(
        self,
        *,
        since: datetime | None = None,
        events: Sequence[str] = (),
        serial: str | None = None,
        request_id: str | None = None,
        limit: int = 100,
    ) -> list[AuditEvent]:
        """The newest ``limit`` events matching every filter given, oldest first. ``events``
        matches a name exactly or as a dotted prefix; ``since`` is inclusive."""
        return await self._db.run(
            Mode.AUTOCOMMIT,
            self._q.search_audit,
            since=since,
            events=events,
            serial=serial,
            request_id=request_id,
            limit=limit,
        )

    async def get_audit(self, event_id: int) -> AuditEvent | None:
        """One audit event by id, or ``None``."""
        return await self._db.run(Mode.AUTOCOMMIT, self._q.get_audit, event_id)

    # -- operator searches (gateway.store.core_search) -------------------------------------

    async def search_requests(self, **filters: Any) -> tuple[list[RequestRecord], bool]:
        """One page of requests, newest first, and whether more follow (see
        :meth:`gateway.store.core_search.SearchQueries.search_requests` for the filters)."""
        return await self._db.run(Mode.AUTOCOMMIT, self._search_requests, filters)

    def _search_requests(
        self, conn: Connection, filters: Mapping[str, Any]
    ) -> tuple[list[RequestRecord], bool]:
        return self._q.search_requests(conn, **filters)

    async def count_requests(
        self, state: RequestState, pending_reason: PendingReason | None = None
    ) -> int:
        """How many requests are in ``state`` (pending for ``pending_reason``, if given)."""
        reason = None if pending_reason is None else pending_reason.value
        return await self._db.run(Mode.AUTOCOMMIT, self._q.count_requests, state.value, reason)

    async def search_certificates(
        self, now: datetime, **filters: Any
    ) -> tuple[list[CertificateRecord], bool]:
        """One page of the inventory, newest first, and whether more follow (filters:
        :meth:`gateway.store.core_search.SearchQueries.search_certificates`)."""
        return await self._db.run(Mode.AUTOCOMMIT, self._search_certificates, now, filters)

    def _search_certificates(
        self, conn: Connection, now: datetime, filters: Mapping[str, Any]
    ) -> tuple[list[CertificateRecord], bool]:
        return self._q.search_certificates(conn, now, **filters)

    async def expiry_dates(self, start: datetime, end: datetime) -> list[datetime]:
        """``not_after`` of the valid certificates expiring in [start, end), soonest first."""
        return await self._db.run(Mode.AUTOCOMMIT, self._q.expiry_dates, start, end)

    async def search_audit_page(self, **filters: Any) -> tuple[list[AuditEvent], bool]:
        """One page of audit events, newest first, and whether more follow (filters:
        :meth:`gateway.store.core_search.SearchQueries.search_audit_page`)."""
        return await self._db.run(Mode.AUTOCOMMIT, self._search_audit_page, filters)

    def _search_audit_page(
        self, conn: Connection, filters: Mapping[str, Any]
    ) -> tuple[list[AuditEvent], bool]:
        return self._q.search_audit_page(conn, **filters)


def _select_one(conn: Connection) -> None:
    conn.exec_driver_sql("SELECT 1").scalar_one()


if TYPE_CHECKING:  # mypy proves the store satisfies the ports it is wired into

    def _conforms(store: SQLStore) -> tuple[Store, IssuanceJournal, IssuanceJournal]:
        return store, store, store.journal
