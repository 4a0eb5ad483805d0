"""The Store contract (see conftest.py): issuance, revocation, audit, the issuance journal and
timestamps."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.errors import Conflict, NotFound
from gateway.model import (
    CertificateStatus,
    RequestState,
    RevocationReason,
)
from gateway.store import SQLStore
from tests.contract.conftest import StepClock
from tests.contract.store_records import (
    OpenStores,
    certificate_record,
    issued,
    received,
    request_record,
)

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
