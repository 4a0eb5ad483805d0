"""The core store's repository: one interface, two implementations, chosen once at open.

:class:`StoreQueries` is every statement the core store runs on its state (requests and their
outcomes, the certificate inventory, revocations, the audit trail, the issuance journal), as
synchronous transaction bodies ``body(conn, *args)`` that a
:class:`~gateway.store.engine.Database` runs in one transaction. :class:`gateway.store.SQLStore`
(the async :class:`gateway.ports.Store`) decides the transaction mode and the conflict
handling; the repository decides the statements. Implementations:

* :class:`CoreQueries`: SQLAlchemy Core, the plain path, on PostgreSQL and SQLite alike
  (:mod:`gateway.store.core_requests`, :mod:`~gateway.store.core_inventory`,
  :mod:`~gateway.store.core_audit`).
* :class:`gateway.store.sqlite_queries.SQLiteQueries`: the fast path on SQLite, the hot
  statements on the raw ``sqlite3`` cursor; it must equal the plain path row for row
  (tests/contract/test_store_paths.py).
* :class:`gateway.store.postgres_queries.PostgresQueries`: the fast path on PostgreSQL, each
  enrollment's reads and writes as one asyncpg statement each (no SQLAlchemy machinery, no
  BEGIN/COMMIT); it, too, must equal the plain path (tests/contract/test_store_paths_postgres.py).

:func:`queries_for` is the one place that chooses, when the store opens; no body asks which
database it runs on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol, cast

from sqlalchemy.engine import Connection

from gateway.model import (
    AttemptHead,
    AuditEvent,
    CertificateRecord,
    CertificateStatus,
    RequestRecord,
    RequestState,
    RevocationReason,
)
from gateway.store.core_requests import RequestQueries
from gateway.store.core_search import SearchQueries


class StoreQueries(Protocol):
    """The core store's transaction bodies (contracts: :class:`CoreQueries`' methods and
    :class:`gateway.ports.Store`). A body never reads the clock and never awaits; it may be
    run again after ``SQLITE_BUSY`` or a dropped connection, so it keeps no state outside the
    database. Unique violations surface as ``sqlalchemy.exc.IntegrityError``."""

    #: True for the raw-SQLite implementation (:attr:`gateway.store.SQLStore.raw_sqlite`).
    raw_sqlite: bool

    # -- requests --------------------------------------------------------------------------
    def create_request(
        self, conn: Connection, record: RequestRecord, now: datetime
    ) -> RequestRecord: ...
    def create_issued(
        self,
        conn: Connection,
        record: RequestRecord,
        certificate: CertificateRecord,
        supersedes: str | None,
        now: datetime,
    ) -> RequestRecord: ...
    def create_denied(
        self, conn: Connection, record: RequestRecord, now: datetime
    ) -> RequestRecord: ...
    def get_request(self, conn: Connection, request_id: str) -> RequestRecord | None: ...
    def find_request(
        self, conn: Connection, protocol: str, transaction_id: str
    ) -> RequestRecord | None: ...
    def find_attempts(
        self, conn: Connection, protocol: str, transaction_ids: Sequence[str]
    ) -> dict[str, AttemptHead]: ...
    def list_requests(
        self, conn: Connection, state: RequestState | None, limit: int
    ) -> list[RequestRecord]: ...
    def find_requests_by_key(
        self, conn: Connection, protocol: str, principal: str, spki_sha256: str, template: str
    ) -> list[RequestRecord]: ...
    def transition(
        self,
        conn: Connection,
        request_id: str,
        target: RequestState,
        values: Mapping[str, Any],
        now: datetime,
        event: str,
        detail: Mapping[str, Any],
    ) -> RequestRecord: ...
    def record_issued(
        self,
        conn: Connection,
        request_id: str,
        certificate: CertificateRecord,
        supersedes: str | None,
        now: datetime,
    ) -> RequestRecord: ...
    def claim_due_polls(
        self, conn: Connection, now: datetime, lease_seconds: int, limit: int
    ) -> list[RequestRecord]: ...

    # -- certificates and revocations ------------------------------------------------------
    def get_certificate(self, conn: Connection, serial: str) -> CertificateRecord | None: ...
    def list_certificates(
        self, conn: Connection, status: CertificateStatus | None, limit: int
    ) -> list[CertificateRecord]: ...
    def revoke_certificate(
        self,
        conn: Connection,
        serial: str,
        reason: RevocationReason,
        when: datetime,
        now: datetime,
    ) -> CertificateRecord: ...
    def revoked_certificates(self, conn: Connection) -> list[CertificateRecord]: ...

    # -- audit -----------------------------------------------------------------------------
    def append_audit(
        self,
        conn: Connection,
        now: datetime,
        event: str,
        actor: str,
        request_id: str | None = None,
        serial: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> None: ...
    def list_audit(
        self, conn: Connection, request_id: str | None, limit: int
    ) -> list[AuditEvent]: ...
    def search_audit(
        self,
        conn: Connection,
        *,
        since: datetime | None = None,
        events: Sequence[str] = (),
        serial: str | None = None,
        request_id: str | None = None,
        limit: int = 100,
    ) -> list[AuditEvent]: ...
    def get_audit(self, conn: Connection, event_id: int) -> AuditEvent | None: ...

    # -- operator searches (admin API, console; contracts: core_search.SearchQueries) -------
    def search_requests(
        self,
        conn: Connection,
        *,
        states: Sequence[str] = (),
        protocol: str | None = None,
        template: str | None = None,
        requester: str | None = None,
        after: tuple[datetime, str] | None = None,
        limit: int = 100,
    ) -> tuple[list[RequestRecord], bool]: ...
    def count_requests(self, conn: Connection, state: str, pending_reason: str | None) -> int: ...
    def search_certificates(
        self,
        conn: Connection,
        now: datetime,
        *,
        q: str | None = None,
        subject: str | None = None,
        san: str | None = None,
        serial: str | None = None,
        template: str | None = None,
        status: str | None = None,
        expires_before: datetime | None = None,
        expires_after: datetime | None = None,
        after: tuple[datetime, str] | None = None,
        limit: int = 100,
    ) -> tuple[list[CertificateRecord], bool]: ...
    def expiry_dates(self, conn: Connection, start: datetime, end: datetime) -> list[datetime]: ...
    def search_audit_page(
        self,
        conn: Connection,
        *,
        events: Sequence[str] = (),
        actor: str | None = None,
        request_id: str | None = None,
        serial: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        before_id: int | None = None,
        limit: int = 100,
    ) -> tuple[list[AuditEvent], bool]: ...

    # -- issuance journal ------------------------------------------------------------------
    def journal_get(self, conn: Connection, request_id: str) -> bytes | None: ...
    def journal_put(
        self, conn: Connection, request_id: str, der: bytes, now: datetime
    ) -> bytes: ...


class CoreQueries(RequestQueries, SearchQueries):
    """The SQLAlchemy Core repository: the plain path, on every database."""

    raw_sqlite = False


def queries_for(
    dialect_name: str, *, raw_sqlite: bool = True, fast_postgres: bool = True
) -> StoreQueries:
    """The repository for a database: the raw-SQLite one on SQLite unless ``raw_sqlite`` is
    false (tests run the plain path on SQLite to compare), the one-statement writes on
    PostgreSQL unless ``fast_postgres`` is false (likewise), Core everywhere else."""
    if dialect_name == "sqlite" and raw_sqlite:
        from gateway.store.sqlite_queries import SQLiteQueries  # subclasses CoreQueries

        return SQLiteQueries()
    if dialect_name == "postgresql" and fast_postgres:
        from gateway.store.postgres_queries import PostgresQueries  # subclasses CoreQueries

        # its driver bodies are coroutines that only the PostgreSQL engine runs (awaits)
        return cast(StoreQueries, PostgresQueries())
    return CoreQueries()
