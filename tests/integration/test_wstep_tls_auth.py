"""Passwords only over TLS: a UsernameToken that arrives over plain HTTP is refused with a fault
that says why (and audited), unless ``[wstep] allow_password_over_http``; GetPolicies publishes
the username endpoint only as the https URL of the TLS listener the request came in on, the
certificate endpoint only on a listener that asks for client certificates, and a pending answer
sends the client back to the URL it used. The real app on a plain and a TLS socket."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.serialization import Encoding

from gateway.codecs.ms import hresults as hr
from gateway.codecs.ms.wstrust import EnrollmentFault, TokenResponse, parse_envelope, parse_reply
from gateway.codecs.ms.xcep import AUTH_CERTIFICATE, AUTH_USERNAME, parse_get_policies_response
from gateway.config import load_config
from gateway.server.app import LISTENERS, components_of, create_app
from protocols.wstep.users import Account, add_account, hash_password
from tests.helpers import free_port, make_csr, write_config
from tests.wstep_helpers import PASSWORD, SOAP_HEADERS, get_policies, rst, tls_files


@dataclass
class Gateway:
    app: web.Application
    plain: str  # http://127.0.0.1:P (the main listener)
    tls: str  # https://127.0.0.1:T (the [wstep.tls] listener)
    cafile: Path
    session: aiohttp.ClientSession

    async def post(self, url: str, body: bytes) -> tuple[int, bytes]:
        context = ssl.create_default_context(cafile=str(self.cafile))
        async with self.session.post(
            url, data=body, headers=SOAP_HEADERS, ssl=context if url.startswith("https") else None
        ) as response:
            assert response.content_type == "application/soap+xml"
            return response.status, await response.read()

    async def refusals(self) -> list[dict[str, object]]:
        events = await components_of(self.app).store.audit_events()
        return [dict(e.detail) for e in events if e.event == "wstep.request.refused"]


async def _serve(tmp_path: Path, wstep: str, *, tls: bool) -> AsyncIterator[Gateway]:
    port, tls_port = free_port(), free_port()
    cert, key = tls_files(tmp_path / "tls")
    listener = (
        f'[wstep.tls]\nhost = "127.0.0.1"\nport = {tls_port}\n'
        f'certificate = "{cert}"\nkey = "{key}"\n'
        if tls
        else ""
    )
    cfg = write_config(tmp_path, f"\n[wstep]\nenabled = true\n{wstep}\n{listener}", port=port)
    app = await create_app(load_config(cfg))
    await components_of(app).store.write(
        add_account, Account("alice", "alice", (), hash_password(PASSWORD)), datetime.now(UTC)
    )
    runner = web.AppRunner(app)
    await runner.setup()
    session = aiohttp.ClientSession()
    try:
        await web.TCPSite(runner, "127.0.0.1", port).start()
        for item in app[LISTENERS]:
            await web.TCPSite(runner, item.host, item.port, ssl_context=item.ssl_context).start()
        yield Gateway(
            app, f"http://127.0.0.1:{port}", f"https://127.0.0.1:{tls_port}", cert, session
        )
    finally:
        await session.close()
        await runner.cleanup()


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    async for gw in _serve(tmp_path, "", tls=True):
        yield gw


@pytest.fixture
async def proxied(tmp_path: Path) -> AsyncIterator[Gateway]:
    """No TLS listener; the switch says a TLS-terminating proxy is in front."""
    async for gw in _serve(tmp_path, "allow_password_over_http = true", tls=False):
        yield gw


def _csr() -> bytes:
    return make_csr(cn="t.example", dns=("t.example",)).public_bytes(Encoding.DER)


@pytest.mark.parametrize("endpoint", ["CES", "CEP"])
async def test_a_password_over_plain_http_is_refused_with_a_fault_that_says_why(
    gateway: Gateway, endpoint: str
) -> None:
    body = rst(_csr()) if endpoint == "CES" else get_policies()
    status, data = await gateway.post(f"{gateway.plain}/wstep/{endpoint}", body)
    reply = parse_reply(data)
    assert status == 500 and isinstance(reply, EnrollmentFault)
    assert reply.hresult == hr.code("E_ACCESSDENIED") and "only over TLS" in reply.reason
    assert await gateway.refusals() == [{"rule": "password-over-http", "username": "alice"}]
    assert await components_of(gateway.app).store.list_requests() == []  # nothing enrolled


async def test_get_policies_over_tls_lists_endpoints_only_on_the_tls_listener(
    gateway: Gateway,
) -> None:
    status, data = await gateway.post(f"{gateway.tls}/wstep/CEP", get_policies())
    assert status == 200, data[:300]
    document = parse_get_policies_response(parse_envelope(data))
    uris = {(auth, uri) for ca in document.cas for auth, uri, *_ in ca.uris}
    assert uris == {
        (AUTH_USERNAME, f"{gateway.tls}/wstep/CES"),
        (AUTH_CERTIFICATE, f"{gateway.tls}/wstep/CES"),
    }


async def test_a_pending_answer_over_tls_points_back_to_the_tls_url(gateway: Gateway) -> None:
    status, data = await gateway.post(
        f"{gateway.tls}/wstep/CES", rst(_csr(), template="approval-required")
    )
    reply = parse_reply(data)
    assert status == 200 and isinstance(reply, TokenResponse) and not reply.issued
    assert reply.reference == f"{gateway.tls}/wstep/CES" and reply.request_id.isdigit()
    status, data = await gateway.post(reply.reference, rst(request_id=reply.request_id))
    polled = parse_reply(data)
    assert status == 200 and isinstance(polled, TokenResponse)
    assert polled.request_id == reply.request_id and polled.reference == reply.reference


async def test_the_switch_accepts_passwords_over_http_and_publishes_the_main_url(
    proxied: Gateway,
) -> None:
    status, data = await proxied.post(f"{proxied.plain}/wstep/CEP", get_policies())
    assert status == 200, data[:300]
    document = parse_get_policies_response(parse_envelope(data))
    uris = {(auth, uri) for ca in document.cas for auth, uri, *_ in ca.uris}
    # No listener asks for client certificates: no certificate endpoint.
    assert uris == {(AUTH_USERNAME, f"{proxied.plain}/wstep/CES")}
    status, data = await proxied.post(f"{proxied.plain}/wstep/CES", rst(_csr()))
    reply = parse_reply(data)
    assert status == 200 and isinstance(reply, TokenResponse) and reply.issued
    assert await proxied.refusals() == []


async def test_the_switch_is_announced_at_start_up(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = write_config(tmp_path, "\n[wstep]\nenabled = true\nallow_password_over_http = true\n")
    app = await create_app(load_config(cfg))
    try:
        warnings = [
            r.getMessage()
            for r in caplog.records
            if r.levelname == "WARNING" and "allow_password_over_http" in r.getMessage()
        ]
        assert len(warnings) == 1 and str(cfg) in warnings[0]
    finally:
        await components_of(app).close()
