"""The fast path equals the plain path: the raw-SQLite repository
(gateway.store.sqlite_queries) and the SQLAlchemy Core repository, run through the same store
operations on two SQLite files, return equal records and leave byte-identical rows (same
values, same SQLite storage classes) in every table the core store writes."""

from __future__ import annotations

import dataclasses
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from gateway.errors import Conflict, NotFound
from gateway.model import (
    CertificateRecord,
    CertificateStatus,
    PendingReason,
    Requester,
    RequestKind,
    RequestRecord,
    RequestState,
    RevocationReason,
)
from gateway.store import SQLStore, default_sqlite_url, open_store
from tests.contract.conftest import StepClock

TABLES = ("requests", "certificates", "audit_events", "ca_journal")


def _request(clock: StepClock, n: int, **kw: Any) -> RequestRecord:
    now = clock.now()
    record = RequestRecord(
        id=f"req-{n}",
        protocol="est",
        transaction_id=f"txn-{n}",
        template="tls-server",
        kind=RequestKind.NEW,
        requester=Requester("est", f"user-{n % 2}", "basic", groups=frozenset({"web", "ops"})),
        csr_der=bytes([0x30, n]) * 50,
        spki_sha256=f"{n % 2:02x}" * 32,
        state=RequestState.RECEIVED,
        created_at=now,
        updated_at=now,
    )
    return dataclasses.replace(record, **kw)


def _certificate(request: RequestRecord, serial: str) -> CertificateRecord:
    return CertificateRecord(
        serial=serial,
        request_id=request.id,
        subject="CN=www.example.test",
        sans=("dns:www.example.test", "ip:192.0.2.1"),
        template=request.template,
        template_major=2,
        requester=request.requester.principal,
        not_before=request.created_at,
        not_after=request.created_at + timedelta(days=90),
        status=CertificateStatus.VALID,
        der=bytes([0x30, len(serial)]) * 100,
        spki_sha256=request.spki_sha256,
        issuer="CN=certgate test CA",
    )


async def _script(store: SQLStore, clock: StepClock) -> list[Any]:
    """Every store operation, the hot ones (overridden by the raw repository) on their happy
    and error paths; returns every answer (errors by type and text)."""
    answers: list[Any] = []

    async def note(call: Any) -> None:
        try:
            answers.append(await call)
        except (Conflict, NotFound, sa.exc.IntegrityError) as exc:
            answers.append((type(exc).__name__, str(exc).splitlines()[0]))

    r1, r2, r3, r4 = (_request(clock, n) for n in (1, 2, 3, 4))
    await note(store.create_request(r1))
    await note(store.create_request(r1))  # duplicate transaction
    await note(store.find_request("est", "txn-1"))
    await note(store.find_request("est", "nope"))
    await note(store.find_attempts("scep", ("txn-1",)))
    await note(store.find_attempts("est", ("nope", "txn-1")))
    clock.advance(1)
    await note(store.create_request(r2))
    await note(store.find_requests_by_key("est", "user-0", "00" * 32, "tls-server"))
    await note(store.find_requests_by_key("est", "user-1", "01" * 32, "tls-server"))
    clock.advance(1)
    await note(store.set_pending(r1.id, PendingReason.CA, connector="ces", ca_request_id="7"))
    await note(store.find_attempts("est", ("txn-1", "txn-2")))  # pending, received
    await note(store.journal.put(r1.id, b"\x30\x01" * 40))
    await note(store.journal.put(r1.id, b"\x30\x02" * 40))  # the first one wins
    await note(store.journal.get(r1.id))
    c1 = _certificate(r1, "0a1b")
    await note(store.record_issued(r1.id, c1))
    await note(store.record_issued(r1.id, _certificate(r1, "0a1c")))  # replay: nothing written
    await note(store.record_issued(r2.id, _certificate(r2, "0a1b")))  # serial reused: Conflict
    await note(store.record_issued("req-none", _certificate(r2, "0a1d")))  # NotFound
    clock.advance(1)
    issued3 = dataclasses.replace(r3, state=RequestState.ISSUED, certificate_serial="0b2c")
    await note(store.create_issued(issued3, _certificate(r3, "0b2c"), "0a1b"))
    await note(store.create_issued(issued3, _certificate(r3, "0b2d"), None))  # duplicate
    denied = dataclasses.replace(
        r4, state=RequestState.DENIED, denial_code="policy", denial_detail="no", denial_rule="x"
    )
    await note(store.create_denied(denied))
    await note(store.set_denied(r2.id, "policy", "refused", "rule-1"))
    await note(store.set_failed(r2.id, "too late"))  # final: Conflict
    await note(store.get_certificate("0a1b"))
    await note(store.get_certificate("ffff"))
    await note(store.revoke_certificate("0b2c", RevocationReason.KEY_COMPROMISE, clock.now()))
    await note(store.revoke_certificate("0b2c", RevocationReason.KEY_COMPROMISE, clock.now()))
    await note(store.audit("operator.note", "admin", request_id=r1.id, detail={"n": [1, "ü"]}))
    await note(store.list_requests())
    await note(store.list_certificates())
    await note(store.revoked_certificates())
    await note(store.audit_events())
    return answers


def _rows(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the core store's tables with each value's SQLite storage class."""
    path = sa.make_url(url).database
    assert path is not None
    conn = sqlite3.connect(path)
    try:
        dump: dict[str, list[tuple[Any, ...]]] = {}
        for table in TABLES:
            names = [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
            select = ", ".join(f"{n}, typeof({n})" for n in names)
            sql = f"SELECT {select} FROM {table} ORDER BY rowid"
            dump[table] = conn.execute(sql).fetchall()
        return dump
    finally:
        conn.close()


async def test_raw_sqlite_repository_equals_the_core_repository(tmp_path: Path) -> None:
    results = []
    for raw in (True, False):
        clock = StepClock()
        url = default_sqlite_url(tmp_path / ("raw" if raw else "core"))
        store = open_store(url, clock=clock.now, raw_sqlite=raw)
        try:
            await store.migrate()
            assert store.raw_sqlite is raw
            answers = await _script(store, clock)
        finally:
            await store.close()
        results.append((answers, _rows(url)))
    (raw_answers, raw_rows), (core_answers, core_rows) = results
    assert raw_answers == core_answers
    for table in TABLES:
        assert raw_rows[table] == core_rows[table], table
    assert all(raw_rows[table] for table in TABLES)


async def test_the_repository_is_chosen_once_when_the_store_opens(
    store: SQLStore, raw_sqlite: bool
) -> None:
    """Raw SQLite on SQLite unless ``open_store(raw_sqlite=False)``; Core on PostgreSQL."""
    assert store.raw_sqlite is raw_sqlite
    assert not (store.raw_sqlite and store.dialect_name != "sqlite")
