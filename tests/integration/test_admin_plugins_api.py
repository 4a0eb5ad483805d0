"""The protocol plug-ins through the real admin API (issue #16): EST users and codes, SCEP
one-time challenges and ACME EAB keys made over HTTP are usable by their protocol's own state,
no list answer carries a secret, and each change is one audit event naming the token, whose
detail carries no secret either. The handlers' own checks are tests/unit/test_admin_plugins_*.

One in-process gateway on a real loopback socket
(:func:`tests.gateway_process.gateway_in_process`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from tests.gateway_process import gateway_in_process
from tests.helpers import certgate, init_gateway, write_config

EXTRA = """
[est]
enabled = true
port = 0
[est.labels.iot]
template = "device"
[scep]
enabled = true
[scep.endpoints.mdm]
challenge = "otp"
[acme]
enabled = true
"""

pytestmark = pytest.mark.asyncio(loop_scope="module")


@dataclass
class Api:
    base: str
    session: aiohttp.ClientSession
    token: str

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.token}"}
        url = f"{self.base}/api/v1{path}"
        async with self.session.request(method, url, json=body, headers=headers) as response:
            return response.status, await response.json(content_type=None)

    async def audit(self, event: str) -> list[dict[str, Any]]:
        status, page = await self.call("GET", f"/audit?event={event}")
        assert status == 200, page
        return list(page["items"])


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    tmp = tmp_path_factory.mktemp("plugins")
    cfg = write_config(tmp, EXTRA)
    init_gateway(cfg)
    out = certgate("admin", "token", "create", "--name", "ops", "--role", "admin", "-c", str(cfg))
    assert out.returncode == 0, out.stderr
    async with gateway_in_process(cfg) as port, aiohttp.ClientSession() as session:
        yield Api(f"http://127.0.0.1:{port}", session, out.stdout.split()[0])


async def test_est_user_made_over_the_api_is_audited_without_its_password(api: Api) -> None:
    body = {"username": "dev-7", "password": "Pa55-word", "groups": ["iot"]}
    assert (await api.call("POST", "/est/users", body))[0] == 201
    status, page = await api.call("GET", "/est/users")
    assert status == 200 and {"username": "dev-7", "groups": ["iot"]} in page["items"]
    [event] = await api.audit("est.user.added")
    assert event["actor"] == "token:ops" and "Pa55-word" not in repr(event)
    assert (await api.call("DELETE", "/est/users/dev-7"))[0] == 200
    assert len(await api.audit("est.user.deleted")) == 1
    assert (await api.call("DELETE", "/est/users/dev-7"))[0] == 404


async def test_est_code_is_shown_once_and_audited_without_it(api: Api) -> None:
    status, made = await api.call("POST", "/est/codes", {"identity": "sensor", "label": "iot"})
    assert status == 201
    [event] = await api.audit("est.code.created")
    assert made["code"] not in repr(event) and event["actor"] == "token:ops"


async def test_scep_challenge_is_listed_as_metadata_only(api: Api) -> None:
    status, made = await api.call("POST", "/scep/challenges", {"endpoint": "mdm"})
    assert status == 201 and len(made["challenge"]) == 40
    status, page = await api.call("GET", "/scep/challenges?endpoint=mdm")
    assert status == 200 and len(page["items"]) == 1
    assert page["items"][0]["created_by"] == "token:ops"
    assert made["challenge"] not in repr(page)
    [event] = await api.audit("scep.otp.created")
    assert made["challenge"] not in repr(event)


async def test_acme_eab_key_is_never_listed_nor_audited(api: Api) -> None:
    status, made = await api.call("POST", "/acme/eab-keys", {"principal": "cert-manager"})
    assert status == 201, made
    status, page = await api.call("GET", "/acme/eab-keys")
    assert status == 200 and [k["kid"] for k in page["items"]] == [made["kid"]]
    assert made["hmac_key"] not in repr(page)
    [event] = await api.audit("acme.eab.created")
    assert made["hmac_key"] not in repr(event)
    assert (await api.call("DELETE", f"/acme/eab-keys/{made['kid']}"))[0] == 200
    assert (await api.call("GET", "/acme/eab-keys"))[1]["items"] == []
