"""Retries, back-off and giving up, on a real receiver and the real HTTP sender, with time as
an injected clock (no waiting): the dispatcher (gateway.webhooks.delivery) is driven step by
step on a real store."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from prometheus_client import REGISTRY

from gateway.clock import FixedClock
from gateway.config import WebhookConfig
from gateway.observability.metrics import ScrapeState, activate, exposition
from gateway.observability.scrape import webhook_backlog
from gateway.server.webhooks import AiohttpSender
from gateway.store import SQLStore, default_sqlite_url, open_store
from gateway.webhooks import Attempt, Dispatcher, DueEvent
from gateway.webhooks.tables import webhook_outbox
from tests.webhook_helpers import SECRET, Receiver


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLStore]:
    s = open_store(default_sqlite_url(tmp_path))
    await s.migrate()
    yield s
    await s.close()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    yield r
    await r.stop()


def _dispatcher(
    store: SQLStore, receiver: Receiver, clock: FixedClock, max_age: timedelta
) -> tuple[Dispatcher, AiohttpSender]:
    hook = WebhookConfig(
        "hook", receiver.url, SECRET, frozenset({"request.pending"}), timedelta(seconds=5), max_age
    )
    sender = AiohttpSender()
    dispatcher = Dispatcher(
        store,
        {"hook": hook},
        sender,
        clock,
        retry_base=timedelta(seconds=10),
        retry_cap=timedelta(seconds=60),
        rng=lambda: 1.0,  # no jitter: the full delay
    )
    return dispatcher, sender


def _abandoned_count() -> float:
    labels = {"webhook": "hook", "result": "abandoned"}
    return REGISTRY.get_sample_value("certgate_webhook_deliveries_total", labels) or 0.0


async def _one_event(store: SQLStore, dispatcher: Dispatcher) -> None:
    await dispatcher.fan_out()  # places the cursor
    await store.audit("request.pending", "certgate", request_id="r-1", detail={"reason": "ca"})
    assert await dispatcher.fan_out() == 1


async def _row(store: SQLStore) -> tuple[str, int, datetime]:
    def body(conn: sa.Connection) -> tuple[str, int, datetime]:
        o = webhook_outbox.c
        row = conn.execute(sa.select(o.state, o.attempts, o.next_attempt_at)).one()
        return row.state, row.attempts, row.next_attempt_at

    return await store.read(body)


async def test_failing_receiver_gets_one_event_id_and_the_back_off_is_kept(
    store: SQLStore, receiver: Receiver
) -> None:
    clock = FixedClock(datetime.now(UTC))
    start = clock.at
    dispatcher, sender = _dispatcher(store, receiver, clock, timedelta(days=1))
    await _one_event(store, dispatcher)
    receiver.failures = 3
    try:
        # waits after the 1st, 2nd, 3rd failure: 10 s, 20 s, 40 s (base 10 s, doubling)
        for wait in (10, 20, 40):
            assert await dispatcher.deliver_due() == 1
            state, attempts, due_at = await _row(store)
            assert state == "pending" and due_at == clock.at + timedelta(seconds=wait)
            clock.at += timedelta(seconds=wait - 1)
            assert await dispatcher.deliver_due() == 0  # not before its time
            clock.at += timedelta(seconds=1)
        assert await dispatcher.deliver_due() == 1
    finally:
        await sender.close()
    assert clock.at - start == timedelta(seconds=70)
    assert await _row(store) == ("delivered", 4, clock.at + dispatcher.lease)
    attempts = receiver.refused + receiver.received
    assert len(receiver.received) == 1 and receiver.bad_signatures == 0
    assert {a.id for a in attempts} == {receiver.received[0].id}  # one webhook-id throughout
    assert [a.timestamp for a in attempts] == [
        int((start + timedelta(seconds=s)).timestamp()) for s in (0, 10, 30, 70)
    ]
    assert {a.body for a in attempts} == {receiver.received[0].body}


async def test_the_wait_is_capped(store: SQLStore, receiver: Receiver) -> None:
    clock = FixedClock(datetime.now(UTC))
    dispatcher, sender = _dispatcher(store, receiver, clock, timedelta(days=1))
    await _one_event(store, dispatcher)
    receiver.failures = 10
    try:
        waits = []
        for _ in range(6):
            assert await dispatcher.deliver_due() == 1
            _, _, due_at = await _row(store)
            waits.append((due_at - clock.at).total_seconds())
            clock.at = due_at
    finally:
        await sender.close()
    assert waits == [10, 20, 40, 60, 60, 60]


async def test_after_max_age_the_event_is_abandoned_audited_counted_and_logged(
    store: SQLStore, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    activate()
    before = _abandoned_count()
    clock = FixedClock(datetime.now(UTC))
    dispatcher, sender = _dispatcher(store, receiver, clock, timedelta(minutes=1))
    await _one_event(store, dispatcher)
    receiver.failures = 100
    try:
        for _ in range(20):
            if await dispatcher.deliver_due() == 0:
                break
            state, _, due_at = await _row(store)
            assert due_at <= clock.at + timedelta(minutes=1)  # never past max_age
            clock.at = max(clock.at, due_at)
    finally:
        await sender.close()
    state, attempts, _ = await _row(store)
    assert state == "abandoned" and attempts == len(receiver.refused) == 4  # 0, 10, 30, 60 s
    (event,) = await store.search_audit(events=["webhook.abandoned"])
    assert event.request_id == "r-1"
    assert event.detail["webhook"] == "hook" and event.detail["last_status"] == 503
    assert event.detail["event_id"] == receiver.refused[0].id
    assert _abandoned_count() == before + 1
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warnings] == ["webhook delivery abandoned"]
    assert SECRET not in caplog.text and receiver.url not in caplog.text


class Hanging:
    """A sender whose attempt never ends (a receiver that never answers)."""

    def __init__(self) -> None:
        self.started = asyncio.Event()

    async def send(
        self, url: str, headers: Mapping[str, str], body: bytes, seconds: float
    ) -> Attempt:
        self.started.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_an_attempt_cancelled_at_shutdown_goes_back_to_the_outbox(store: SQLStore) -> None:
    clock = FixedClock(datetime.now(UTC))
    hook = WebhookConfig(
        "hook",
        "http://127.0.0.1:9/",
        SECRET,
        frozenset({"request.pending"}),
        timedelta(seconds=5),
        timedelta(days=1),
    )
    sender = Hanging()
    dispatcher = Dispatcher(store, {"hook": hook}, sender, clock)
    await _one_event(store, dispatcher)
    delivering = asyncio.create_task(dispatcher.deliver_due())
    await asyncio.wait_for(sender.started.wait(), 10)
    assert (await _row(store))[2] == clock.at + dispatcher.lease  # claimed
    delivering.cancel()
    with pytest.raises(asyncio.CancelledError):
        await delivering
    assert await _row(store) == ("pending", 0, clock.at)  # claimable again at once


async def test_the_backlog_is_exported_at_scrape_time(store: SQLStore, receiver: Receiver) -> None:
    clock = FixedClock(datetime.now(UTC))
    dispatcher, sender = _dispatcher(store, receiver, clock, timedelta(days=1))
    await _one_event(store, dispatcher)
    pending = await webhook_backlog(store)
    text = exposition(ScrapeState(now=clock.at, pending={}, webhook_backlog=pending)).decode()
    assert pending == {"hook": 1}
    assert 'certgate_webhook_backlog{webhook="hook"} 1.0' in text
    try:
        assert await dispatcher.deliver_due() == 1
    finally:
        await sender.close()
    assert await webhook_backlog(store) == {}


async def test_finished_rows_are_pruned_after_30_days_and_pending_ones_never(
    store: SQLStore, receiver: Receiver
) -> None:
    clock = FixedClock(datetime.now(UTC))
    dispatcher, sender = _dispatcher(store, receiver, clock, timedelta(days=100))
    hook = WebhookConfig(
        "hook",
        receiver.url,
        SECRET,
        frozenset({"certificate.due"}),
        timedelta(seconds=5),
        timedelta(days=100),
    )
    due = DueEvent("abc", None, "CN=x", "tls-server", clock.at, clock.at, "renewal window")
    await _one_event(store, dispatcher)
    assert await Dispatcher(store, {"hook": hook}, sender, clock).queue_due([due]) == 1
    try:
        assert await dispatcher.deliver_due() == 2  # the audited row and the due row
        await store.audit("request.pending", "certgate", request_id="r-2", detail={})
        await dispatcher.fan_out()
        receiver.failures = 1
        assert await dispatcher.deliver_due() == 1  # refused: stays pending
    finally:
        await sender.close()

    async def states() -> list[tuple[str, str]]:
        def body(conn: sa.Connection) -> list[tuple[str, str]]:
            o = webhook_outbox.c
            stmt = sa.select(o.event_key, o.state).order_by(o.created_at, o.event_key)
            return list(conn.execute(stmt).tuples())

        return await store.read(body)

    assert sorted(state for _, state in await states()) == ["delivered", "delivered", "pending"]
    # the due row's certificate is not a valid one in the inventory: it goes at once
    assert await dispatcher.prune() == 1
    clock.at += timedelta(days=29)
    assert await dispatcher.prune() == 0
    clock.at += timedelta(days=2)
    assert await dispatcher.prune() == 1
    assert [state for _, state in await states()] == ["pending"]


async def test_a_request_polled_while_pending_at_the_ca_is_announced_once(
    store: SQLStore, receiver: Receiver
) -> None:
    clock = FixedClock(datetime.now(UTC))
    dispatcher, sender = _dispatcher(store, receiver, clock, timedelta(days=1))
    await sender.close()
    await _one_event(store, dispatcher)  # r-1 pending at the CA
    for _ in range(3):  # each poll that finds it still pending audits request.pending again
        await store.audit("request.pending", "certgate", request_id="r-1", detail={"reason": "ca"})
    await store.audit(
        "request.pending", "certgate", request_id="r-1", detail={"reason": "approval"}
    )
    assert await dispatcher.fan_out() == 4  # rows offered; the outbox keeps two

    def keys(conn: sa.Connection) -> list[str]:
        o = webhook_outbox.c
        return sorted(conn.execute(sa.select(o.event_key)).scalars())

    assert await store.read(keys) == ["pending:r-1:approval", "pending:r-1:ca"]
