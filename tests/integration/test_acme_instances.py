"""ACME state lives in the database: a flow survives a gateway restart (SQLite), and two
gateway processes on one PostgreSQL share orders and nonces."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.acme_helpers import Client, RealHTTP, acme_config, serving
from tests.helpers import free_port

ALWAYS_VALID = "acme_always_valid = true\n"
PG_ADMIN_DSN = os.environ.get(
    "CERTGATE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)


async def _complete(c: Client, order: dict[str, Any]) -> None:
    for url in order["authorizations"]:
        authz = (await c.post(url)).json
        if authz["status"] == "pending":
            assert (await c.post(authz["challenges"][0]["url"], {})).status == 200


async def test_a_flow_survives_a_restart_on_sqlite(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cfg = acme_config(tmp_path, port=port, external_url=base, testing=ALWAYS_VALID)
    http = RealHTTP(port)
    try:
        c = Client(http, base=base)  # type: ignore[arg-type]
        with serving(cfg, port):
            await c.get_directory()
            assert (await c.register()).status == 201
            order = await c.new_order("restart.example.com")
            assert order.status == 201
            nonce = (await c.post(c.kid or "")).headers["Replay-Nonce"]
        with serving(cfg, port):
            # a nonce issued before the restart is still good (once)
            assert (await c.post(order.headers["Location"], nonce=nonce)).status == 200
            await _complete(c, order.json)
            fin = await c.finalize(order.json)
            assert fin.status == 200 and fin.json["status"] == "valid", fin.body
    finally:
        await http.close()


@pytest.fixture
def pg_url() -> Iterator[str]:
    name = f"certgate_acme_{secrets.token_hex(6)}"

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


@pytest.mark.postgres
def test_two_instances_on_one_postgresql_share_orders_and_nonces(
    tmp_path: Path, pg_url: str
) -> None:
    asyncio.run(_two_instances(tmp_path, pg_url))


async def _two_instances(tmp_path: Path, pg_url: str) -> None:
    port_a, port_b = free_port(), free_port()
    base = "https://acme.example.net"  # one external name in front of both instances
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    shared_ca = tmp_path / "a" / "data"
    cfg_a = acme_config(
        tmp_path / "a",
        external_url=base,
        testing=ALWAYS_VALID,
        store_url=pg_url,
        acme='eab_encryption_key = "env:ACME_EAB_KEY"\n',
    )
    with serving(cfg_a, port_a, env={"ACME_EAB_KEY": "shared"}):
        pass  # instance A creates the CA; B uses the same CA files
    cfg_b = acme_config(
        tmp_path / "b",
        external_url=base,
        testing=ALWAYS_VALID,
        store_url=pg_url,
        acme='eab_encryption_key = "env:ACME_EAB_KEY"\n',
    )
    text = cfg_b.read_text().replace(str(tmp_path / "b" / "data"), str(shared_ca))
    cfg_b.write_text(text)
    env = {"ACME_EAB_KEY": "shared"}
    http = RealHTTP(port_a)
    try:
        with serving(cfg_a, port_a, env=env), serving(cfg_b, port_b, env=env):
            c = Client(http, base=base)  # type: ignore[arg-type]
            await c.get_directory()
            assert (await c.register()).status == 201
            order = await c.new_order("multi.example.com")
            nonce_from_a = order.headers["Replay-Nonce"]
            http.port = port_b  # the load balancer now sends us to B
            assert (await c.post(c.kid or "", nonce=nonce_from_a)).status == 200
            http.port = port_a
            replay = await c.post(c.kid or "", nonce=nonce_from_a)  # used on B: refused on A
            assert replay.status == 400 and replay.problem == "badNonce"
            await _complete(c, order.json)
            http.port = port_b
            fin = await c.finalize(order.json)
            assert fin.status == 200 and fin.json["status"] == "valid", fin.body
            http.port = port_a
            assert (await c.post(fin.json["certificate"])).status == 200
    finally:
        await http.close()
