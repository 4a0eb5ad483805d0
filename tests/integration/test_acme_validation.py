# ruff: noqa: F811  (pytest fixtures imported from tests.acme_fixtures)
"""Real challenge validation in the background: http-01 against a local responder, tls-alpn-01
against a local TLS server (RFC 8737 negative cases), dns-01 through pebble-challtestsrv, and
the sweeper that re-validates challenges a stopped instance left ``processing``."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import ssl
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from protocols.acme import jws as J
from protocols.acme.base import ACME
from protocols.acme.challenge_values import ACME_IDENTIFIER_OID, dns01_value, key_authorization
from protocols.acme.validation import sweep
from tests.acme_fixtures import make_client  # noqa: F401
from tests.acme_helpers import Client, challtestsrv, jwk_of
from tests.helpers import free_port


def _key_auth(c: Client, token: str) -> str:
    return key_authorization(token, J.thumbprint(jwk_of(c.key)))


@pytest.fixture
async def responder() -> AsyncIterator[tuple[int, dict[str, str]]]:
    tokens: dict[str, str] = {}

    async def serve(request: web.Request) -> web.Response:
        body = tokens.get(request.match_info["token"])
        return web.Response(text=body + "\n") if body else web.Response(status=404)

    app = web.Application()
    app.router.add_get("/.well-known/acme-challenge/{token}", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield port, tokens
    await runner.cleanup()


async def _challenge(
    c: Client, name: str, kind: str
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    order = await c.new_order(name)
    assert order.status == 201, order.body
    authz_url = order.json["authorizations"][0]
    authz = (await c.post(authz_url)).json
    ch = next(x for x in authz["challenges"] if x["type"] == kind)
    return order.json | {"url": order.headers["Location"]}, {"url": authz_url}, ch


async def test_http01_valid_then_order_ready(
    make_client: Callable[..., Any], responder: Any
) -> None:
    port, tokens = responder
    c = await make_client(f"http01_port = {port}\n", testing="")
    await c.register()
    order, authz, ch = await _challenge(c, "127.0.0.1", "http-01")
    tokens[ch["token"]] = _key_auth(c, ch["token"])
    r = await c.post(ch["url"], {})
    assert r.json["status"] in ("processing", "valid")
    if r.json["status"] == "processing":
        assert r.headers["Retry-After"] == "1"
    done = await c.wait_authz(authz["url"], 100)
    assert done["status"] == "valid" and done["challenges"][0]["status"] == "valid"
    assert "validated" in done["challenges"][0]
    assert (await c.post(order["url"])).json["status"] == "ready"
    # a retried POST {} does not change a finished challenge
    assert (await c.post(ch["url"], {})).json["status"] == "valid"


async def test_http01_wrong_answer_makes_challenge_authz_and_order_invalid(
    make_client: Callable[..., Any], responder: Any
) -> None:
    port, tokens = responder
    c = await make_client(f"http01_port = {port}\n", testing="")
    await c.register()
    order, authz, ch = await _challenge(c, "127.0.0.1", "http-01")
    tokens[ch["token"]] = "wrong-internal-page-text"
    await c.post(ch["url"], {})
    done = await c.wait_authz(authz["url"], 100)
    assert done["status"] == "invalid"
    failed = next(x for x in done["challenges"] if x["type"] == "http-01")
    assert failed["error"]["type"] == "urn:ietf:params:acme:error:incorrectResponse"
    # What the fetch read is not echoed to the account holder (redirects may reach internal
    # pages); the detail says where and how much.
    assert "internal-page-text" not in failed["error"]["detail"], failed["error"]
    assert "bytes" in failed["error"]["detail"], failed["error"]
    assert (await c.post(order["url"])).json["status"] == "invalid"


async def test_http01_connection_refused_is_a_connection_error(
    make_client: Callable[..., Any],
) -> None:
    port = free_port()
    c = await make_client(f"http01_port = {port}\n", testing="")
    await c.register()
    _, authz, ch = await _challenge(c, "127.0.0.1", "http-01")
    await c.post(ch["url"], {})
    done = await c.wait_authz(authz["url"], 100)
    err = next(x for x in done["challenges"] if x["type"] == "http-01")["error"]
    assert err["type"].endswith(":connection")
    assert f"connection refused 127.0.0.1:{port}" in err["detail"], err


async def test_challenge_post_answers_the_final_status_when_validation_is_quick(
    make_client: Callable[..., Any], responder: Any
) -> None:
    """Clients that sleep a fixed 5 s after the challenge POST finish at once: a validation
    done within the budget is answered in the POST itself."""
    port, tokens = responder
    c = await make_client(f"http01_port = {port}\n", testing="")
    await c.register()
    _, _, ch = await _challenge(c, "127.0.0.1", "http-01")
    tokens[ch["token"]] = _key_auth(c, ch["token"])
    r = await asyncio.wait_for(c.post(ch["url"], {}), 10)
    assert r.status == 200 and r.json["status"] == "valid", r.body
    assert "validated" in r.json and "Retry-After" not in r.headers


async def test_challenge_post_answers_invalid_with_the_error_when_validation_fails_fast(
    make_client: Callable[..., Any],
) -> None:
    port = free_port()
    c = await make_client(f"http01_port = {port}\n", testing="")
    await c.register()
    _, _, ch = await _challenge(c, "127.0.0.1", "http-01")
    r = await asyncio.wait_for(c.post(ch["url"], {}), 10)
    assert r.json["status"] == "invalid", r.body
    assert r.json["error"]["type"].endswith(":connection")
    assert f"127.0.0.1:{port}" in r.json["error"]["detail"]


async def test_a_slow_validation_is_answered_processing_within_the_budget(
    make_client: Callable[..., Any],
) -> None:
    """A responder that takes 3 s: the POST does not wait for it (processing +
    Retry-After after about half a second), and the validation still completes."""
    tokens: dict[str, str] = {}

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(3)
        return web.Response(text=tokens.get(request.match_info["token"], ""))

    app = web.Application()
    app.router.add_get("/.well-known/acme-challenge/{token}", slow)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        c = await make_client(f"http01_port = {port}\n", testing="")
        await c.register()
        _, authz, ch = await _challenge(c, "127.0.0.1", "http-01")
        tokens[ch["token"]] = _key_auth(c, ch["token"])
        loop = asyncio.get_running_loop()
        started = loop.time()
        r = await asyncio.wait_for(c.post(ch["url"], {}), 10)
        assert loop.time() - started < 2.5
        assert r.json["status"] == "processing" and r.headers["Retry-After"] == "1"
        assert (await c.wait_authz(authz["url"], 120))["status"] == "valid"
    finally:
        await runner.cleanup()


async def test_http01_error_status_is_an_incorrect_response_naming_the_status(
    make_client: Callable[..., Any], responder: Any
) -> None:
    port, _ = responder  # the responder knows no token: 404
    c = await make_client(f"http01_port = {port}\n", testing="")
    await c.register()
    _, authz, ch = await _challenge(c, "127.0.0.1", "http-01")
    await c.post(ch["url"], {})
    done = await c.wait_authz(authz["url"], 100)
    err = next(x for x in done["challenges"] if x["type"] == "http-01")["error"]
    assert err["type"].endswith(":incorrectResponse"), err
    assert "HTTP 404" in err["detail"] and f"127.0.0.1:{port}" in err["detail"]


async def test_tls_alpn01_connection_refused_is_a_connection_error_naming_the_address(
    make_client: Callable[..., Any],
) -> None:
    port = free_port()
    c = await make_client(f"tls_alpn01_port = {port}\n", testing="")
    await c.register()
    _, authz, ch = await _challenge(c, "127.0.0.1", "tls-alpn-01")
    await c.post(ch["url"], {})
    done = await c.wait_authz(authz["url"], 100)
    err = next(x for x in done["challenges"] if x["type"] == "tls-alpn-01")["error"]
    assert err["type"].endswith(":connection"), err
    assert f"connection refused 127.0.0.1:{port}" in err["detail"]


def _alpn_cert(
    ip: str, digest_der: bytes, *, critical: bool = True, extra_san: bool = False
) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address(ip))]
    if extra_san:
        sans.append(x509.DNSName("other.example"))
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(x509.Name([]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName(sans), critical=True)
        .add_extension(
            x509.UnrecognizedExtension(ACME_IDENTIFIER_OID, digest_der), critical=critical
        )
        .sign(key, hashes.SHA256())
    )
    return (
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("good", "valid"),
        ("non-critical", "invalid"),
        ("two-sans", "invalid"),
        ("wrong-alpn", "invalid"),
        ("wrong-digest", "invalid"),
    ],
)
async def test_tls_alpn01(
    make_client: Callable[..., Any], tmp_path: Path, case: str, expected: str
) -> None:
    port = free_port()
    c = await make_client(f"tls_alpn01_port = {port}\n", testing="")
    await c.register()
    _, authz, ch = await _challenge(c, "127.0.0.1", "tls-alpn-01")
    import hashlib

    ka = _key_auth(c, ch["token"]) if case != "wrong-digest" else "nope"
    digest = b"\x04\x20" + hashlib.sha256(ka.encode()).digest()
    cert, key = _alpn_cert(
        "127.0.0.1", digest, critical=case != "non-critical", extra_san=case == "two-sans"
    )
    (tmp_path / "srv").mkdir()
    ctx_alpn = "http/1.1" if case == "wrong-alpn" else "acme-tls/1"
    # the server must listen on the configured port
    (tmp_path / "srv/c.pem").write_bytes(cert)
    (tmp_path / "srv/k.pem").write_bytes(key)
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(tmp_path / "srv/c.pem", tmp_path / "srv/k.pem")
    sctx.set_alpn_protocols([ctx_alpn])

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.read(1)
        except (ConnectionError, ssl.SSLError):
            pass
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port, ssl=sctx)
    try:
        await c.post(ch["url"], {})
        done = await c.wait_authz(authz["url"], 100)
    finally:
        server.close()
    assert done["status"] == expected, done
    if case != "good":
        error = next(x for x in done["challenges"] if x["type"] == "tls-alpn-01")["error"]
        # RFC 8555 §6.7: a certificate that does not meet RFC 8737 §3 is a response that
        # "didn't match the challenge's requirements"; no acme-tls/1 is a TLS failure.
        kind = "tls" if case == "wrong-alpn" else "incorrectResponse"
        assert error["type"].rsplit(":", 1)[1] == kind, error
        assert "127.0.0.1" in error["detail"], error


@pytest.mark.interop
async def test_dns01_through_a_real_dns_server(make_client: Callable[..., Any]) -> None:
    with challtestsrv() as dns:
        c = await make_client(f'dns_resolver = "127.0.0.1:{dns.dns_port}"\n', testing="")
        await c.register()
        _, authz, ch = await _challenge(c, "*.dns.example.test", "dns-01")
        dns.set_txt("_acme-challenge.dns.example.test", dns01_value(_key_auth(c, ch["token"])))
        await c.post(ch["url"], {})
        assert (await c.wait_authz(authz["url"], 100))["status"] == "valid"
        _, authz2, ch2 = await _challenge(c, "nodns.example.test", "dns-01")
        await c.post(ch2["url"], {})
        done = await c.wait_authz(authz2["url"], 100)
        assert done["status"] == "invalid"
        err = next(x for x in done["challenges"] if x["type"] == "dns-01")["error"]
        assert err["type"].endswith(":dns") and "no TXT record" in err["detail"], err
        dns.set_servfail("_acme-challenge.broken.example.test.")
        _, authz3, ch3 = await _challenge(c, "broken.example.test", "dns-01")
        await c.post(ch3["url"], {})
        done = await c.wait_authz(authz3["url"], 100)
        err = next(x for x in done["challenges"] if x["type"] == "dns-01")["error"]
        assert err["type"].endswith(":dns") and "SERVFAIL" in err["detail"], err
        assert f"127.0.0.1:{dns.dns_port}" in err["detail"], err


async def test_a_challenge_left_processing_is_revalidated_by_the_sweeper(
    make_client: Callable[..., Any], responder: Any
) -> None:
    port, tokens = responder
    c = await make_client(f"http01_port = {port}\n", testing="")
    await c.register()
    _, authz, ch = await _challenge(c, "127.0.0.1", "http-01")
    tokens[ch["token"]] = _key_auth(c, ch["token"])
    acme = c.http.app[ACME]
    # As if another instance took the challenge and died: processing, lease expired.
    past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    assert await acme.store.write(acme.repo.start_challenge, ch["url"].rsplit("/", 1)[1], past)
    assert (await c.post(authz["url"])).json["status"] == "pending"
    stop = asyncio.Event()
    task = asyncio.create_task(sweep(acme, stop))
    try:
        assert (await c.wait_authz(authz["url"], 100))["status"] == "valid"
    finally:
        stop.set()
        await task
