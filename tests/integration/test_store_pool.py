"""``[store] pool_size`` / ``max_overflow`` reach the gateway's PostgreSQL pool (per process):
concurrent transactions never hold more than ``pool_size + max_overflow`` connections, and
after a peak the pool keeps ``pool_size`` of them open (the overflow ones are closed). Counted
on the server, in ``pg_stat_activity``."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient, TestServer

from gateway.config import load_config
from gateway.server.app import components_of, create_app
from tests.helpers import write_config
from tests.pg_helpers import scratch_database

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_url() -> Iterator[str]:
    yield from scratch_database("certgate_pool")


async def _connections(url: str) -> int:
    name = url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        query = "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> $2"
        return int(await conn.fetchval(query, name, conn.get_server_pid()))
    finally:
        await conn.close()


async def test_the_pool_holds_what_the_configuration_says(pg_url: str, tmp_path: Path) -> None:
    cfg = write_config(tmp_path, f'[store]\nurl = "{pg_url}"\npool_size = 2\nmax_overflow = 1\n')
    app = await create_app(load_config(cfg))
    async with TestClient(TestServer(app)):
        store = components_of(app).store
        peak = 0

        async def busy() -> None:
            await store.read(lambda conn: conn.execute(sa.text("SELECT pg_sleep(0.3)")))

        async def watch() -> None:
            nonlocal peak
            for _ in range(10):
                peak = max(peak, await _connections(pg_url))
                await asyncio.sleep(0.05)

        await asyncio.gather(*(busy() for _ in range(6)), watch())
        assert peak == 3  # pool_size + max_overflow, though six wanted one
        assert await _connections(pg_url) == 2  # the overflow connection was closed
