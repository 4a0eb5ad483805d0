"""Who may call what on the admin API (issue #16 item 2), for EVERY operation of the OpenAPI
document the gateway serves (iterated, so an endpoint added later cannot escape): anonymous ->
401, a token one role too low -> 403, both as RFC 9457 problem documents; the operation's role
-> neither; a revoked or an expired token -> 401.

The real app on a real loopback socket (:func:`tests.gateway_process.gateway_in_process`) with
EST, SCEP and ACME on, so their plug-in operations are in the document. The role an operation
needs is read from the document (its description says ``Role: <role> or above.``)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from gateway.admin.plugin import Role
from gateway.admin.tokens import AdminTokens
from gateway.clock import FixedClock
from gateway.store import default_sqlite_url, open_store
from tests.gateway_process import gateway_in_process
from tests.helpers import certgate, init_gateway, write_config

EXTRA = """
[est]
enabled = true
port = 0
[scep]
enabled = true
[scep.endpoints.mdm]
challenge = "otp"
[acme]
enabled = true
"""
# One gateway for the module: every test runs on the module's event loop.
pytestmark = pytest.mark.asyncio(loop_scope="module")
ROLE = re.compile(r"Role: (viewer|approver|admin) or above\.")


@dataclass
class Api:
    base: str
    session: aiohttp.ClientSession
    tokens: dict[str, str]  # viewer, approver, admin, revoked, expired
    document: dict[str, Any]

    def operations(self) -> list[tuple[str, str, dict[str, Any]]]:
        """(method, path, operation) of every operation in the document."""
        return [
            (method.upper(), path, op)
            for path, item in self.document["paths"].items()
            for method, op in item.items()
        ]

    async def call(self, method: str, path: str, token: str | None) -> aiohttp.ClientResponse:
        url = self.base + "/api/v1" + re.sub(r"{[^}]+}", "x", path)
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        body = {} if method in ("POST", "PUT", "PATCH") else None
        async with self.session.request(method, url, json=body, headers=headers) as response:
            await response.read()
            return response


def _token(cfg: Path, name: str, role: str) -> str:
    out = certgate("admin", "token", "create", "--name", name, "--role", role, "-c", str(cfg))
    assert out.returncode == 0, out.stderr
    return out.stdout.split()[0]


async def _expired_token(data: Path) -> str:
    """An admin token that expired yesterday (made with a clock two days back)."""
    store = open_store(default_sqlite_url(data))
    try:
        clock = FixedClock(datetime.now(UTC) - timedelta(days=2))
        tokens = AdminTokens(store, store, clock)
        secret, _ = await tokens.create("expired", Role.ADMIN, "test", timedelta(days=1))
        return secret
    finally:
        await store.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    tmp = tmp_path_factory.mktemp("roles")
    cfg = write_config(tmp, EXTRA)
    init_gateway(cfg)
    tokens = {role: _token(cfg, role, role) for role in ("viewer", "approver", "admin")}
    tokens["revoked"] = _token(cfg, "revoked", "admin")
    assert certgate("admin", "token", "revoke", "revoked", "-c", str(cfg)).returncode == 0
    tokens["expired"] = await _expired_token(tmp / "data")
    async with gateway_in_process(cfg) as port, aiohttp.ClientSession() as session:
        base = f"http://127.0.0.1:{port}"
        async with session.get(base + "/api/v1/openapi.json") as response:
            assert response.status == 200
            document = await response.json()
        yield Api(base, session, tokens, document)


def _role(op: dict[str, Any]) -> Role:
    found = ROLE.search(op.get("description", ""))
    assert found, f"{op['operationId']}: the document does not say which role it needs"
    return Role[found.group(1).upper()]


async def _problem(response: aiohttp.ClientResponse, status: int) -> None:
    assert response.status == status, f"{response.method} {response.url}: {response.status}"
    assert response.content_type == "application/problem+json"
    doc = await response.json(content_type=None)
    assert doc["status"] == status and doc["title"] and "detail" in doc


async def test_the_document_has_the_plug_in_operations(api: Api) -> None:
    ids = {op["operationId"] for _, _, op in api.operations()}
    assert {"listEstUsers", "createScepChallenge", "createAcmeEabKey"} <= ids
    assert len(ids) == len(api.operations()) >= 20


async def test_anonymous_gets_401_everywhere(api: Api) -> None:
    for method, path, op in api.operations():
        assert op.get("security"), f"{method} {path} is not secured in the document"
        response = await api.call(method, path, None)
        await _problem(response, 401)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_one_role_too_low_gets_403(api: Api) -> None:
    checked = 0
    for method, path, op in api.operations():
        role = _role(op)
        if role == Role.VIEWER:
            continue  # nothing is below viewer but anonymous (the test above)
        lower = Role(role - 1).name.lower()
        await _problem(await api.call(method, path, api.tokens[lower]), 403)
        checked += 1
    assert checked >= 10


async def test_the_right_role_is_let_through(api: Api) -> None:
    for method, path, op in api.operations():
        token = api.tokens[_role(op).name.lower()]
        response = await api.call(method, path, token)
        assert response.status not in (401, 403), f"{method} {path}: {response.status}"
        assert response.status < 500, f"{method} {path}: {response.status}"


@pytest.mark.parametrize("which", ["revoked", "expired"])
async def test_revoked_and_expired_tokens_get_401(api: Api, which: str) -> None:
    for method, path, _ in api.operations():
        await _problem(await api.call(method, path, api.tokens[which]), 401)
