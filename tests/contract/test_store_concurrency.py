"""The Store contract (see conftest.py): the pending poller's claims among instances, and
several processes writing one SQLite file."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import os
import sys
import textwrap
import time
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest
import sqlalchemy as sa

from gateway.model import (
    PendingReason,
    RequestState,
)
from gateway.store import SQLStore, default_sqlite_url, open_store, sqlite_engine
from gateway.store.sqlite_files import Checkpointer
from tests.contract.conftest import StepClock
from tests.contract.store_records import (
    REPO,
    OpenStores,
    issued,
    received,
    request_record,
)

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
    tmp_path: Path, clock: StepClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Commits on the event loop never checkpoint (the backstop is far away); the background
    checkpointer copies the WAL into the database file at its next round.

    The checkpointer's interval is stretched to 3 s here, so its first round comes a known
    time after the store connects: the commits before it must leave the database file as it
    was, on a loaded machine too (with the real 0.5 s the round's phase is unknown)."""
    interval = 3.0
    monkeypatch.setattr(
        sqlite_engine, "Checkpointer", functools.partial(Checkpointer, interval=interval)
    )
    url = default_sqlite_url(tmp_path)
    store = open_store(url)
    try:
        connected = time.monotonic()
        await store.migrate()
        database = Path(sa.make_url(url).database or "")
        before = database.stat().st_size
        for _ in range(150):
            await issued(store, clock)
        wal = database.with_name(database.name + "-wal")
        assert wal.stat().st_size > 0
        if time.monotonic() - connected < interval - 0.2:
            assert database.stat().st_size == before
        deadline = time.monotonic() + interval + 5
        while database.stat().st_size == before and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert database.stat().st_size > before
    finally:
        await store.close()
