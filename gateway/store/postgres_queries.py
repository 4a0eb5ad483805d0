"""The PostgreSQL repository of the core store: :class:`PostgresQueries`.

It is :class:`~gateway.store.repository.CoreQueries` with the statements every enrollment runs
sent straight to asyncpg (:func:`gateway.store.engine.driver_body`: no SQLAlchemy connection,
greenlet, compilation or result processing, about 0.15 ms of the gateway's CPU each), and its
writes as *one* statement each: the request row, its certificate (and the supersession of the
one it replaces) and its audit events go to the server as one ``WITH ... INSERT``
(data-modifying common table expressions), which PostgreSQL runs atomically on its own, so no
BEGIN/COMMIT either. An in-process issuance costs one round trip instead of six (BEGIN,
request, audit, certificate, audit, COMMIT); each round trip costs the gateway about
0.15-0.25 ms of CPU in asyncpg and asyncio (bench/est_load.py --store postgresql,
docs/performance.md), which was most of what PostgreSQL cost over SQLite.

The rows written are the ones Core writes (the JSON columns through the JSON codecs
SQLAlchemy installs on every pooled connection); tests/contract/test_store_paths_postgres.py
runs every store operation through both repositories on PostgreSQL and compares the tables.
Everything else (other reads, transitions, the error paths) is inherited from Core.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import sqlalchemy as sa

from gateway.model import AttemptHead, CertificateRecord, RequestRecord
from gateway.store.core_audit import SYSTEM_ACTOR
from gateway.store.core_requests import issued_detail, received_detail
from gateway.store.engine import driver_body
from gateway.store.repository import CoreQueries
from gateway.store.rows import (
    ATTEMPT_COLUMNS,
    attempt_from_row,
    certificate_from_row,
    certificate_params,
    request_from_row,
    request_params,
)
from gateway.store.tables import certificates, requests

_REQUEST_COLUMNS = tuple(c.name for c in requests.columns)
_CERTIFICATE_COLUMNS = tuple(c.name for c in certificates.columns)
_AUDIT_COLUMNS = ("at", "event", "actor", "request_id", "serial", "detail")


def _utc(value: datetime | None) -> datetime | None:
    """As :class:`gateway.store.tables.UTCDateTime` binds it: naive datetimes are refused."""
    if value is None:
        return None
    if value.tzinfo is None:  # raised as Core raises it: StatementError around ValueError
        text = "naive datetime given to the store; use timezone-aware UTC"
        raise sa.exc.StatementError(text, None, None, ValueError(text))  # type: ignore[arg-type]
    return value.astimezone(UTC)


def _request_params(r: RequestRecord) -> tuple[Any, ...]:
    """``r`` in :data:`_REQUEST_COLUMNS` order (checked at import below)."""
    return request_params(r, _utc)


def _certificate_params(c: CertificateRecord) -> tuple[Any, ...]:
    """``c`` in :data:`_CERTIFICATE_COLUMNS` order."""
    return certificate_params(c, _utc)


if _REQUEST_COLUMNS != (
    "id", "protocol", "transaction_id", "template", "kind", "requester", "requester_principal",
    "csr_der", "spki_sha256", "state", "pending_reason", "connector", "ca_request_id",
    "denial_code", "denial_rule", "denial_detail", "certificate_serial", "prior_serial",
    "not_before", "not_after", "next_poll_at", "created_at", "updated_at",
) or _CERTIFICATE_COLUMNS != (
    "serial", "request_id", "subject", "sans", "template", "template_major", "requester",
    "not_before", "not_after", "status", "der", "spki_sha256", "issuer", "revoked_at",
    "revocation_reason", "superseded_by",
):  # fmt: skip  # pragma: no cover - a schema change must update the tuples above
    raise AssertionError("postgres_queries parameter order is out of date with the tables")


_SELECT_REQUEST_BY_TXN = (
    f"SELECT {', '.join(_REQUEST_COLUMNS)} FROM requests "  # noqa: S608
    "WHERE protocol = $1 AND transaction_id = $2"
)
_SELECT_ATTEMPTS_BY_TXNS = (
    f"SELECT {', '.join(ATTEMPT_COLUMNS)} FROM requests "  # noqa: S608
    "WHERE protocol = $1 AND transaction_id = ANY($2::text[])"
)
_SELECT_REQUESTS_BY_KEY = (
    f"SELECT {', '.join(_REQUEST_COLUMNS)} FROM requests "  # noqa: S608
    "WHERE requester_principal = $1 AND spki_sha256 = $2 AND template = $3 AND protocol = $4 "
    "ORDER BY created_at DESC, id DESC"
)
_SELECT_CERTIFICATE = (
    f"SELECT {', '.join(_CERTIFICATE_COLUMNS)} FROM certificates WHERE serial = $1"  # noqa: S608
)


@functools.lru_cache(maxsize=16)
def _with_sql(shape: tuple[tuple[str, int, int], ...]) -> str:
    """The text of a ``WITH`` statement of the given parts, ``$n`` numbered in order: a part is
    (table, columns per row, rows) for an INSERT, or ("supersede", 2, 1). Built once per shape
    (there are four: request + one or two events, an issuance with or without supersession)."""
    ctes, n = [], 0
    for i, (table, width, rows) in enumerate(shape):
        if table == "supersede":
            part = f"UPDATE certificates SET superseded_by = ${n + 1} WHERE serial = ${n + 2}"  # noqa: S608
        else:
            columns = _COLUMNS[table]
            values = ", ".join(
                "(" + ", ".join(f"${n + r * width + c + 1}" for c in range(width)) + ")"
                for r in range(rows)
            )
            # table and column names are this module's constants; every value is a $n parameter
            part = f"INSERT INTO {table} ({', '.join(columns)}) VALUES {values}"  # noqa: S608
        ctes.append(f"w{i} AS ({part})")
        n += width * rows
    return f"WITH {', '.join(ctes)} SELECT 1"


_COLUMNS = {
    "requests": _REQUEST_COLUMNS,
    "certificates": _CERTIFICATE_COLUMNS,
    "audit_events": _AUDIT_COLUMNS,
}


class _Statement:
    """One ``WITH`` statement built from parts (its text cached per shape)."""

    def __init__(self) -> None:
        self.shape: list[tuple[str, int, int]] = []
        self.params: list[Any] = []

    def insert(self, table: str, rows: Sequence[Sequence[Any]]) -> None:
        width = len(_COLUMNS[table])
        for row in rows:
            assert len(row) == width
            self.params.extend(row)
        self.shape.append((table, width, len(rows)))

    def supersede(self, old: str, new: str) -> None:
        self.params.extend((new, old))
        self.shape.append(("supersede", 2, 1))

    async def run(self, conn: asyncpg.Connection) -> None:
        await conn.execute(_with_sql(tuple(self.shape)), *self.params)


def _audit(
    now: datetime, event: str, actor: str, request_id: str, serial: str | None, detail: Any
) -> tuple[Any, ...]:
    return (now, event, actor, request_id, serial, json.dumps(detail))


def _received(record: RequestRecord, at: datetime) -> tuple[Any, ...]:
    principal = record.requester.principal
    return _audit(at, "request.received", principal, record.id, None, received_detail(record))


async def _request_with_events(
    conn: asyncpg.Connection, record: RequestRecord, events: list[tuple[Any, ...]]
) -> None:
    statement = _Statement()
    statement.insert("requests", [_request_params(record)])
    statement.insert("audit_events", events)
    await statement.run(conn)


def _now(now: datetime) -> datetime:
    at = _utc(now)
    assert at is not None
    return at


class PostgresQueries(CoreQueries):
    """:class:`CoreQueries` with each enrollment's statements on asyncpg, its writes as one
    statement each (PostgreSQL only: the engine must be
    :class:`gateway.store.postgres.AsyncDatabase`). The driver bodies are coroutines on the
    asyncpg connection where Core's are functions on a SQLAlchemy one; nothing but the engine
    calls them."""

    @driver_body
    async def create_request(  # type: ignore[override]
        self, conn: asyncpg.Connection, record: RequestRecord, now: datetime
    ) -> RequestRecord:
        await _request_with_events(conn, record, [_received(record, _now(now))])
        return record

    @driver_body
    async def create_denied(  # type: ignore[override]
        self, conn: asyncpg.Connection, record: RequestRecord, now: datetime
    ) -> RequestRecord:
        detail = {
            "code": record.denial_code,
            "rule": record.denial_rule,
            "detail": record.denial_detail,
        }
        at = _now(now)
        denied = _audit(at, "request.denied", SYSTEM_ACTOR, record.id, None, detail)
        await _request_with_events(conn, record, [_received(record, at), denied])
        return record

    @driver_body
    async def create_issued(  # type: ignore[override]
        self,
        conn: asyncpg.Connection,
        record: RequestRecord,
        certificate: CertificateRecord,
        supersedes: str | None,
        now: datetime,
    ) -> RequestRecord:
        at = _now(now)
        statement = _Statement()
        statement.insert("requests", [_request_params(record)])
        statement.insert("certificates", [_certificate_params(certificate)])
        if supersedes is not None:
            statement.supersede(supersedes, certificate.serial)
        issued = _audit(
            at,
            "certificate.issued",
            SYSTEM_ACTOR,
            record.id,
            certificate.serial,
            issued_detail(certificate, supersedes),
        )
        # one multi-row INSERT: the ids follow the VALUES order (received, then issued)
        statement.insert("audit_events", [_received(record, at), issued])
        await statement.run(conn)
        return record

    @driver_body
    async def find_request(  # type: ignore[override]
        self, conn: asyncpg.Connection, protocol: str, transaction_id: str
    ) -> RequestRecord | None:
        # every enrollment asks this first
        row = await conn.fetchrow(_SELECT_REQUEST_BY_TXN, protocol, transaction_id)
        return None if row is None else request_from_row(SimpleNamespace(**row))

    @driver_body
    async def find_attempts(  # type: ignore[override]
        self, conn: asyncpg.Connection, protocol: str, transaction_ids: Sequence[str]
    ) -> dict[str, AttemptHead]:
        # EST's and SCEP's retry logic: a transaction's attempts on every enrollment
        if not transaction_ids:
            return {}
        rows = await conn.fetch(_SELECT_ATTEMPTS_BY_TXNS, protocol, list(transaction_ids))
        heads = (attempt_from_row(SimpleNamespace(**row)) for row in rows)
        return {a.transaction_id: a for a in heads}

    @driver_body
    async def find_requests_by_key(  # type: ignore[override]
        self,
        conn: asyncpg.Connection,
        protocol: str,
        principal: str,
        spki_sha256: str,
        template: str,
    ) -> list[RequestRecord]:
        rows = await conn.fetch(_SELECT_REQUESTS_BY_KEY, principal, spki_sha256, template, protocol)
        return [request_from_row(SimpleNamespace(**row)) for row in rows]

    @driver_body
    async def get_certificate(  # type: ignore[override]
        self, conn: asyncpg.Connection, serial: str
    ) -> CertificateRecord | None:
        # every ACME download, EST client-certificate check and outcome read
        row = await conn.fetchrow(_SELECT_CERTIFICATE, serial)
        return None if row is None else certificate_from_row(SimpleNamespace(**row))
