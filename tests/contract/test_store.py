"""The Store contract, run against SQLite and the real PostgreSQL (see conftest.py)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys
import textwrap
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import asyncpg
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection

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
from gateway.ports import IssuanceJournal, Store
from gateway.store import SQLStore, default_sqlite_url, metadata, open_store
from gateway.store.upgrade import alembic_config, current_revisions, head_revisions
from tests.contract.conftest import StepClock

REPO = Path(__file__).resolve().parents[2]
OpenStores = Callable[[], Awaitable[SQLStore]]


def request_record(
    clock: StepClock,
    txn: str | None = None,
    *,
    protocol: str = "est",
    principal: str = "alice",
    spki: str = "ab" * 32,
    template: str = "tls-server",
) -> RequestRecord:
    now = clock.now()
    return RequestRecord(
        id=str(uuid.uuid4()),
        protocol=protocol,
        transaction_id=txn or uuid.uuid4().hex,
        template=template,
        kind=RequestKind.NEW,
        requester=Requester(
            protocol,
            principal,
            "tls-client-cert",
            groups=frozenset({"web"}),
            verified_facts={"tls_client_cert_sha256": "cd" * 32},
        ),
        csr_der=b"\x30\x82" + os.urandom(200),
        spki_sha256=spki,
        state=RequestState.RECEIVED,
        created_at=now,
        updated_at=now,
    )


def certificate_record(request: RequestRecord, serial: str | None = None) -> CertificateRecord:
    nb = request.created_at
    return CertificateRecord(
        serial=serial or uuid.uuid4().hex[:20].lstrip("0"),
        request_id=request.id,
        subject="CN=www.example.test",
        sans=("dns:www.example.test", "ip:192.0.2.1"),
        template=request.template,
        template_major=2,
        requester=request.requester.principal,
        not_before=nb,
        not_after=nb + timedelta(days=90),
        status=CertificateStatus.VALID,
        der=b"\x30\x82" + os.urandom(400),
        spki_sha256=request.spki_sha256,
        issuer="CN=certgate test CA",
    )


async def received(store: SQLStore, clock: StepClock, **kw: str) -> RequestRecord:
    record, created = await store.create_request(request_record(clock, **kw))
    assert created
    return record


async def issued(store: SQLStore, clock: StepClock, **kw: str) -> CertificateRecord:
    request = await received(store, clock, **kw)
    certificate = certificate_record(request)
    await store.record_issued(request.id, certificate)
    return certificate


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


# --- issuance ------------------------------------------------------------------------------


async def test_record_issued_is_idempotent(store: SQLStore, clock: StepClock) -> None:
    request = await received(store, clock)
    certificate = certificate_record(request, "abc1")
    first = await store.record_issued(request.id, certificate)
    clock.advance(5)
    again = await store.record_issued(request.id, certificate_record(request, "abc2"))
    assert again == first
    assert await store.get_certificate("abc1") == certificate
    assert await store.get_certificate("abc2") is None
    assert [c.serial for c in await store.list_certificates()] == ["abc1"]
    issued_events = [e for e in await store.audit_events(request.id) if e.serial]
    assert [(e.event, e.serial) for e in issued_events] == [("certificate.issued", "abc1")]
    assert issued_events[0].detail["template"] == "tls-server"
    assert issued_events[0].detail["requester"] == "alice"


async def test_record_issued_marks_the_prior_certificate_superseded(
    store: SQLStore, clock: StepClock
) -> None:
    prior = await issued(store, clock)
    renewal = await received(store, clock)
    new = certificate_record(renewal)
    await store.record_issued(renewal.id, new, supersedes=prior.serial)
    old = await store.get_certificate(prior.serial)
    assert old is not None and old.superseded_by == new.serial
    assert old.status is CertificateStatus.VALID  # superseded is not revoked
    current = await store.get_certificate(new.serial)
    assert current is not None and current.superseded_by is None


async def test_a_reused_serial_conflicts_and_changes_nothing(
    store: SQLStore, clock: StepClock
) -> None:
    first = await issued(store, clock)
    request = await received(store, clock)
    events = await store.audit_events()
    with pytest.raises(Conflict):
        await store.record_issued(request.id, certificate_record(request, first.serial))
    assert (await store.get_request(request.id)) == request
    assert await store.audit_events() == events


async def test_certificates_round_trip_and_filter_by_status(
    store: SQLStore, clock: StepClock
) -> None:
    a = await issued(store, clock)
    clock.advance(1)
    b = await issued(store, clock)
    assert await store.list_certificates() == [b, a]
    await store.revoke_certificate(a.serial, RevocationReason.SUPERSEDED, clock.now())
    assert await store.list_certificates(CertificateStatus.VALID) == [b]
    assert [c.serial for c in await store.list_certificates(CertificateStatus.REVOKED)] == [
        a.serial
    ]


# --- revocation -----------------------------------------------------------------------------


async def test_revoke_records_reason_time_and_audit(store: SQLStore, clock: StepClock) -> None:
    cert = await issued(store, clock)
    when = clock.advance(60)
    revoked = await store.revoke_certificate(cert.serial, RevocationReason.KEY_COMPROMISE, when)
    assert revoked.status is CertificateStatus.REVOKED
    assert revoked.revoked_at == when
    assert revoked.revocation_reason is RevocationReason.KEY_COMPROMISE
    assert await store.get_certificate(cert.serial) == revoked
    assert await store.revoked_certificates() == [revoked]
    event = (await store.audit_events())[-1]
    assert (event.event, event.serial, event.request_id) == (
        "certificate.revoked",
        cert.serial,
        cert.request_id,
    )
    assert event.detail["reason"] == "key_compromise"


async def test_revoked_list_is_in_revocation_order(store: SQLStore, clock: StepClock) -> None:
    certs = [await issued(store, clock) for _ in range(3)]
    for offset, cert in zip((30, 10, 20), certs, strict=True):
        when = clock.now() + timedelta(seconds=offset)
        await store.revoke_certificate(cert.serial, RevocationReason.UNSPECIFIED, when)
    assert [c.serial for c in await store.revoked_certificates()] == [
        certs[1].serial,
        certs[2].serial,
        certs[0].serial,
    ]


async def test_revoking_twice_conflicts_and_unknown_serial_is_not_found(
    store: SQLStore, clock: StepClock
) -> None:
    cert = await issued(store, clock)
    first = await store.revoke_certificate(cert.serial, RevocationReason.UNSPECIFIED, clock.now())
    with pytest.raises(Conflict):
        await store.revoke_certificate(cert.serial, RevocationReason.KEY_COMPROMISE, clock.now())
    assert await store.get_certificate(cert.serial) == first
    with pytest.raises(NotFound):
        await store.revoke_certificate("ffff", RevocationReason.UNSPECIFIED, clock.now())


# --- audit ----------------------------------------------------------------------------------


async def test_audit_events_are_listed_oldest_first_and_filtered(
    store: SQLStore, clock: StepClock
) -> None:
    request = await received(store, clock)
    clock.advance(1)
    await store.audit("request.approved", "manager", request_id=request.id, detail={"n": 1})
    await store.audit("admin.login", "root")
    events = await store.audit_events()
    assert [e.event for e in events] == ["request.received", "request.approved", "admin.login"]
    assert events[1].actor == "manager" and events[1].detail == {"n": 1}
    assert events[1].at == clock.now()
    assert [e.event for e in await store.audit_events(request.id)] == [
        "request.received",
        "request.approved",
    ]
    assert [e.event for e in await store.audit_events(limit=2)] == [
        "request.approved",
        "admin.login",
    ]


async def test_audit_trail_refuses_update_and_delete_even_in_raw_sql(
    store: SQLStore, clock: StepClock
) -> None:
    await received(store, clock)
    before = await store.audit_events()

    statements = ["UPDATE audit_events SET actor = 'mallory'", "DELETE FROM audit_events"]
    if store.dialect_name == "postgresql":
        statements.append("TRUNCATE audit_events")
    for statement in statements:

        def tamper(conn: Connection, sql: str = statement) -> None:
            conn.exec_driver_sql(sql)

        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            await store.write(tamper)
    assert await store.audit_events() == before


# --- issuance journal -----------------------------------------------------------------------


async def test_journal_keeps_the_first_certificate_per_request_id(store: SQLStore) -> None:
    assert await store.journal.get("req-1") is None
    assert await store.journal.put("req-1", b"first") == b"first"
    assert await store.journal.put("req-1", b"second") == b"first"
    assert await store.journal.get("req-1") == b"first"
    assert await store.get("req-1") == b"first"  # the store is a journal itself too
    assert await store.put("req-2", b"other") == b"other"


async def test_concurrent_journal_puts_agree_on_one_certificate(
    open_stores: OpenStores,
) -> None:
    stores = [await open_stores() for _ in range(3)]
    results = await asyncio.gather(
        *(stores[i % 3].journal.put("req-race", f"cert-{i}".encode()) for i in range(6))
    )
    assert len(set(results)) == 1


# --- the pending poller ---------------------------------------------------------------------


async def test_claim_due_polls_picks_due_ca_pending_and_stale_received(
    store: SQLStore, clock: StepClock
) -> None:
    now = clock.now()
    due = await received(store, clock)
    await store.set_pending(due.id, PendingReason.CA, next_poll_at=now - timedelta(seconds=1))
    later = await received(store, clock)
    await store.set_pending(later.id, PendingReason.CA, next_poll_at=now + timedelta(hours=1))
    approval = await received(store, clock)
    await store.set_pending(approval.id, PendingReason.APPROVAL)
    stale = await store.create_request(
        dataclasses.replace(
            request_record(clock), updated_at=now - timedelta(minutes=5), created_at=now
        )
    )
    fresh = await received(store, clock)  # its owner is still working on it

    claimed = await store.claim_due_polls(now, lease_seconds=60)
    assert {r.id for r in claimed} == {due.id, stale[0].id}
    assert all(r.next_poll_at == now + timedelta(seconds=60) for r in claimed)
    assert await store.claim_due_polls(now, lease_seconds=60) == []  # leased
    after_lease = now + timedelta(seconds=61)  # the lease ran out; "fresh" went stale too
    reclaimed = await store.claim_due_polls(after_lease, 60)
    assert {r.id for r in reclaimed} == {due.id, stale[0].id, fresh.id}


async def test_claim_due_polls_respects_the_limit(store: SQLStore, clock: StepClock) -> None:
    for _ in range(5):
        request = await received(store, clock)
        await store.set_pending(request.id, PendingReason.CA, next_poll_at=clock.now())
    first = await store.claim_due_polls(clock.now(), 60, limit=3)
    second = await store.claim_due_polls(clock.now(), 60, limit=3)
    assert (len(first), len(second)) == (3, 2)
    assert not {r.id for r in first} & {r.id for r in second}


async def test_concurrent_claimers_never_claim_a_request_twice(
    open_stores: OpenStores, clock: StepClock
) -> None:
    seed = await open_stores()
    ids = set()
    for _ in range(40):
        request = await received(seed, clock)
        await seed.set_pending(request.id, PendingReason.CA, next_poll_at=clock.now())
        ids.add(request.id)
    claimers = [await open_stores() for _ in range(2)]

    async def drain(store: SQLStore) -> list[str]:
        got: list[str] = []
        while batch := await store.claim_due_polls(clock.now(), 300, limit=3):
            got.extend(r.id for r in batch)
        return got

    a, b = await asyncio.gather(*(drain(s) for s in claimers))
    assert not set(a) & set(b)
    assert sorted(a + b) == sorted(ids)


# FOR UPDATE SKIP LOCKED is PostgreSQL's; SQLite serializes writers, so PostgreSQL only.
@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgresql"])
async def test_claim_skips_rows_locked_by_another_instance(
    store: SQLStore, clock: StepClock, store_url: str
) -> None:
    assert store.dialect_name == "postgresql"
    locked = await received(store, clock)
    free = await received(store, clock)
    for r in (locked, free):
        await store.set_pending(r.id, PendingReason.CA, next_poll_at=clock.now())
    other = await asyncpg.connect(store_url.replace("+asyncpg", ""))
    try:
        async with other.transaction():
            await other.execute("SELECT 1 FROM requests WHERE id = $1 FOR UPDATE", locked.id)
            claimed = await asyncio.wait_for(store.claim_due_polls(clock.now(), 60), 5)
            assert [r.id for r in claimed] == [free.id]
    finally:
        await other.close()


# --- time -----------------------------------------------------------------------------------


async def test_datetimes_come_back_aware_utc(store: SQLStore, clock: StepClock) -> None:
    plus_two = timezone(timedelta(hours=2))
    local = datetime(2030, 6, 1, 14, 0, 0, 1, tzinfo=plus_two)
    record = dataclasses.replace(request_record(clock), created_at=local, not_after=local)
    await store.create_request(record)
    stored = await store.get_request(record.id)
    assert stored is not None
    assert stored.created_at == local and stored.created_at.tzinfo is UTC
    assert stored.not_after is not None and stored.not_after.utcoffset() == timedelta(0)


async def test_naive_datetimes_are_refused(store: SQLStore, clock: StepClock) -> None:
    record = dataclasses.replace(request_record(clock), created_at=datetime(2030, 1, 1))
    with pytest.raises(sa.exc.StatementError, match="naive"):
        await store.create_request(record)
    issued = dataclasses.replace(record, state=RequestState.ISSUED)
    with pytest.raises(sa.exc.StatementError, match="naive"):
        await store.create_issued(issued, certificate_record(request_record(clock)), None)


# --- several processes on one SQLite file ---------------------------------------------------

WORKER = textwrap.dedent(
    """
    import asyncio, sys, uuid
    from datetime import UTC, datetime, timedelta
    from gateway.model import *
    from gateway.store import open_store

    async def main(url, tag, n):
        store = open_store(url)
        print("ready", flush=True)
        sys.stdin.readline()  # start together
        await store.migrate()
        for i in range(n):
            now = datetime.now(UTC)
            rid = str(uuid.uuid4())
            await store.create_request(RequestRecord(
                id=rid, protocol="est", transaction_id=f"{tag}-{i}", template="t",
                kind=RequestKind.NEW, requester=Requester("est", tag, "basic"),
                csr_der=b"0" * 200, spki_sha256="ab" * 32, state=RequestState.RECEIVED,
                created_at=now, updated_at=now))
            await store.journal.put(rid, b"1" * 500)
            serial = uuid.uuid4().hex
            await store.record_issued(rid, CertificateRecord(
                serial=serial, request_id=rid, subject="CN=x", sans=(), template="t",
                template_major=1, requester=tag, not_before=now,
                not_after=now + timedelta(days=1), status=CertificateStatus.VALID,
                der=b"1" * 500, spki_sha256="ab" * 32, issuer="CN=ca"))
            await store.claim_due_polls(now, 60)
        await store.close()

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
    """
)


async def test_two_processes_write_one_sqlite_file_concurrently(tmp_path: Path) -> None:
    url = default_sqlite_url(tmp_path)  # fresh file: the workers also race to migrate it
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    n = 150
    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            WORKER,
            url,
            tag,
            str(n),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        for tag in ("w1", "w2")
    ]
    for w in workers:
        assert w.stdout is not None
        assert await asyncio.wait_for(w.stdout.readline(), 30) == b"ready\n"
    for w in workers:
        assert w.stdin is not None
        w.stdin.write(b"go\n")
        await w.stdin.drain()
    results = [await asyncio.wait_for(w.communicate(), 60) for w in workers]
    for w, (_, err) in zip(workers, results, strict=True):
        assert w.returncode == 0, err.decode()

    store = open_store(url)
    try:
        assert len(await store.list_requests(RequestState.ISSUED, limit=10 * n)) == 2 * n
        assert len(await store.list_certificates(limit=10 * n)) == 2 * n
        assert len(await store.audit_events(limit=10 * n)) == 4 * n
    finally:
        await store.close()


async def test_sqlite_wal_is_checkpointed_in_the_background(
    tmp_path: Path, clock: StepClock
) -> None:
    """Commits on the event loop never checkpoint (the backstop is far away); the background
    checkpointer copies the WAL into the database file within about a second."""
    url = default_sqlite_url(tmp_path)
    store = open_store(url)
    try:
        await store.migrate()
        database = Path(sa.make_url(url).database or "")
        await asyncio.sleep(1.2)  # the migration's own frames are checkpointed first
        before = database.stat().st_size
        started = time.monotonic()
        for _ in range(150):
            await issued(store, clock)
        wal = database.with_name(database.name + "-wal")
        assert wal.stat().st_size > 0
        if time.monotonic() - started < 0.8:
            # Within one checkpoint interval nothing is copied back yet. On a loaded machine
            # the commits can outlast the interval, and then the background checkpointer has
            # rightly run: only the check below applies.
            assert database.stat().st_size == before
        deadline = time.monotonic() + 5
        while database.stat().st_size == before and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert database.stat().st_size > before
    finally:
        await store.close()
