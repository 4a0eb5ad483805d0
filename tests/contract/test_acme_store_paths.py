# ruff: noqa: F811  (pytest fixtures imported from tests.contract.acme_store_cases)
"""The ACME repository's raw-SQLite path is really used and indistinguishable from Core: the
hot per-request bodies run no SQLAlchemy statement on SQLite, and one scripted session of
every per-request body, replayed on raw SQLite, Core on SQLite and Core on PostgreSQL, gives
the same answers and stored rows (on SQLite: byte for byte); the choice between them is made
once (``open_repository``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from gateway.store import SQLStore, default_sqlite_url, open_store
from protocols.acme import state
from protocols.acme.ratelimit import Limit
from protocols.acme.repository import AcmeRepository, open_repository
from protocols.acme.repository_core import CoreAcmeRepository
from protocols.acme.repository_postgres import PostgresAcmeRepository
from protocols.acme.repository_sqlite import SQLiteAcmeRepository
from tests.contract.acme_store_cases import (  # noqa: F401
    IMPLEMENTATIONS,
    TABLES,
    impl,
    order_of,
    repo,
    seed,
)
from tests.contract.conftest import StepClock

# --- the raw path: really used, and indistinguishable from Core ----------------------------------


@pytest.fixture
def core_statements() -> Iterator[list[str]]:
    """The SQL every SQLAlchemy engine executes meanwhile (the raw cursor is not seen)."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        seen.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    yield seen
    event.remove(Engine, "before_cursor_execute", record)


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_hot_acme_bodies_bypass_core_on_sqlite(
    store: SQLStore, repo: AcmeRepository, clock: StepClock, core_statements: list[str]
) -> None:
    assert isinstance(repo, SQLiteAcmeRepository)
    t0 = clock.now()
    await seed(store, repo, t0)
    core_statements.clear()
    await session(store, repo, t0)
    acme = [s for s in core_statements if "acme_" in s]
    assert acme == [], acme


async def session(store: SQLStore, repo: AcmeRepository, t0: datetime) -> list[tuple[str, Any]]:
    """Every converted body once or more, with the answers in order (after :func:`seed`)."""
    out: list[tuple[str, Any]] = []
    later = t0 + timedelta(minutes=5)

    async def w(label: str, body: Callable[..., Any], *args: Any, **kw: Any) -> None:
        out.append((label, await store.write(body, *args, **kw)))

    async def r(label: str, body: Callable[..., Any], *args: Any, **kw: Any) -> None:
        out.append((label, await store.read(body, *args, **kw)))

    await w("issue", repo.issue_nonce, "n-1", later, None)
    await w("issue-old", repo.issue_nonce, "n-old", t0 - timedelta(seconds=1), None)
    await w("take", repo.with_nonce, "n-1", "n-2", later, t0, state.nothing, (), {})
    await w("replay", repo.with_nonce, "n-1", "n-3", later, t0, state.nothing, (), {})
    await w("expired", repo.with_nonce, "n-old", "n-4", later, t0, state.nothing, (), {})
    await w("none", repo.with_nonce, None, "n-5", later, t0, state.nothing, (), {})
    await w(
        "take+body", repo.with_nonce, "n-2", "n-6", later, t0,
        repo.set_order, ("ord-2", "pending"), {"status": "processing"},
    )  # fmt: skip
    await w("issue+purge", repo.issue_nonce, "n-7", later, t0)
    await w("purge", repo.purge_nonces, t0 + timedelta(minutes=10))
    await r("account", repo.get_account, "acct-1")
    await r("account-2", repo.get_account, "acct-2")
    await r("no-account", repo.get_account, "acct-none")
    await r("by-thumb", repo.account_by_thumbprint, "thumb-2")
    await r("eab", repo.get_eab_key, "kid-1")
    await r("order-1", repo.get_order, "ord-1")
    await r("order-2", repo.get_order, "ord-2")
    await r("no-order", repo.get_order, "ord-none")
    ids = ["az-3", "az-1", "az-none", "az-2"]
    await r("authzs", repo.get_authzs, ids, with_challenges=True)
    await r("authzs-bare", repo.get_authzs, ids, with_challenges=False)
    await r("authz-one", repo.get_authzs, ["az-2"], with_challenges=True)
    await r("authz-empty", repo.get_authzs, [], with_challenges=True)
    wanted = [("dns", "pre.example.test", False), ("dns", "example.test", True)]
    await r("reuse", repo.reusable_authzs, "acct-1", wanted, t0)
    await r("challenge", repo.get_challenge, "az-2-dns-01")
    # Whole seconds too: stored text keeps ".000000" (fixed width, so text order is time order).
    lease, until = t0.replace(microsecond=0) + timedelta(seconds=30), t0 + timedelta(days=30)
    await w("start", repo.start_challenge, "az-1-dns-01", lease)
    await w("start-again", repo.start_challenge, "az-1-dns-01", lease)
    await w("finish", repo.finish_challenge, "az-1-dns-01", "az-1", True, None, t0, until)
    await w("start-2", repo.start_challenge, "az-2-http-01", lease)
    problem = {"type": "urn:ietf:params:acme:error:connection", "detail": "refused"}
    await w("fail", repo.finish_challenge, "az-2-http-01", "az-2", False, problem, t0, until)
    await w("accept", repo.accept_challenge, "az-3-http-01", "az-3", t0, until)
    await r("after", repo.get_authzs, ids, with_challenges=True)
    move = repo.set_order
    await w("set", move, "ord-1", "pending", status="processing")
    await w("set-stale", move, "ord-1", "pending", status="processing")
    await w("set-request", move, "ord-1", None, request_id="req-1")
    # finalize's supersession check: ord-1 (processing, with a request) is an older twin of a
    # later order of the same account and template; ord-1 has none older than itself
    twin = order_of("ord-3", "acct-1", [], later)
    await w("twin", repo.create_order, twin, [], later)
    await r("older", repo.older_awaiting_core, twin)
    await r("older-none", repo.older_awaiting_core, order_of("ord-1", "acct-1", [], t0))
    await r("older-other", repo.older_awaiting_core, order_of("ord-3", "acct-2", [], later))
    await w("set-valid", move, "ord-1", "processing", status="valid", certificate_serial="0a1b")
    await w("set-retry", move, "ord-2", "processing", status="pending", finalize_attempt=1)
    await w("set-error", move, "ord-2", "pending", status="invalid", error=problem)
    await r("by-serial", repo.order_for_certificate, "0a1b")
    await r("no-serial", repo.order_for_certificate, "ffff")
    await r("orders-end", repo.get_order, "ord-2")
    hourly = Limit("acct:acct-1", 2, 3600, 10)
    for i in range(3):
        await w(f"hit-{i}", repo.count_hit, hourly)
    await w("hit-next-window", repo.count_hit, Limit("acct:acct-1", 2, 3600, 11))
    await w("hit-other", repo.count_hit, Limit("ip:192.0.2.9", 1, 60, 10))
    return out


