"""SCEP authorization: one-time challenges and the webhook validator (a real aiohttp server on
loopback plays the MDM)."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from cryptography import x509

from gateway.config import load_config
from gateway.pkix import cms
from gateway.server.app import components_of, create_app
from protocols.scep import otp
from protocols.scep.messages import FailInfo, PKIStatus
from tests import scep_client as sc
from tests.helpers import certgate, init_gateway
from tests.scep_helpers import scep_config

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
Client = Callable[[Any], Awaitable[Any]]


class Harness:
    def __init__(self, client: Any, app: Any, ra: x509.Certificate) -> None:
        self.client, self.app, self.ra = client, app, ra

    async def rep(self, c: sc.Client, der: bytes, endpoint: str) -> sc.CertRep:
        r = await self.client.post(f"/scep/{endpoint}?operation=PKIOperation", data=der)
        assert r.status == 200
        return c.read(await r.read())

    async def new_otp(self, endpoint: str = "otp", ttl: int = 3600, identity: str | None = None):  # type: ignore[no-untyped-def]
        components = components_of(self.app)
        return await otp.create(
            components.store,
            endpoint,
            identity,
            timedelta(seconds=ttl),
            "test",
            components.service.clock.now(),
        )


async def _harness(tmp: Path, aiohttp_client: Client, toml: str) -> Harness:
    app = await create_app(load_config(scep_config(tmp, toml)))
    client = await aiohttp_client(app)
    body = await (await client.get("/scep/otp?operation=GetCACert")).read()
    ra = cms.read_certs_only(body)[0][0]
    return Harness(client, app, ra)


OTP_TOML = """
[scep.endpoints.otp]
template = "scep-device"
challenge = "otp"

[scep.endpoints.other]
template = "scep-device"
challenge = "otp"
"""


@pytest.fixture
async def otp_harness(tmp_path: Path, aiohttp_client: Client) -> Harness:
    return await _harness(tmp_path, aiohttp_client, OTP_TOML)


async def test_one_time_challenge_enrolls_once_and_records_the_identity(
    otp_harness: Harness,
) -> None:
    created = await otp_harness.new_otp(identity="device-42@example")
    c = sc.Client(otp_harness.ra)
    csr = sc.make_csr(c.key, "device-42", challenge=created.password)
    rep = await otp_harness.rep(c, c.pkcs_req(csr, transaction_id="o1"), "otp")
    assert rep.status == PKIStatus.SUCCESS, rep.fail_text
    stored = await components_of(otp_harness.app).store.find_request("scep", "o1")
    assert stored is not None and stored.requester.principal == "device-42@example"
    assert stored.requester.auth_method == "one-time-challenge"


async def test_reused_one_time_challenge_is_badrequest(otp_harness: Harness) -> None:
    created = await otp_harness.new_otp()
    a, b = sc.Client(otp_harness.ra), sc.Client(otp_harness.ra)
    first = await otp_harness.rep(
        a, a.pkcs_req(sc.make_csr(a.key, "a", challenge=created.password)), "otp"
    )
    assert first.status == PKIStatus.SUCCESS
    again = await otp_harness.rep(
        b, b.pkcs_req(sc.make_csr(b.key, "b", challenge=created.password)), "otp"
    )
    assert (again.status, again.fail_info) == (PKIStatus.FAILURE, FailInfo.BAD_REQUEST)
    assert again.fail_text == "the challenge password is not valid"  # reveals nothing


async def test_retry_of_the_same_transaction_with_its_one_time_challenge_succeeds(
    otp_harness: Harness,
) -> None:
    created = await otp_harness.new_otp()
    c = sc.Client(otp_harness.ra)
    csr = sc.make_csr(c.key, "retry", challenge=created.password)
    one = await otp_harness.rep(c, c.pkcs_req(csr, transaction_id="rt"), "otp")
    two = await otp_harness.rep(c, c.pkcs_req(csr, transaction_id="rt"), "otp")
    assert one.status == two.status == PKIStatus.SUCCESS
    assert one.certificates[0] == two.certificates[0]


async def test_expired_one_time_challenge_is_refused(otp_harness: Harness) -> None:
    created = await otp_harness.new_otp(ttl=0)
    c = sc.Client(otp_harness.ra)
    rep = await otp_harness.rep(
        c, c.pkcs_req(sc.make_csr(c.key, "late", challenge=created.password)), "otp"
    )
    assert (rep.status, rep.fail_info) == (PKIStatus.FAILURE, FailInfo.BAD_REQUEST)


async def test_one_time_challenge_of_another_endpoint_is_refused(otp_harness: Harness) -> None:
    created = await otp_harness.new_otp(endpoint="other")
    c = sc.Client(otp_harness.ra)
    rep = await otp_harness.rep(
        c, c.pkcs_req(sc.make_csr(c.key, "x", challenge=created.password)), "otp"
    )
    assert (rep.status, rep.fail_info) == (PKIStatus.FAILURE, FailInfo.BAD_REQUEST)


async def test_only_a_hash_of_the_one_time_challenge_is_stored(otp_harness: Harness) -> None:
    created = await otp_harness.new_otp()
    from protocols.scep.tables import scep_otps

    store = components_of(otp_harness.app).store
    rows = await store.read(lambda conn: conn.execute(scep_otps.select()).mappings().all())
    dumped = json.dumps([{k: str(v) for k, v in r.items()} for r in rows])
    assert created.password not in dumped
    assert len(created.password) >= 32


def test_otp_create_cli_prints_the_password_once_and_refuses_other_modes(tmp_path: Path) -> None:
    cfg = scep_config(
        tmp_path,
        OTP_TOML + '\n[scep.endpoints.static]\ntemplate = "device"\n'
        'challenge = "static"\nchallenge_password = "file:static.txt"\n',
    )
    init_gateway(cfg)
    out = certgate("scep", "otp", "create", "--endpoint", "otp", "--ttl", "30m", "-c", str(cfg))
    assert out.returncode == 0, out.stderr
    password = out.stdout.splitlines()[0]
    assert len(password) >= 32 and password.isalnum()
    bad = certgate("scep", "otp", "create", "--endpoint", "static", "-c", str(cfg))
    assert bad.returncode != 0 and "not otp" in bad.stderr
    missing = certgate("scep", "otp", "create", "--endpoint", "nope", "-c", str(cfg))
    assert missing.returncode != 0 and "no SCEP endpoint" in missing.stderr


# -- webhook ---------------------------------------------------------------------------------


class Webhook:
    """An MDM stand-in: records what it was sent and answers with ``status`` after ``delay``."""

    def __init__(self) -> None:
        self.status = 200
        self.delay = 0.0
        self.calls: list[dict[str, Any]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.calls.append(await request.json())
        await asyncio.sleep(self.delay)
        return web.Response(status=self.status)


@pytest.fixture
async def webhook(
    aiohttp_server: Callable[..., Awaitable[Any]],
) -> AsyncIterator[tuple[Webhook, str]]:
    hook = Webhook()
    app = web.Application()
    app.router.add_post("/check", hook.handle)
    server = await aiohttp_server(app, host="127.0.0.1")
    yield hook, f"http://127.0.0.1:{server.port}/check"


async def _webhook_harness(tmp: Path, aiohttp_client: Client, url: str) -> Harness:
    toml = f"""
