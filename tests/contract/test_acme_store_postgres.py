"""The ACME repository's PostgreSQL fast path equals the plain path: the asyncpg repository
(protocols.acme.repository_postgres) and the SQLAlchemy Core one, run through the same scripted
session (test_acme_store_paths.py's ``seed`` + ``session``) on two fresh PostgreSQL databases,
give equal answers and leave equal rows in every ACME table; a POST's nonce and write are one
statement (no BEGIN/COMMIT); and a nonce is taken once however many instances race for it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from gateway.store import SQLStore, open_store
from protocols.acme import state
from protocols.acme.ratelimit import Limit
from protocols.acme.repository import AcmeRepository, open_repository
from protocols.acme.repository_core import CoreAcmeRepository
from protocols.acme.repository_postgres import PostgresAcmeRepository
from tests.contract.acme_store_cases import JWK, TABLES, new_authz, order_of, seed
from tests.contract.conftest import StepClock
from tests.contract.test_acme_store_paths import _decoded_rows, replay
from tests.pg_helpers import scratch_database_pair, sent_queries, table_rows

pytestmark = pytest.mark.postgres


@pytest.fixture
def two_databases() -> Iterator[tuple[str, str]]:
    yield from scratch_database_pair("certgate_acme")


async def _stored(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every ACME row, in primary-key order."""
    return await table_rows(url, {t.name: t.primary_key.columns[0].name for t in TABLES})


async def posts(store: SQLStore, repo: AcmeRepository, clock: StepClock) -> list[Any]:
    """After test_acme_store_paths.py's session: every write a POST runs with its nonce (the
    folded ones, the ones in a transaction, reads of POST-as-GET, a bad nonce), and the
    reads the session leaves out."""
    t0 = clock.now()
    later, until = t0 + timedelta(minutes=5), t0 + timedelta(days=30)
    out: list[Any] = []
    n = iter(range(100))
    await store.write(repo.issue_nonce, "x-0", later, None)

    async def post(body: Any, *args: Any, **kw: Any) -> None:
        i = next(n)
        out.append(
            await store.write(repo.with_nonce, f"x-{i}", f"x-{i + 1}", later, t0, body, args, kw)
        )

    per_ip = Limit("ip:192.0.2.7", 1, 3600, 5)
    await post(repo.get_order, "ord-1")
    await post(repo.get_authzs, ["az-1", "az-2"], with_challenges=True)
    await post(repo.get_authzs, ["az-2", "az-none", "az-1"], with_challenges=False)
    await post(repo.get_authzs, ["az-none"], with_challenges=True)
    await post(repo.get_order, "ord-none")
    await post(repo.order_for_certificate, "0a1b")
    await post(repo.order_for_certificate, "ffff")
    await post(
        repo.create_account, "acct-9", "thumb-9", JWK, ["mailto:n@x"], None, t0, None, per_ip
    )
    await post(repo.create_account, "acct-9b", "thumb-9", JWK, [], None, t0)
    await post(repo.create_account, "acct-8", "thumb-8", JWK, [], None, t0, None, per_ip)
    await post(repo.update_account, "acct-9", ["mailto:m@x"], None, "tos-2")
    await post(repo.update_account, "acct-9", None, "deactivated")
    await post(repo.change_key, "acct-2", "thumb-2", "thumb-20", {"kty": "EC", "crv": "P-256"})
    await post(repo.change_key, "acct-2", "thumb-20", "thumb-1", JWK)
    per_account = Limit("acct:acct-2", 1, 3600, 5)
    fresh = [new_authz("az-9", "nine.example.test", until)]
    await post(repo.create_order, order_of("ord-9", "acct-2", ["az-9"], t0), fresh, t0, per_account)
    refused = [new_authz("az-8", "eight.example.test", until)]
    await post(
        repo.create_order, order_of("ord-8", "acct-2", ["az-8"], t0), refused, t0, per_account
    )
    tenth = [new_authz("az-10", "ten.example.test", until, wildcard=True)]
    await post(repo.create_order, order_of("ord-10", "acct-2", ["az-10"], t0), tenth, later)
    await post(repo.set_authz_status, "az-10", "deactivated", ["pending", "valid"])
    await post(repo.set_authz_status, "az-10", "deactivated", ["pending", "valid"])
    await post(repo.accept_challenge, "az-9-http-01", "az-9", t0, until)
    await post(repo.accept_challenge, "az-9-http-01", "az-9", t0, until)
    await post(repo.start_challenge, "az-9-dns-01", later)
    await post(repo.set_order, "ord-9", "pending", status="processing", finalize_attempt=2)
    await post(state.nothing)
    move = (repo.set_order, ("ord-10", None), {"status": "invalid"})
    out.append(await store.write(repo.with_nonce, "x-bad", "x-bad2", later, t0, *move))
    read = (repo.get_order, ("ord-1",), {})
    out.append(await store.write(repo.with_nonce, "x-bad", "x-bad3", later, t0, *read))
    out.append(await store.read(repo.orders_of, "acct-2"))
    out.append(await store.read(repo.valid_identifiers, "acct-1", t0))
    out.append(await store.read(repo.valid_identifiers, "acct-2", t0))
    out.append(await store.read(repo.order_replacing, "aGk.MDE"))
    out.append(await store.read(repo.get_eab_key, "kid-1"))
    out.append(await store.read(repo.get_eab_key, "kid-none"))
    out.append(await store.read(repo.get_authzs, ["az-9", "az-10"], with_challenges=True))
    return out


