"""ACME state lives in the database: a flow survives a gateway restart (SQLite), and two
gateway instances on one PostgreSQL share orders, nonces and rate-limit counts.

Each instance is the real app on its own loopback socket, in this process
(:func:`tests.gateway_process.gateway_in_process`): the state they share is what their stores
share, nothing is held at module level."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.acme_helpers import Client, RealHTTP, acme_config
from tests.gateway_process import gateway_in_process
from tests.helpers import free_port, init_gateway
from tests.pg_helpers import scratch_database

ALWAYS_VALID = "acme_always_valid = true\n"
TESTING = {"CERTGATE_TESTING": "1"}


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
        init_gateway(cfg, env=TESTING)
        async with gateway_in_process(cfg, port=port, env=TESTING):
            await c.get_directory()
            assert (await c.register()).status == 201
            order = await c.new_order("restart.example.com")
            assert order.status == 201
            nonce = (await c.post(c.kid or "")).headers["Replay-Nonce"]
        async with gateway_in_process(cfg, port=port, env=TESTING):
            # a nonce issued before the restart is still good (once)
            assert (await c.post(order.headers["Location"], nonce=nonce)).status == 200
            await _complete(c, order.json)
            fin = await c.finalize(order.json)
            assert fin.status == 200 and fin.json["status"] == "valid", fin.body
    finally:
        await http.close()


@pytest.fixture
def pg_url() -> Iterator[str]:
    yield from scratch_database("certgate_acme")


@pytest.mark.postgres
def test_two_instances_on_one_postgresql_share_orders_and_nonces(
    tmp_path: Path, pg_url: str
) -> None:
    asyncio.run(_two_instances(tmp_path, pg_url))


def _configs(tmp_path: Path, pg_url: str, acme: str = "") -> tuple[Path, Path]:
    """Configs of instances A and B on one database and one CA (A's data directory)."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    extra = 'eab_encryption_key = "env:ACME_EAB_KEY"\n' + acme
    cfg_a, cfg_b = (
        acme_config(
            tmp_path / side, external_url=BASE, testing=ALWAYS_VALID, store_url=pg_url, acme=extra
        )
        for side in ("a", "b")
    )
    init_gateway(cfg_a, env=ENV)  # A's site and CA; B uses the same CA files
    text = cfg_b.read_text().replace(str(tmp_path / "b" / "data"), str(tmp_path / "a" / "data"))
    cfg_b.write_text(text)
    return cfg_a, cfg_b


BASE = "https://acme.example.net"  # one external name in front of both instances
ENV = {"ACME_EAB_KEY": "shared", **TESTING}


async def _two_instances(tmp_path: Path, pg_url: str) -> None:
    port_a, port_b = free_port(), free_port()
    base = BASE
    cfg_a, cfg_b = _configs(tmp_path, pg_url)
    env = ENV
    http = RealHTTP(port_a)
    try:
        async with (
            gateway_in_process(cfg_a, port=port_a, env=env),
            gateway_in_process(cfg_b, port=port_b, env=env),
        ):
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


@pytest.mark.postgres
def test_two_instances_on_one_postgresql_share_rate_limits(tmp_path: Path, pg_url: str) -> None:
    asyncio.run(_shared_limits(tmp_path, pg_url))


async def _shared_limits(tmp_path: Path, pg_url: str) -> None:
    limits = "rate_limit_new_orders = 3\nrate_limit_new_accounts = 2\n"
    cfg_a, cfg_b = _configs(tmp_path, pg_url, limits)
    port_a, port_b = free_port(), free_port()
    http = RealHTTP(port_a)
    try:
        async with (
            gateway_in_process(cfg_a, port=port_a, env=ENV),
            gateway_in_process(cfg_b, port=port_b, env=ENV),
        ):
            c = Client(http, base=BASE)  # type: ignore[arg-type]
            await c.get_directory()
            assert (await c.register()).status == 201
            # Orders alternate between instances; each process alone has seen at most two.
            for port, name in ((port_b, "o1"), (port_a, "o2"), (port_b, "o3")):
                http.port = port
                assert (await c.new_order(f"{name}.example.com")).status == 201
            http.port = port_a
            refused = await c.new_order("o4.example.com")
            assert refused.status == 429 and refused.problem == "rateLimited", refused.body
            assert 1 <= int(refused.headers["Retry-After"]) <= 3600
            assert "Replay-Nonce" in refused.headers
            # New accounts per client address: one on A (above), one on B, the third refused.
            http.port = port_b
            assert (await Client(http, base=BASE).register()).status == 201  # type: ignore[arg-type]
            http.port = port_a
            third = await Client(http, base=BASE).register()  # type: ignore[arg-type]
            assert third.status == 429 and third.problem == "rateLimited", third.body
            assert int(third.headers["Retry-After"]) >= 1
    finally:
        await http.close()
