"""The ``ms_ces`` connector with ``auth = "kerberos"`` against a real MIT KDC on loopback.

A throwaway realm (tests/kerberos_helpers.py) issues ``user@CERTGATE.TEST`` a ticket; a loopback
CES answers only requests whose ``Authorization: Negotiate`` token a real GSSAPI/SPNEGO acceptor
(pyspnego with the ``HTTP/localhost`` keytab) verifies, and then replays the issued fixture.
Skipped without the Kerberos tooling, failed instead when ``CERTGATE_REQUIRE_PEERS=1``.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509

from backends.ms_ces import MSCESConnector
from gateway.codecs.ms.wstrust import parse_envelope, parse_request
from gateway.errors import CAUnavailable, ConnectorError
from gateway.model import Issued
from gateway.ports import ConnectorContext
from tests.ces_fixtures import MemoryJournal, plan
from tests.helpers import free_port
from tests.kerberos_helpers import HOST, REALM, require_kerberos, start_realm
from tests.wstep_helpers import VECTORS

#: A service the KDC knows but the CES keytab does not hold: its tickets must be refused.
OTHER_SPN_HOST = "other.certgate.test"
#: Upper bound for any one connector call; the failure paths must end well before it.
CALL_TIMEOUT = 10.0


@pytest.fixture(scope="module")
def realm() -> Iterator[Any]:
    require_kerberos()
    r = start_realm()
    try:
        r.addprinc(f"HTTP/{OTHER_SPN_HOST}@{REALM}")
        yield r
    finally:
        r.stop()


@pytest.fixture
def krb_env(realm: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Point this process's libkrb5 (client and acceptor) at the test realm."""
    for key, value in realm.env.items():
        monkeypatch.setenv(key, value)
    return realm


@dataclass
class NegotiateCES:
    """A CES that authenticates with a real SPNEGO acceptor, then replays the issued reply."""

    principals: list[str] = field(default_factory=list)
    mechanisms: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)

    @staticmethod
    def _challenge(reason: str) -> web.Response:
        return web.Response(status=401, text=reason, headers={"WWW-Authenticate": "Negotiate"})

    async def handle(self, request: web.Request) -> web.Response:
        import spnego

        body = await request.read()
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "negotiate" or not value:
            self.refused.append("no Negotiate token")
            return self._challenge("Negotiate authentication required")
        try:
            token = base64.b64decode(value, validate=True)
            acceptor = spnego.server(hostname=HOST, service="HTTP", protocol="negotiate")
            answer = acceptor.step(token)
        except Exception as exc:  # any GSSAPI/SPNEGO failure is a refusal
            self.refused.append(f"{type(exc).__name__}: {exc}")
            return self._challenge("Negotiate token refused")
        if not acceptor.complete:
            self.refused.append("context not complete after one token")
            return self._challenge("Negotiate token incomplete")
        self.principals.append(str(acceptor.client_principal))
        self.mechanisms.append(str(acceptor.negotiated_protocol))
        self.bodies.append(body)
        headers = {"WWW-Authenticate": "Negotiate " + base64.b64encode(answer).decode()}
        return web.Response(
            body=(VECTORS / "rstrc_issued.xml").read_bytes(),
            content_type="application/soap+xml",
            headers=headers if answer else {},
        )


@pytest.fixture
async def ces(krb_env: Any) -> AsyncIterator[tuple[NegotiateCES, int]]:
    fake = NegotiateCES()
    app = web.Application()
    app.router.add_post("/CES", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield fake, port
    finally:
        await runner.cleanup()


def connector(port: int, **extra: Any) -> MSCESConnector:
    settings = {
        # The host name is the SPN's: HTTP/localhost. http:// is the connector's test switch.
        "url": f"http://{HOST}:{port}/CES",
        "allow_http": True,
        "auth": "kerberos",
        "issuer_chain": str(VECTORS / "chain.pem"),
        "retry_after": "7s",
        "timeout": "5s",
        **extra,
    }
    return MSCESConnector(
        ConnectorContext("adcs", settings, Path("/nonexistent"), MemoryJournal(), "t.toml")
    )


async def _submit(conn: MSCESConnector, request_id: str = "req-krb") -> Any:
    await conn.start()
    try:
        return await asyncio.wait_for(conn.submit(plan(request_id)), CALL_TIMEOUT)
    finally:
        await conn.close()


async def test_submit_with_a_ticket_is_issued_and_the_ces_verified_the_principal(
    ces: tuple[NegotiateCES, int], krb_env: Any
) -> None:
    fake, port = ces
    outcome = await _submit(connector(port))
    assert isinstance(outcome, Issued)
    leaf = x509.load_pem_x509_certificate((VECTORS / "leaf.pem").read_bytes())
    assert outcome.certificate == leaf
    assert fake.refused == []
    assert fake.principals == [krb_env.user_princ] == [f"user@{REALM}"]
    assert fake.mechanisms == ["kerberos"]  # not an NTLM fallback
    envelope = parse_envelope(fake.bodies[0])
    assert envelope.username is None and envelope.password is None  # no UsernameToken
    assert parse_request(envelope).context["certgate-request-id"] == "req-krb"


async def test_the_ces_refuses_missing_forged_and_misaddressed_tokens(
    ces: tuple[NegotiateCES, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    import spnego

    fake, port = ces
    url = f"http://{HOST}:{port}/CES"
    wrong_spn = spnego.client(hostname=OTHER_SPN_HOST, service="HTTP", protocol="kerberos")
    attempts = {
        "none": {},
        "forged": {"Authorization": "Negotiate " + base64.b64encode(b"\x60\x05junk").decode()},
        "other service's ticket": {
            "Authorization": "Negotiate " + base64.b64encode(wrong_spn.step()).decode()
        },
    }
    timeout = aiohttp.ClientTimeout(total=CALL_TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for name, headers in attempts.items():
            async with session.post(url, data=b"<x/>", headers=headers) as response:
                assert response.status == 401, name
                assert response.headers["WWW-Authenticate"] == "Negotiate", name
    assert fake.principals == [] and len(fake.refused) == 3
    # The connector without Negotiate (UsernameToken only) is refused the same way.
    monkeypatch.setenv("CES_TEST_PASSWORD", "s3cret-pw")
    plain = connector(port, auth="username", username="u", password="env:CES_TEST_PASSWORD")
    with pytest.raises(ConnectorError, match=r"refused our credentials \(HTTP 401\)"):
        await _submit(plain)
    assert fake.principals == []


async def test_without_a_ticket_cache_the_connector_fails_fast_and_sends_nothing(
    ces: tuple[NegotiateCES, int], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake, port = ces
    monkeypatch.setenv("KRB5CCNAME", f"FILE:{tmp_path / 'no-such-ccache'}")
    started = time.monotonic()
    with pytest.raises(CAUnavailable, match="Kerberos authentication failed") as caught:
        await _submit(connector(port))
    assert time.monotonic() - started < 5
    assert caught.value.retry_after == 7
    assert fake.principals == [] and fake.refused == [] and fake.bodies == []