async def test_the_asyncpg_repository_equals_the_core_repository(
    two_databases: tuple[str, str],
) -> None:
    results = []
    for url, repo in zip(
        two_databases, (PostgresAcmeRepository(), CoreAcmeRepository()), strict=True
    ):
        clock = StepClock()
        store = open_store(url, clock=clock.now)
        try:
            await store.migrate()
            answers, _, _ = await replay(store, repo, clock)
            answers += [("post", a) for a in await posts(store, repo, clock)]
            rows = await store.read(_decoded_rows)
        finally:
            await store.close()
        results.append((answers, rows, await _stored(url)))
    (fast_answers, fast_rows, fast_stored), (core_answers, core_rows, core_stored) = results
    for fast, core in zip(fast_answers, core_answers, strict=True):
        assert fast == core
    assert fast_rows == core_rows
    for table in fast_stored:
        assert fast_stored[table] == core_stored[table], table
    assert all(fast_stored[t.name] for t in TABLES if t.name != "acme_nonces")


async def test_a_post_is_one_statement_and_a_nonce_is_taken_once(
    two_databases: tuple[str, str],
) -> None:
    clock = StepClock()
    stores = [open_store(two_databases[0], clock=clock.now) for _ in range(3)]
    repo = open_repository("postgresql")
    assert isinstance(repo, PostgresAcmeRepository)
    try:
        await stores[0].migrate()
        t0 = clock.now()
        await seed(stores[0], repo, t0)
        later = t0 + timedelta(minutes=5)
        sent = sent_queries(stores[0])
        await stores[0].write(repo.issue_nonce, "n-1", later, None)
        move = (repo.set_order, ("ord-1", "pending"), {"status": "processing"})
        got = await stores[0].write(repo.with_nonce, "n-1", "n-2", later, t0, *move)
        assert got == (True, True)
        assert await stores[0].read(repo.get_order, "ord-1") is not None
        await asyncio.sleep(0)  # asyncpg calls its query loggers with loop.call_soon
        assert len(sent) == 3 and sent[1].startswith("WITH taken"), sent
        sent.clear()  # a POST-as-GET: its nonce and its read
        read = (repo.get_order, ("ord-1",), {})
        taken, got = await stores[0].write(repo.with_nonce, "n-2", "n-3", later, t0, *read)
        assert taken and got is not None and got[0].status == "processing"
        await asyncio.sleep(0)
        assert len(sent) == 1 and sent[0].startswith("WITH taken"), sent
        # three "instances" race for one nonce: exactly one takes it (and runs its body)
        await stores[0].write(repo.issue_nonce, "n-race", later, None)
        races = await asyncio.gather(
            *(
                s.write(repo.with_nonce, "n-race", f"n-f{i}", later, t0, state.nothing, (), {})
                for i, s in enumerate(stores)
            )
        )
        assert sorted(taken for taken, _ in races) == [False, False, True]
    finally:
        for s in stores:
            await s.close()


async def test_an_unknown_body_is_refused(two_databases: tuple[str, str]) -> None:
    clock = StepClock()
    store = open_store(two_databases[0], clock=clock.now)
    repo = PostgresAcmeRepository()
    try:
        await store.migrate()
        t0 = clock.now()
        with pytest.raises(TypeError, match="no PostgreSQL form"):
            await store.write(repo.with_nonce, "n", "n-2", t0, t0, print, (), {})
    finally:
        await store.close()
