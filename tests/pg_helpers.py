"""A scratch PostgreSQL database per test, for tests that run gateways or stores on one shared
database (tests/integration/test_acme_instances.py, test_wstep_numbers.py).

The server is ``CERTGATE_TEST_PG_DSN`` (default: the trust-auth PostgreSQL on 127.0.0.1:5432).
An unreachable server skips the test, or fails it when ``CERTGATE_REQUIRE_PEERS=1``.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Iterator, Mapping
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa

PG_ADMIN_DSN = os.environ.get(
    "CERTGATE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def scratch_database(prefix: str) -> Iterator[str]:
    """Create ``<prefix>_<random>`` and yield its SQLAlchemy URL (``postgresql+asyncpg://``);
    drop it (closing its connections) afterwards. Use as ``yield from`` in a fixture."""
    name = f"{prefix}_{secrets.token_hex(6)}"

    async def admin(sql: str) -> None:
        try:
            conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
        except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
            if os.environ.get("CERTGATE_REQUIRE_PEERS") == "1":
                pytest.fail(f"PostgreSQL unreachable: {exc}")
            pytest.skip(f"PostgreSQL unreachable: {exc}")
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    dsn = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    yield f"{dsn}/{name}"
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def scratch_database_pair(prefix: str) -> Iterator[tuple[str, str]]:
    """Two scratch databases, ``<prefix>_fast`` and ``<prefix>_core``, for a fast path and its
    plain path to write side by side (see :func:`scratch_database`); ``yield from`` it."""
    fast = scratch_database(f"{prefix}_fast")
    core = scratch_database(f"{prefix}_core")
    yield next(fast), next(core)
    for gen in (fast, core):
        next(gen, None)


async def table_rows(url: str, order: Mapping[str, str]) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of each table in ``order`` (table -> column to sort by) as asyncpg reads it
    (JSON as stored text): what a fast path and its plain path wrote, to compare."""
    conn = await asyncpg.connect(url.replace("+asyncpg", ""), timeout=5)
    try:
        return {
            table: [tuple(r) for r in await conn.fetch(f"SELECT * FROM {table} ORDER BY {key}")]
            for table, key in order.items()
        }
    finally:
        await conn.close()


def sent_queries(store: Any) -> list[str]:
    """Every query an :class:`~gateway.store.SQLStore`'s pooled asyncpg connections send from
    now on, counted by asyncpg itself (its query logger sees simple-protocol BEGIN/COMMIT
    too). asyncpg calls its loggers with ``loop.call_soon``: yield once before reading."""
    sent: list[str] = []
    logged: set[int] = set()

    def watch(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        driver = dbapi_connection.driver_connection
        if id(driver) not in logged:
            logged.add(id(driver))
            driver.add_query_logger(lambda q: sent.append(q.query))

    pool = store._db._engine.sync_engine.pool
    sa.event.listen(pool, "checkout", watch)
    return sent
