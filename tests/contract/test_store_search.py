"""The operator searches of the store (gateway/store/core_search.py, the admin API's lists) on
every repository and database (sqlite, sqlite-core, postgresql): each filter, keyset pages that
neither skip nor repeat a row, the expiry dates of the renewal chart and the pending counts."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from gateway.model import CertificateRecord, PendingReason, RequestState, RevocationReason
from gateway.store import SQLStore
from tests.contract.conftest import StepClock
from tests.contract.store_records import certificate_record, received


async def test_requests_filter_by_state_protocol_template_and_requester(
    store: SQLStore, clock: StepClock
) -> None:
    a = await received(store, clock, protocol="est", principal="Alice@Example", template="web")
    clock.advance(1)
    b = await received(store, clock, protocol="scep", principal="bob", template="web")
    clock.advance(1)
    c = await received(store, clock, protocol="est", principal="carol", template="vpn")
    await store.set_pending(c.id, PendingReason.APPROVAL)

    async def ids(**filters: object) -> list[str]:
        page, more = await store.search_requests(**filters)
        assert not more
        return [r.id for r in page]

    assert await ids() == [c.id, b.id, a.id]  # newest first
    assert await ids(states=["pending"]) == [c.id]
    assert await ids(states=["received", "pending"]) == [c.id, b.id, a.id]
    assert await ids(protocol="est") == [c.id, a.id]
    assert await ids(template="web") == [b.id, a.id]
    assert await ids(requester="alice@") == [a.id]  # substring, any case
    assert await ids(requester="%") == []  # a LIKE wildcard is matched literally
    assert await ids(protocol="est", template="web") == [a.id]


async def test_request_pages_neither_skip_nor_repeat(store: SQLStore, clock: StepClock) -> None:
    made = []
    for i in range(7):
        made.append((await received(store, clock)).id)
        if i % 2:
            clock.advance(1)  # some rows share created_at: the id breaks the tie
    seen: list[str] = []
    after = None
    while True:
        page, more = await store.search_requests(after=after, limit=3)
        seen += [r.id for r in page]
        if not more:
            break
        after = (page[-1].created_at, page[-1].id)
    assert sorted(seen) == sorted(made) and len(seen) == len(set(seen)) == 7


async def test_pending_counts_by_reason(store: SQLStore, clock: StepClock) -> None:
    for reason in (PendingReason.APPROVAL, PendingReason.APPROVAL, PendingReason.CA):
        await store.set_pending((await received(store, clock)).id, reason)
    await received(store, clock)
    assert await store.count_requests(RequestState.PENDING) == 3
    assert await store.count_requests(RequestState.PENDING, PendingReason.APPROVAL) == 2
    assert await store.count_requests(RequestState.PENDING, PendingReason.CA) == 1
    assert await store.count_requests(RequestState.RECEIVED) == 1


async def _issue(
    store: SQLStore, clock: StepClock, serial: str, days: int, **changes: object
) -> CertificateRecord:
    request = await received(store, clock, template=str(changes.pop("template", "web")))
    cert = certificate_record(request, serial)
    cert = dataclasses.replace(cert, not_after=cert.not_before + timedelta(days=days), **changes)
    await store.record_issued(request.id, cert)
    clock.advance(60)
    return cert


async def test_certificates_filter_by_text_serial_template_status_and_expiry(
    store: SQLStore, clock: StepClock
) -> None:
    web = await _issue(store, clock, "a1", 30, subject="CN=www.example.test")
    vpn = await _issue(
        store, clock, "b2", 10, subject="CN=Gateway", sans=("dns:vpn.corp.test",), template="vpn"
    )
    old = await _issue(store, clock, "c3", 1, subject="CN=old.example.test")
    gone = await _issue(store, clock, "d4", 60, subject="CN=gone.example.test")
    await store.revoke_certificate(gone.serial, RevocationReason.KEY_COMPROMISE, clock.now())
    now = clock.advance(2 * 86400)  # old expired a day ago

    async def serials(**filters: object) -> list[str]:
        page, more = await store.search_certificates(now, **filters)
        assert not more
        return [c.serial for c in page]

    assert await serials() == ["d4", "c3", "b2", "a1"]  # most recently issued first
    assert await serials(subject="EXAMPLE") == ["d4", "c3", "a1"]
    assert await serials(san="vpn.corp") == ["b2"]
    assert await serials(q="gateway") == ["b2"]  # q: subject, SAN or serial
    assert await serials(q="c3") == ["c3"]
    assert await serials(serial="a1") == ["a1"]
    assert await serials(serial="a") == []  # exact, not a prefix
    assert await serials(template="vpn") == ["b2"]
    assert await serials(status="revoked") == ["d4"]
    assert await serials(status="expired") == ["c3"]
    assert await serials(status="valid") == ["b2", "a1"]
    assert await serials(expires_before=web.not_after) == ["c3", "b2"]
    assert await serials(expires_after=vpn.not_after) == ["d4", "b2", "a1"]
    assert await serials(san="_") == []  # LIKE wildcards are literal
    assert old.serial == "c3"


async def test_certificate_pages_neither_skip_nor_repeat(store: SQLStore, clock: StepClock) -> None:
    made = [(await _issue(store, clock, f"{i + 1:x}0", 30)).serial for i in range(5)]
    seen: list[str] = []
    after = None
    while True:
        page, more = await store.search_certificates(clock.now(), after=after, limit=2)
        seen += [c.serial for c in page]
        if not more:
            break
        after = (page[-1].not_before, page[-1].serial)
    assert seen == list(reversed(made))


async def test_expiry_dates_of_valid_certificates_in_a_window(
    store: SQLStore, clock: StepClock
) -> None:
    start = clock.now()
    soon = await _issue(store, clock, "e1", 3)
    later = await _issue(store, clock, "e2", 20)
    await _issue(store, clock, "e3", 200)  # beyond the window
    revoked = await _issue(store, clock, "e4", 5)
    await store.revoke_certificate(revoked.serial, RevocationReason.SUPERSEDED, clock.now())
    await _issue(store, clock, "e5", 7, superseded_by="e6")  # renewed already: not due
    dates = await store.expiry_dates(start, start + timedelta(days=60))
    assert dates == [soon.not_after, later.not_after]


async def test_audit_pages_and_filters(store: SQLStore, clock: StepClock) -> None:
    await store.audit("admin.token.created", "cli:root", detail={"name": "a"})
    t1 = clock.advance(10)
    request = await received(store, clock)
    await store.audit("request.approved", "token:ops", request_id=request.id)
    t2 = clock.advance(10)
    await store.audit("certificate.revocation-requested", "token:ops", serial="ff")

    async def events(**filters: object) -> list[str]:
        page, more = await store.search_audit_page(**filters)
        assert not more
        return [e.event for e in page]

    assert await events() == [
        "certificate.revocation-requested",
        "request.approved",
        "request.received",
        "admin.token.created",
    ]
    assert await events(actor="token:ops") == [
        "certificate.revocation-requested",
        "request.approved",
    ]
    assert await events(events=["request"]) == ["request.approved", "request.received"]
    assert await events(request_id=request.id) == ["request.approved", "request.received"]
    assert await events(serial="ff") == ["certificate.revocation-requested"]
    assert await events(since=t1, until=t2) == ["request.approved", "request.received"]
    first, more = await store.search_audit_page(limit=3)
    assert more and len(first) == 3
    rest, more = await store.search_audit_page(before_id=first[-1].id, limit=3)
    assert not more and [e.event for e in rest] == ["admin.token.created"]
