"""The Store contract, run against every repository and database (see conftest.py): lifecycle,
schema and requests. Issuance, inventory, audit and journal: test_store_inventory.py; the
poller and several writers: test_store_concurrency.py."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection

from gateway.errors import Conflict, NotFound
from gateway.model import (
    AttemptHead,
    PendingReason,
    RequestState,
)
from gateway.ports import IssuanceJournal, Store
from gateway.store import SQLStore, default_sqlite_url, metadata, open_store
from gateway.store.upgrade import alembic_config, current_revisions, head_revisions
from tests.contract.conftest import StepClock
from tests.contract.store_records import (
    OpenStores,
    certificate_record,
    received,
    request_record,
)

# --- lifecycle -------------------------------------------------------------------------------


async def test_sql_store_satisfies_the_ports(store: SQLStore) -> None:
    as_store: Store = store  # statically checked in gateway/store/sql.py
    journal: IssuanceJournal = store.journal
    also_journal: IssuanceJournal = store
    assert as_store is also_journal and journal is store.journal


def test_default_sqlite_url_is_certgate_db_in_the_data_dir(tmp_path: Path) -> None:
    url = default_sqlite_url(tmp_path)
    assert url == f"sqlite+aiosqlite:///{tmp_path.resolve()}/certgate.db"


async def test_ping(store: SQLStore) -> None:
    await store.ping()


async def test_migrate_twice_is_a_noop(store: SQLStore, clock: StepClock) -> None:
    request = await received(store, clock)
    await store.migrate()
    assert await store.read(current_revisions) == head_revisions()
    assert await store.get_request(request.id) == request


async def test_concurrent_migrations_on_a_fresh_database_agree(store_url: str) -> None:
    stores = [open_store(store_url) for _ in range(3)]
    try:
        await asyncio.gather(*(s.migrate() for s in stores))
        for s in stores:
            assert await s.read(current_revisions) == head_revisions()
    finally:
        for s in stores:
            await s.close()


async def test_migrations_downgrade_to_nothing_and_back(store: SQLStore) -> None:
    def downgrade(conn: Connection) -> list[str]:
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
        return [t for t in sa.inspect(conn).get_table_names() if t != "alembic_version"]

    assert await store.write(downgrade) == []
    await store.migrate()
    assert await store.read(current_revisions) == head_revisions()


async def test_tables_module_matches_the_migrations(store: SQLStore) -> None:
    def diff(conn: Connection) -> list[object]:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))

    assert await store.read(diff) == []


# --- requests -------------------------------------------------------------------------------


async def test_created_request_reads_back_equal(store: SQLStore, clock: StepClock) -> None:
    record = request_record(clock)
    stored, created = await store.create_request(record)
    assert created and stored == record
    assert await store.get_request(record.id) == record
    assert await store.find_request(record.protocol, record.transaction_id) == record
    assert await store.get_request(str(uuid.uuid4())) is None
    assert await store.find_request("scep", record.transaction_id) is None


async def test_find_attempts_are_the_heads_of_find_request_per_key(
    store: SQLStore, clock: StepClock
) -> None:
    # EST asks generation 0 of both its id forms in one query, and the retry logic reads these
    # columns of every attempt (the whole row only for a repeat); the plain path asks each key
    first = await received(store, clock)
    clock.advance(1)
    second = await store.set_pending((await received(store, clock)).id, PendingReason.APPROVAL)
    keys = (first.transaction_id, "absent", second.transaction_id, first.transaction_id)
    whole = {k: r for k in keys if (r := await store.find_request("est", k)) is not None}
    heads = await store.find_attempts("est", keys)
    assert set(heads) == set(whole) == {first.transaction_id, second.transaction_id}
    for key, head in heads.items():
        record = whole[key]
        assert head == AttemptHead(
            record.id, record.transaction_id, record.state, record.pending_reason,
            record.csr_der, record.spki_sha256, record.updated_at,
        )  # fmt: skip
        assert type(head.csr_der) is bytes and head.updated_at.tzinfo is not None
    assert heads[second.transaction_id].pending_reason is PendingReason.APPROVAL
    assert heads[second.transaction_id].updated_at == clock.now()
    assert await store.find_attempts("scep", keys) == {}
    assert await store.find_attempts("est", ()) == {}


async def test_create_request_writes_a_received_audit_event(
    store: SQLStore, clock: StepClock
) -> None:
    record = await received(store, clock)
    (event,) = await store.audit_events(record.id)
    assert (event.event, event.actor, event.request_id) == ("request.received", "alice", record.id)
    assert event.at == clock.now()
    assert event.detail["transaction_id"] == record.transaction_id


async def test_same_transaction_id_returns_the_existing_request(
    store: SQLStore, clock: StepClock
) -> None:
    first = await received(store, clock, txn="txn-1")
    again, created = await store.create_request(request_record(clock, "txn-1"))
    assert not created and again == first
    other_protocol, created = await store.create_request(
        request_record(clock, "txn-1", protocol="scep")
    )
    assert created and other_protocol.id != first.id
    assert len(await store.audit_events(first.id)) == 1


async def test_concurrent_creates_of_one_transaction_store_one_request(
    open_stores: OpenStores, clock: StepClock
) -> None:
    stores = [await open_stores() for _ in range(3)]
    attempts = [request_record(clock, "txn-race") for _ in range(6)]
    results = await asyncio.gather(
        *(stores[i % 3].create_request(r) for i, r in enumerate(attempts))
    )
    assert sum(created for _, created in results) == 1
    assert len({stored.id for stored, _ in results}) == 1


async def test_one_failing_write_in_a_concurrent_batch_undoes_only_itself(
    store: SQLStore, clock: StepClock
) -> None:
    """Concurrent writes share one commit on SQLite (group commit): a body that fails (here a
    repeated transaction) must leave no row behind and must not take the others with it."""
    first = request_record(clock, "dup-txn")
    await store.create_request(first)
    fresh = [request_record(clock) for _ in range(7)]
    duplicate = dataclasses.replace(request_record(clock, "dup-txn"), state=RequestState.ISSUED)
    batch = [*fresh[:3], duplicate, *fresh[3:]]
    certs = [certificate_record(r) for r in batch]
    results = await asyncio.gather(
        *(
            store.create_issued(dataclasses.replace(r, state=RequestState.ISSUED), c, None)
            for r, c in zip(batch, certs, strict=True)
        )
    )
    assert [created for _, created in results] == [True] * 3 + [False] + [True] * 4
    assert results[3][0].id == first.id  # the recorded request, not the duplicate
    assert await store.get_certificate(certs[3].serial) is None
    assert await store.get_request(duplicate.id) is None
    for record, cert in zip(fresh, certs[:3] + certs[4:], strict=True):
        assert (await store.get_request(record.id)) is not None
        assert (await store.get_certificate(cert.serial)) is not None
        events = [e.event for e in await store.audit_events(record.id)]
        assert events == ["request.received", "certificate.issued"]


async def test_find_requests_by_key_matches_identity_key_and_template_newest_first(
    store: SQLStore, clock: StepClock
) -> None:
    older = await received(store, clock)
    clock.advance(1)
    newer = await received(store, clock)
    await received(store, clock, principal="bob")
    await received(store, clock, spki="ef" * 32)
    await received(store, clock, template="other")
    await received(store, clock, protocol="scep")
    found = await store.find_requests_by_key("est", "alice", "ab" * 32, "tls-server")
    assert [r.id for r in found] == [newer.id, older.id]


async def test_list_requests_filters_by_state_newest_first(
    store: SQLStore, clock: StepClock
) -> None:
    a = await received(store, clock)
    clock.advance(1)
    b = await received(store, clock)
    await store.set_pending(b.id, PendingReason.APPROVAL)
    assert [r.id for r in await store.list_requests()] == [b.id, a.id]
    assert [r.id for r in await store.list_requests(RequestState.PENDING)] == [b.id]
    assert [r.id for r in await store.list_requests(limit=1)] == [b.id]


async def test_pending_then_issued_records_each_step(store: SQLStore, clock: StepClock) -> None:
    request = await received(store, clock)
    clock.advance(1)
    approval = await store.set_pending(request.id, PendingReason.APPROVAL)
    assert approval.state is RequestState.PENDING
    assert approval.pending_reason is PendingReason.APPROVAL
    assert approval.updated_at == clock.now()
    poll_at = clock.now() + timedelta(seconds=30)
    ca = await store.set_pending(
        request.id, PendingReason.CA, connector="adcs", ca_request_id="42", next_poll_at=poll_at
    )
    assert (ca.pending_reason, ca.connector, ca.ca_request_id) == (PendingReason.CA, "adcs", "42")
    assert ca.next_poll_at == poll_at
    rescheduled = await store.set_pending(request.id, PendingReason.CA, next_poll_at=None)
    assert rescheduled.ca_request_id == "42" and rescheduled.next_poll_at is None
    done = await store.record_issued(request.id, certificate_record(request, "1f"))
    assert done.state is RequestState.ISSUED and done.certificate_serial == "1f"
    assert await store.get_request(request.id) == done
    events = [e.event for e in await store.audit_events(request.id)]
    assert events == [
        "request.received",
        "request.pending",
        "request.pending",
        "request.pending",
        "certificate.issued",
    ]


async def test_denied_and_failed_record_their_reasons(store: SQLStore, clock: StepClock) -> None:
    a = await received(store, clock)
    denied = await store.set_denied(a.id, "policy-denied", "key too small", "key-policy")
    assert denied.state is RequestState.DENIED
    assert (denied.denial_code, denied.denial_rule, denied.denial_detail) == (
        "policy-denied",
        "key-policy",
        "key too small",
    )
    b = await received(store, clock)
    await store.set_pending(b.id, PendingReason.CA, next_poll_at=clock.now())
    failed = await store.set_failed(b.id, "CA speaks nonsense")
    assert failed.state is RequestState.FAILED and failed.denial_detail == "CA speaks nonsense"
    assert failed.next_poll_at is None
    assert [e.event for e in await store.audit_events(a.id)][-1] == "request.denied"
    assert [e.event for e in await store.audit_events(b.id)][-1] == "request.failed"


async def test_a_final_state_is_never_left(store: SQLStore, clock: StepClock) -> None:
    """Every move out of issued/denied/failed is a Conflict that changes nothing; only
    replaying record_issued on an issued request is allowed (and is a no-op)."""
    finals = {state: await received(store, clock) for state in ("issued", "denied", "failed")}
    await store.record_issued(finals["issued"].id, certificate_record(finals["issued"]))
    await store.set_denied(finals["denied"].id, "policy-denied", "no", "rule")
    await store.set_failed(finals["failed"].id, "broken")

    for final, request in finals.items():
        before = await store.get_request(request.id)
        events = await store.audit_events(request.id)
        moves = {
            "pending": lambda r=request: store.set_pending(r.id, PendingReason.CA),
            "denied": lambda r=request: store.set_denied(r.id, "ca-denied", "no", "ca"),
            "failed": lambda r=request: store.set_failed(r.id, "broken"),
            "issued": lambda r=request: store.record_issued(r.id, certificate_record(r)),
        }
        for move, attempt in moves.items():
            if (final, move) == ("issued", "issued"):
                assert await attempt() == before
                continue
            with pytest.raises(Conflict):
                await attempt()
                pytest.fail(f"{final} -> {move} was allowed")
        assert await store.get_request(request.id) == before
        assert await store.audit_events(request.id) == events


async def test_transitions_of_an_unknown_request_raise_not_found(store: SQLStore) -> None:
    missing = str(uuid.uuid4())
    with pytest.raises(NotFound):
        await store.set_pending(missing, PendingReason.APPROVAL)
    with pytest.raises(NotFound):
        await store.set_denied(missing, "policy-denied", "no", None)
    with pytest.raises(NotFound):
        await store.set_failed(missing, "broken")