def _raw_rows(conn: Connection) -> dict[str, list[tuple[Any, ...]]]:
    return {
        t.name: [tuple(r) for r in conn.exec_driver_sql(f"SELECT * FROM {t.name}")] for t in TABLES
    }


def _decoded_rows(conn: Connection) -> dict[str, list[tuple[Any, ...]]]:
    return {t.name: sorted(tuple(r) for r in conn.execute(sa.select(t))) for t in TABLES}


async def replay(
    store: SQLStore, repo: AcmeRepository, clock: StepClock
) -> tuple[list[tuple[str, Any]], Any, Any]:
    t0 = clock.now()
    await seed(store, repo, t0)
    answers = await session(store, repo, t0)
    raw = await store.read(_raw_rows) if store.dialect_name == "sqlite" else None
    return answers, raw, await store.read(_decoded_rows)


async def test_sqlite_raw_and_core_implementations_store_the_same_bytes(
    tmp_path: Path, clock: StepClock
) -> None:
    results = []
    for name, implementation in IMPLEMENTATIONS.items():
        store = open_store(default_sqlite_url(tmp_path / name), clock=clock.now)
        try:
            await store.migrate()
            results.append(await replay(store, implementation(), clock))
        finally:
            await store.close()
    (raw_answers, raw_bytes, raw_rows), (core_answers, core_bytes, core_rows) = results
    assert raw_answers == core_answers
    assert raw_bytes == core_bytes
    assert raw_rows == core_rows


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgresql"])
async def test_sqlite_raw_and_postgresql_core_implementations_agree(
    store: SQLStore, tmp_path: Path, clock: StepClock
) -> None:
    assert store.dialect_name == "postgresql"
    lite = open_store(default_sqlite_url(tmp_path), clock=clock.now)
    try:
        await lite.migrate()
        lite_repo = open_repository(lite.dialect_name)
        assert isinstance(lite_repo, SQLiteAcmeRepository)
        lite_answers, _, lite_rows = await replay(lite, lite_repo, clock)
    finally:
        await lite.close()
    pg_repo = open_repository(store.dialect_name, fast_postgres=False)
    assert type(pg_repo) is CoreAcmeRepository
    pg_answers, _, pg_rows = await replay(store, pg_repo, clock)
    assert lite_answers == pg_answers
    assert lite_rows == pg_rows


def test_the_implementation_is_chosen_once_by_dialect() -> None:
    assert type(open_repository("sqlite")) is SQLiteAcmeRepository
    assert type(open_repository("sqlite", raw_sqlite=False)) is CoreAcmeRepository
    assert type(open_repository("postgresql")) is PostgresAcmeRepository
    assert type(open_repository("postgresql", fast_postgres=False)) is CoreAcmeRepository
