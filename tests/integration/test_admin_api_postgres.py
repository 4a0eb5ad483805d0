"""The admin API's lists on PostgreSQL (issue #16): a gateway whose ``[store] url`` is the real
PostgreSQL on 127.0.0.1:5432, through aiohttp's test client on the real app factory: request
filters, certificate search and pages, the expiry chart and audit filters answer as on SQLite."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway.config import load_config
from gateway.server.app import create_app
from tests.admin_helpers import main_json
from tests.helpers import csr_pem, make_csr, write_config
from tests.pg_helpers import scratch_database

pytestmark = pytest.mark.postgres


@dataclass
class Gateway:
    cfg: Path
    token: str
    pending: list[str]
    serials: list[str]


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    yield from scratch_database("certgate_admin")


@pytest.fixture(scope="module")
def gateway(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Gateway:
    tmp = tmp_path_factory.mktemp("admin-pg")
    cfg = write_config(tmp, f'[store]\nurl = "{pg_url}"\n')
    assert main_json("init", "-c", str(cfg))[0] == 0
    argv = ("admin", "token", "create", "-c", str(cfg), "--name", "pg", "--role", "admin")
    gw = Gateway(cfg, main_json(*argv)[1]["token"], [], [])
    for i, template in enumerate(["approval-required", "approval-required", "tls-server"] * 2):
        csr = tmp / f"{i}.csr"
        csr.write_bytes(csr_pem(make_csr(cn=f"h{i}.example.test", dns=(f"h{i}.example.test",))))
        argv = ("enroll", "-c", str(cfg), "--csr", str(csr), "--template", template)
        code, out = main_json(*argv)
        assert code == (0 if template == "tls-server" else 3)  # issued / pending
        if template == "tls-server":
            gw.serials.append(out["serial"])
        else:
            gw.pending.append(out["request_id"])
    return gw


@pytest.fixture
async def client(gateway: Gateway) -> AsyncIterator[TestClient[Any, Any]]:
    app = await create_app(load_config(gateway.cfg))
    async with TestClient(TestServer(app)) as c:
        yield c


async def _get(client: TestClient[Any, Any], gateway: Gateway, path: str) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {gateway.token}"}
    resp = await client.get(f"/api/v1{path}", headers=headers)
    return resp.status, json.loads(await resp.read())


async def test_request_filters_and_pages(client: TestClient[Any, Any], gateway: Gateway) -> None:
    status, page = await _get(client, gateway, "/requests?state=pending&template=approval-required")
    assert status == 200
    assert [r["id"] for r in page["items"]] == list(reversed(gateway.pending))
    status, page = await _get(client, gateway, "/requests?requester=OPERATOR&protocol=cli")
    assert len(page["items"]) == 6
    seen, cursor = [], ""
    while True:
        status, page = await _get(client, gateway, f"/requests?limit=4{cursor}")
        seen += [r["id"] for r in page["items"]]
        if page["next"] is None:
            break
        cursor = f"&cursor={page['next']}"
    assert len(seen) == len(set(seen)) == 6
    status, problem = await _get(client, gateway, "/requests?state=lost")
    assert status == 400 and problem["detail"].startswith("state: ")


async def test_certificate_search_chart_and_audit(
    client: TestClient[Any, Any], gateway: Gateway
) -> None:
    status, page = await _get(client, gateway, "/certificates?san=h2.example")
    assert [c["serial"] for c in page["items"]] == [gateway.serials[0]]
    status, page = await _get(client, gateway, "/certificates?status=valid&limit=1")
    assert len(page["items"]) == 1 and page["next"]
    status, chart = await _get(client, gateway, "/certificates/expiring?weeks=60")
    assert sum(w["count"] for w in chart["items"]) == 2
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    status, trail = await _get(client, gateway, f"/audit?event=request.pending&since={since}")
    assert status == 200 and len(trail["items"]) == 4
    assert {e["request_id"] for e in trail["items"]} == set(gateway.pending)
