"""Webhooks on PostgreSQL: two gateway instances on one database deliver every event exactly
once, and the fan-out never moves past an audit event whose transaction is still open (a
sequence id is taken at INSERT, not at COMMIT: see gateway/webhooks/outbox.py).

The racing test loses events without the barrier: with ``LOCK TABLE`` taken out, 5 runs
queued 203, 222, 296, 294 and 296 of its 300 events; with it, 300 in every run."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest
import sqlalchemy as sa

from gateway.clock import SystemClock
from gateway.config import WebhookConfig
from gateway.model import EnrollmentRequest, Issued, serial_hex
from gateway.server.webhooks import AiohttpSender
from gateway.server.wiring import Components
from gateway.service import local_requester
from gateway.store import SQLStore, open_store
from gateway.webhooks import Dispatcher
from gateway.webhooks.tables import webhook_outbox
from tests.helpers import make_csr
from tests.pg_helpers import scratch_database
from tests.webhook_helpers import (
    SECRET,
    SECRET_ENV,
    Receiver,
    eventually,
    running,
    webhook_config,
)

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_url() -> Iterator[str]:
    yield from scratch_database("certgate_webhooks")


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)


async def _issue(c: Components, txn: str) -> str:
    request = EnrollmentRequest(
        csr=make_csr(cn=f"{txn}.example.test", dns=(f"{txn}.example.test",)),
        template="tls-server",
        requester=local_requester("alice"),
        transaction_id=txn,
    )
    outcome = await c.service.enroll(request)
    assert isinstance(outcome, Issued)
    return serial_hex(outcome.certificate.serial_number)


async def _states(c: Components) -> list[str]:
    def body(conn: sa.Connection) -> list[str]:
        return list(conn.execute(sa.select(webhook_outbox.c.state)).scalars())

    return await c.store.read(body)


async def test_two_instances_on_one_postgresql_deliver_every_event_once(
    tmp_path: Path, pg_url: str
) -> None:
    receiver = Receiver()
    await receiver.start()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    events = ("certificate.issued",)
    cfg_a = webhook_config(tmp_path / "a", receiver.url, events=events, store_url=pg_url)
    cfg_b = webhook_config(
        tmp_path / "b",
        receiver.url,
        events=events,
        store_url=pg_url,
        data_dir=tmp_path / "a" / "data",  # one CA for both instances
    )
    try:
        async with running(cfg_a) as a:
            async with running(cfg_b) as b:
                serials = await asyncio.gather(
                    *(_issue(a if n % 2 else b, f"t{n}") for n in range(30))
                )
                await receiver.wait_for(lambda r: len(r.received) >= 30)

                async def all_delivered() -> bool:  # recorded just after the receiver answers
                    return await _states(a) == ["delivered"] * 30

                await eventually(all_delivered)
    finally:
        await receiver.stop()
    got = [r.payload["data"]["serial"] for r in receiver.received]
    assert sorted(got) == sorted(serials)  # every event once: none lost, none twice
    assert receiver.bad_signatures == 0


@pytest.fixture
async def store(pg_url: str) -> AsyncIterator[SQLStore]:
    s = open_store(pg_url)
    await s.migrate()
    yield s
    await s.close()


async def _waiting_for_a_lock(dsn: str) -> bool:
    conn = await asyncpg.connect(dsn)
    try:
        count = await conn.fetchval(
            "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
            "WHERE c.relname = 'audit_events' AND NOT l.granted"
        )
        return bool(count)
    finally:
        await conn.close()


async def test_the_fan_out_waits_for_an_audit_event_still_in_flight(
    store: SQLStore, pg_url: str
) -> None:
    hook = WebhookConfig(
        "hook",
        "http://127.0.0.1:9/hook",
        SECRET,
        frozenset({"certificate.revoked"}),
        timedelta(seconds=5),
        timedelta(days=1),
    )
    dispatcher = Dispatcher(store, {"hook": hook}, AiohttpSender(), SystemClock())
    await dispatcher.fan_out()  # the cursor: from here on
    dsn = pg_url.replace("postgresql+asyncpg://", "postgresql://")
    raw = await asyncpg.connect(dsn)
    try:
        transaction = raw.transaction()
        await transaction.start()
        in_flight = await raw.fetchval(
            "INSERT INTO audit_events (at, event, actor, request_id, detail) "
            "VALUES (now(), 'certificate.revoked', 'certgate', 'r-early', '{}') RETURNING id"
        )
        # a later id commits first
        await store.audit("certificate.revoked", "certgate", request_id="r-late", detail={})
        fan_out = asyncio.create_task(dispatcher.fan_out())
        for _ in range(500):
            if await _waiting_for_a_lock(dsn):
                break
            await asyncio.sleep(0.01)
        assert await _waiting_for_a_lock(dsn) and not fan_out.done()
        await transaction.commit()
        assert await asyncio.wait_for(fan_out, 10) == 2  # both events, none skipped
    finally:
        await raw.close()

    def keys(conn: sa.Connection) -> list[str]:
        o = webhook_outbox.c
        return list(conn.execute(sa.select(o.event_key).order_by(o.event_key)).scalars())

    assert await store.read(keys) == sorted([f"audit:{in_flight}", f"audit:{in_flight + 1}"])


async def test_an_insert_left_open_makes_the_fan_out_give_up_and_skip_nothing(
    store: SQLStore, pg_url: str
) -> None:
    hook = WebhookConfig(
        "hook",
        "http://127.0.0.1:9/hook",
        SECRET,
        frozenset({"certificate.revoked"}),
        timedelta(seconds=5),
        timedelta(days=1),
    )
    dispatcher = Dispatcher(store, {"hook": hook}, AiohttpSender(), SystemClock())
    await dispatcher.fan_out()
    raw = await asyncpg.connect(pg_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        transaction = raw.transaction()
        await transaction.start()
        await raw.execute(
            "INSERT INTO audit_events (at, event, actor, request_id, detail) "
            "VALUES (now(), 'certificate.revoked', 'certgate', 'r-idle', '{}')"
        )
        await store.audit("certificate.revoked", "certgate", request_id="r-late", detail={})
        # an idle transaction holds the barrier past its 2 s lock_timeout: no cursor move
        with pytest.raises(sa.exc.DBAPIError, match="lock timeout"):
            await dispatcher.fan_out()
        # the barrier is gone with the failed fan-out: audit inserts go on
        await store.audit("request.received", "certgate", request_id="r-other", detail={})
        await transaction.commit()
    finally:
        await raw.close()
    assert await dispatcher.fan_out() == 2  # r-idle and r-late, once each


async def test_two_fan_outs_racing_many_writers_queue_every_event_exactly_once(
    store: SQLStore, pg_url: str
) -> None:
    hook = WebhookConfig(
        "hook",
        "http://127.0.0.1:9/hook",
        SECRET,
        frozenset({"certificate.revoked"}),
        timedelta(seconds=5),
        timedelta(days=1),
    )
    other = open_store(pg_url)  # a second instance's store (its own pool)
    try:
        fan_outs = [
            Dispatcher(s, {"hook": hook}, AiohttpSender(), SystemClock(), fan_out_batch=7)
            for s in (store, other)
        ]
        await fan_outs[0].fan_out()  # the cursor
        done = asyncio.Event()

        async def fan_out_until_done(d: Dispatcher) -> None:
            while not done.is_set():
                await d.fan_out()
                await asyncio.sleep(0)

        dsn = pg_url.replace("postgresql+asyncpg://", "postgresql://")
        pool = await asyncpg.create_pool(dsn, min_size=20, max_size=20)
        rng = random.Random(16)

        async def write(n: int) -> None:
            # Commits in another order than the ids were taken: a transaction holds its id
            # for a few milliseconds while later ones commit.
            hold = rng.uniform(0, 0.05)
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute(
                    "INSERT INTO audit_events (at, event, actor, serial, detail) "
                    "VALUES (now(), 'certificate.revoked', 'certgate', $1, '{}')",
                    f"s{n}",
                )
                await asyncio.sleep(hold)

        try:
            racers = [asyncio.create_task(fan_out_until_done(d)) for d in fan_outs]
            await asyncio.gather(*(write(n) for n in range(300)))
            done.set()
            await asyncio.gather(*racers)
            await fan_outs[1].fan_out()  # whatever came last
        finally:
            await pool.close()
    finally:
        await other.close()

    def queued(conn: sa.Connection) -> list[str]:
        return list(conn.execute(sa.select(webhook_outbox.c.event_key)).scalars())

    keys = await store.read(queued)
    assert len(keys) == len(set(keys)) == 300
