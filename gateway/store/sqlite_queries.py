"""The raw-SQLite repository of the core store: :class:`SQLiteQueries`.

It is :class:`~gateway.store.repository.CoreQueries` with the statements of the hot paths (the
ones every enrollment, issuance or download runs) sent straight to the ``sqlite3`` cursor of
the transaction the engine opened, with the toolkit of :mod:`gateway.store.sqlite_fast`:
inserting a request, an audit event or a journal entry (:meth:`SQLiteQueries.insert_row`, which
Core's bodies call for those rows), inserting a certificate, the issuance itself,
the two lookups every enrollment asks first, and the certificate read. Everything else (and
the error paths) is inherited from Core and runs on the same connection. The rows written are
the ones Core writes, byte for byte; tests/contract/test_store_paths.py runs every store
operation through both repositories on SQLite and compares the tables.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.errors import Conflict
from gateway.model import (
    AttemptHead,
    CertificateRecord,
    PendingReason,
    RequestRecord,
    RequestState,
)
from gateway.store import sqlite_fast as fast
from gateway.store.core_audit import SYSTEM_ACTOR
from gateway.store.core_requests import illegal, issued_detail, received_detail
from gateway.store.repository import CoreQueries
from gateway.store.rows import (
    ATTEMPT_COLUMNS,
    certificate_from_row,
    certificate_params,
    certificate_values,
    request_from_row,
    request_params,
)
from gateway.store.tables import audit_events, ca_journal, certificates, requests

# --- fixed-order rows for the per-issuance statements ---------------------------------------
#
# The generic FastTable.encode looks up one encoder per key; the issuance path instead builds
# each row's parameter tuple in one expression, in the column order checked below at import.

_REQUEST_COLUMNS = (
    "id", "protocol", "transaction_id", "template", "kind", "requester", "requester_principal",
    "csr_der", "spki_sha256", "state", "pending_reason", "connector", "ca_request_id",
    "denial_code", "denial_rule", "denial_detail", "certificate_serial", "prior_serial",
    "not_before", "not_after", "next_poll_at", "created_at", "updated_at",
)  # fmt: skip
_CERTIFICATE_COLUMNS = (
    "serial", "request_id", "subject", "sans", "template", "template_major", "requester",
    "not_before", "not_after", "status", "der", "spki_sha256", "issuer", "revoked_at",
    "revocation_reason", "superseded_by",
)  # fmt: skip
if [c.name for c in requests.columns] != list(_REQUEST_COLUMNS) or [
    c.name for c in certificates.columns
] != list(_CERTIFICATE_COLUMNS):  # pragma: no cover - a schema change must update this module
    raise AssertionError("sqlite_queries column lists are out of date with gateway.store.tables")

INSERT_REQUEST = (
    f"INSERT INTO requests ({', '.join(_REQUEST_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join('?' for _ in _REQUEST_COLUMNS)})"
)
INSERT_CERTIFICATE = (
    f"INSERT INTO certificates ({', '.join(_CERTIFICATE_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join('?' for _ in _CERTIFICATE_COLUMNS)})"
)
INSERT_AUDIT = (
    "INSERT INTO audit_events (at, event, actor, request_id, serial, detail) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
SELECT_REQUEST_BY_TXN = (
    f"SELECT {', '.join(_REQUEST_COLUMNS)} FROM requests "  # noqa: S608
    "WHERE protocol = ? AND transaction_id = ?"
)


@functools.lru_cache(maxsize=16)
def _select_attempts_by_txns(count: int) -> str:
    """The :class:`AttemptHead` columns of ``count`` transaction ids at once."""
    return (
        f"SELECT {', '.join(ATTEMPT_COLUMNS)} FROM requests "  # noqa: S608
        f"WHERE protocol = ? AND transaction_id IN ({', '.join('?' * count)})"
    )


SELECT_REQUESTS_BY_KEY = (
    f"SELECT {', '.join(_REQUEST_COLUMNS)} FROM requests "  # noqa: S608
    "WHERE requester_principal = ? AND spki_sha256 = ? AND template = ? AND protocol = ? "
    "ORDER BY created_at DESC, id DESC"
)

_dt = fast.encode_datetime


def request_row(r: RequestRecord) -> tuple[Any, ...]:
    """``r`` as INSERT_REQUEST parameters, encoded as the Core column types would."""
    return request_params(r, _dt)


def certificate_row(c: CertificateRecord) -> tuple[Any, ...]:
    """``c`` as INSERT_CERTIFICATE parameters."""
    return certificate_params(c, _dt)


_INSERT_TWO_AUDITS = INSERT_AUDIT + ", (?, ?, ?, ?, ?, ?)"
_ISSUE = (
    "UPDATE requests SET state = ?, certificate_serial = ?, next_poll_at = NULL, "
    "updated_at = ? WHERE id = ? AND state IN ('received', 'pending')"
)
_SUPERSEDE = "UPDATE certificates SET superseded_by = ? WHERE serial = ?"

_CERTS = fast.FastTable(certificates)
_FAST_TABLES = {table: fast.FastTable(table) for table in (requests, audit_events, ca_journal)}
_REQUESTS = _FAST_TABLES[requests]


class SQLiteQueries(CoreQueries):
    """:class:`CoreQueries` with the hot statements on the raw ``sqlite3`` cursor (SQLite
    only: the engine must be :class:`gateway.store.sqlite_engine.SQLiteDatabase`)."""

    raw_sqlite = True

    def insert_row(self, conn: Connection, table: sa.Table, values: Mapping[str, Any]) -> None:
        # the audit, request and journal rows every enrollment writes (Core's bodies call this)
        fast.insert(conn, _FAST_TABLES[table], values)

    def create_issued(
        self,
        conn: Connection,
        record: RequestRecord,
        certificate: CertificateRecord,
        supersedes: str | None,
        now: datetime,
    ) -> RequestRecord:
        """The same rows and audit events as Core, each row's parameters built in one
        expression (the fixed column order above), on one cursor."""
        at = fast.encode_datetime(now)
        statements: list[tuple[str, tuple[Any, ...]]] = [
            (INSERT_REQUEST, request_row(record)),
            (INSERT_CERTIFICATE, certificate_row(certificate)),
        ]
        if supersedes is not None:
            statements.append((_SUPERSEDE, (certificate.serial, supersedes)))
        # both events in one statement, in order (received, then issued)
        statements.append(
            (
                _INSERT_TWO_AUDITS,
                (at, "request.received", record.requester.principal, record.id, None,
                 fast.encode_json(received_detail(record)),
                 at, "certificate.issued", SYSTEM_ACTOR, record.id, certificate.serial,
                 fast.encode_json(issued_detail(certificate, supersedes))),
            )
        )  # fmt: skip
        fast.run_statements(conn, statements)
        return record

    def find_request(
        self, conn: Connection, protocol: str, transaction_id: str
    ) -> RequestRecord | None:
        # every enrollment asks this first
        raw = fast.fetch_one(conn, SELECT_REQUEST_BY_TXN, (protocol, transaction_id))
        return None if raw is None else request_from_row(_REQUESTS.decode(raw))

    def find_attempts(
        self, conn: Connection, protocol: str, transaction_ids: Sequence[str]
    ) -> dict[str, AttemptHead]:
        # EST's and SCEP's retry logic: a transaction's attempts on every enrollment
        if not transaction_ids:
            return {}
        sql = _select_attempts_by_txns(len(transaction_ids))
        found = {}
        for id_, txn, state, pending, csr, spki, updated in fast.fetch_all(
            conn, sql, (protocol, *transaction_ids)
        ):
            found[txn] = AttemptHead(
                id_,
                txn,
                RequestState(state),
                None if pending is None else PendingReason(pending),
                csr,
                spki,
                fast.decode_utc(updated),
            )
        return found

    def find_requests_by_key(
        self, conn: Connection, protocol: str, principal: str, spki_sha256: str, template: str
    ) -> list[RequestRecord]:
        # EST asks this on every enrollment
        rows = fast.fetch_all(
            conn, SELECT_REQUESTS_BY_KEY, (principal, spki_sha256, template, protocol)
        )
        return [request_from_row(_REQUESTS.decode(row)) for row in rows]

    def record_issued(
        self,
        conn: Connection,
        request_id: str,
        certificate: CertificateRecord,
        supersedes: str | None,
        now: datetime,
    ) -> RequestRecord:
        params = (
            RequestState.ISSUED.value,
            certificate.serial,
            fast.encode_datetime(now),
            request_id,
        )
        if fast.execute(conn, _ISSUE, params) == 0:
            current = self.existing(conn, request_id)
            if current.state == RequestState.ISSUED.value:
                return request_from_row(current)
            raise illegal(current, RequestState.ISSUED)
        try:
            fast.insert(conn, _CERTS, certificate_values(certificate))
        except sa.exc.IntegrityError as exc:
            raise Conflict(f"certificate serial {certificate.serial} is already recorded") from exc
        if supersedes is not None:
            fast.execute(conn, _SUPERSEDE, (certificate.serial, supersedes))
        self.audit_issued(conn, request_id, certificate, supersedes, now)
        row = _REQUESTS.get(conn, request_id)
        assert row is not None
        return request_from_row(row)

    def get_certificate(self, conn: Connection, serial: str) -> CertificateRecord | None:
        # every ACME download, EST client-certificate check and outcome read
        found = _CERTS.get(conn, serial)
        return None if found is None else certificate_from_row(found)
