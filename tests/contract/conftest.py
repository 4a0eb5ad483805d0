"""Store fixtures: every store test runs against each repository (gateway.store.repository):

* ``sqlite``: SQLite (a file in tmp_path) with the raw-SQLite repository (the fast path);
* ``sqlite-core``: the same file with the SQLAlchemy Core repository (the plain path the fast
  path must equal);
* ``postgresql``: the Core repository on the real PostgreSQL on 127.0.0.1:5432 (a fresh
  ``certgate_test_<hex>`` database, emptied before each test).

PostgreSQL unreachable -> the PostgreSQL half is skipped, unless ``CERTGATE_REQUIRE_PEERS=1``
(CI), where it fails instead.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

import gateway.admin.tables
import gateway.webhooks.tables  # noqa: F401
import protocols.acme.tables
import protocols.est.tables
import protocols.scep.tables
import protocols.wstep.tables  # noqa: F401
from gateway.store import SQLStore, default_sqlite_url, open_store

PG_ADMIN_DSN = os.environ.get(
    "CERTGATE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)


class StepClock:
    """The store's clock in tests: fixed until advanced."""

    def __init__(self) -> None:
        self.at = datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)

    def now(self) -> datetime:
        return self.at

    def advance(self, seconds: float) -> datetime:
        self.at += timedelta(seconds=seconds)
        return self.at


async def _pg_admin_execute(sql: str) -> None:
    try:
        admin = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        reason = f"PostgreSQL at {PG_ADMIN_DSN} unreachable ({type(exc).__name__}: {exc})"
        if os.environ.get("CERTGATE_REQUIRE_PEERS") == "1":
            pytest.fail(f"{reason}; CERTGATE_REQUIRE_PEERS=1 requires it")
        pytest.skip(f"{reason}; set CERTGATE_REQUIRE_PEERS=1 to make this a failure")
    try:
        await admin.execute(sql)
    finally:
        await admin.close()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh ``certgate_test_<hex>`` database for the session, dropped at the end.

    Per session rather than per test: CREATE DATABASE costs 0.15-0.5 s here (it copies and
    fsyncs template1), which alone would blow the suite's time budget; each test instead gets
    an empty schema (see ``store_url``). Sync + ``asyncio.run`` so no event loop outlives it.
    """
    name = f"certgate_test_{secrets.token_hex(6)}"
    asyncio.run(_pg_admin_execute(f'CREATE DATABASE "{name}"'))
    yield name
    asyncio.run(_pg_admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(
    params=["sqlite", "sqlite-core", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def raw_sqlite(backend: str) -> bool:
    """Whether stores open with the raw-SQLite repository (``sqlite`` only)."""
    return backend == "sqlite"


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if backend.startswith("sqlite"):
        return default_sqlite_url(tmp_path)
    server = PG_ADMIN_DSN.removeprefix("postgresql://").rsplit("/", 1)[0]
    return f"postgresql+asyncpg://{server}/{request.getfixturevalue('pg_database')}"


@pytest.fixture
async def store_url(backend: str, database_url: str) -> str:
    """A URL to an empty database (nothing migrated yet) on each backend."""
    if backend == "postgresql":
        conn = await asyncpg.connect(database_url.replace("+asyncpg", ""), timeout=5)
        try:
            await conn.execute("SET lock_timeout = '5s'")
            await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        finally:
            await conn.close()
    return database_url


@pytest.fixture
def clock() -> StepClock:
    return StepClock()


@pytest.fixture
async def open_stores(
    store_url: str, clock: StepClock, raw_sqlite: bool
) -> AsyncIterator[Callable[[], Awaitable[SQLStore]]]:
    """Factory for more migrated stores on the same database (other "instances")."""
    opened: list[SQLStore] = []

    async def make() -> SQLStore:
        store = open_store(store_url, clock=clock.now, raw_sqlite=raw_sqlite)
        opened.append(store)
        await store.migrate()
        return store

    yield make
    for store in opened:
        await store.close()


@pytest.fixture
async def store(open_stores: Callable[[], Awaitable[SQLStore]]) -> SQLStore:
    return await open_stores()