[scep.endpoints.otp]
template = "scep-device"
challenge = "webhook"
webhook_url = "{url}"
webhook_timeout = "1s"
"""
    return await _harness(tmp, aiohttp_client, toml)


async def test_webhook_2xx_allows_and_receives_csr_challenge_and_transaction(
    tmp_path: Path, aiohttp_client: Client, webhook: tuple[Webhook, str]
) -> None:
    hook, url = webhook
    h = await _webhook_harness(tmp_path, aiohttp_client, url)
    c = sc.Client(h.ra)
    csr = sc.make_csr(c.key, "mdm-device", challenge="intune-dynamic-challenge")
    rep = await h.rep(c, c.pkcs_req(csr, transaction_id="wh1"), "otp")
    assert rep.status == PKIStatus.SUCCESS, rep.fail_text
    (call,) = hook.calls
    assert call["transaction_id"] == "wh1"
    assert call["challenge"] == "intune-dynamic-challenge"
    assert x509.load_der_x509_csr(base64.b64decode(call["csr"])) == csr


@pytest.mark.parametrize(("status", "delay"), [(403, 0.0), (500, 0.0), (302, 0.0), (200, 3.0)])
async def test_webhook_non_2xx_or_timeout_denies(
    tmp_path: Path,
    aiohttp_client: Client,
    webhook: tuple[Webhook, str],
    status: int,
    delay: float,
) -> None:
    hook, url = webhook
    hook.status, hook.delay = status, delay
    h = await _webhook_harness(tmp_path, aiohttp_client, url)
    c = sc.Client(h.ra)
    csr = sc.make_csr(c.key, "mdm-device", challenge="whatever")
    rep = await h.rep(c, c.pkcs_req(csr, transaction_id="wh2"), "otp")
    assert (rep.status, rep.fail_info) == (PKIStatus.FAILURE, FailInfo.BAD_REQUEST)
    assert await components_of(h.app).store.find_request("scep", "wh2") is None
