"""The PostgreSQL fast path equals the plain path: the one-statement repository
(gateway.store.postgres_queries) and the SQLAlchemy Core repository, run through the same store
operations (tests/contract/test_store_paths.py's script) on two fresh PostgreSQL databases,
return equal records and leave equal rows in every table the core store writes; and an
in-process issuance is one statement with no BEGIN/COMMIT.

One difference is allowed and checked: audit event ids are compared by rank. A refused
duplicate consumes ids from the ``audit_events`` sequence on the fast path (its one statement
evaluates every row before the constraint refuses it), as any rolled-back transaction does in
PostgreSQL; ids stay increasing in the order the events happened, which is all they promise."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest

from gateway.model import AuditEvent, RequestState
from gateway.store import SQLStore, open_store
from tests.contract.conftest import StepClock
from tests.contract.test_store_paths import TABLES, _certificate, _request, _script
from tests.pg_helpers import scratch_database_pair, sent_queries, table_rows

pytestmark = pytest.mark.postgres

_ORDER = {
    "requests": "id",
    "certificates": "serial",
    "audit_events": "id",
    "ca_journal": "request_id",
}


@pytest.fixture
def two_databases() -> Iterator[tuple[str, str]]:
    yield from scratch_database_pair("certgate_paths")


def _ranked(answers: list[Any], rows: dict[str, list[tuple[Any, ...]]]) -> tuple[Any, Any]:
    """Audit ids replaced by their rank (ids must increase with the rows' order)."""
    ids = [row[0] for row in rows["audit_events"]]
    assert ids == sorted(ids)
    rank = {event_id: n for n, event_id in enumerate(ids, 1)}

    def fix(value: Any) -> Any:
        if isinstance(value, AuditEvent):
            return dataclasses.replace(value, id=rank[value.id])
        if isinstance(value, list):
            return [fix(v) for v in value]
        return value

    ranked_rows = dict(rows, audit_events=[(rank[r[0]], *r[1:]) for r in rows["audit_events"]])
    return fix(answers), ranked_rows


async def test_fast_postgres_repository_equals_the_core_repository(
    two_databases: tuple[str, str],
) -> None:
    results = []
    for url, fast in zip(two_databases, (True, False), strict=True):
        clock = StepClock()
        store = open_store(url, clock=clock.now, fast_postgres=fast)
        try:
            await store.migrate()
            assert type(store._q).__name__ == ("PostgresQueries" if fast else "CoreQueries")
            answers = await _script(store, clock)
        finally:
            await store.close()
        results.append(_ranked(answers, await table_rows(url, _ORDER)))
    (fast_answers, fast_rows), (core_answers, core_rows) = results
    assert fast_answers == core_answers
    for table in TABLES:
        assert fast_rows[table] == core_rows[table], table
    assert all(fast_rows[table] for table in TABLES)


async def test_an_issuance_is_one_round_trip(two_databases: tuple[str, str]) -> None:
    """Every query the pooled asyncpg connections send, counted by asyncpg itself (its query
    logger sees simple-protocol BEGIN/COMMIT too): an issuance is one ``WITH`` statement."""
    clock = StepClock()
    store: SQLStore = open_store(two_databases[0], clock=clock.now)
    try:
        await store.migrate()
        sent = sent_queries(store)
        record = dataclasses.replace(
            _request(clock, 1), state=RequestState.ISSUED, certificate_serial="0a"
        )
        stored, created = await store.create_issued(record, _certificate(record, "0a"), None)
        assert created and stored == record
        await asyncio.sleep(0)  # asyncpg calls its query loggers with loop.call_soon
        assert len(sent) == 1 and sent[0].startswith("WITH "), sent
        sent.clear()
        assert await store.find_request("est", "txn-1") == record
        await asyncio.sleep(0)
        assert len(sent) == 1, sent
        # the duplicate transaction is refused by the constraint and answered with the first
        again = dataclasses.replace(record, id="req-other", certificate_serial="0b")
        stored, created = await store.create_issued(again, _certificate(again, "0b"), None)
        assert not created and stored == record
        assert await store.get_certificate("0b") is None
        events = [e.event for e in await store.audit_events()]
        assert events == ["request.received", "certificate.issued"]
    finally:
        await store.close()
