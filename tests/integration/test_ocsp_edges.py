"""The OCSP responder's edges (issue #17 item 1): malformed requests are malformedRequest in
an HTTP 200 application/ocsp-response (never a 500); the plain device listener serves /ocsp
beside a TLS main listener; the delegated responder certificate is shared by processes on one
data directory and renewed with a third of its life left, keeping its key; a CA in a PKCS#11
token (SoftHSM2) keeps the responder key in the token too; two gateways on one PostgreSQL see
each other's revocations in their next response; [ocsp] errors name their key."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp

from backends.local_ca.bootstrap import open_ca
from backends.local_ca.ocsp import OCSP_PEM, OCSPResponder, responder_name
from backends.local_ca.settings import KeyAlgorithm, parse_settings
from gateway.config import load_config, parse_config
from gateway.errors import ConfigError
from gateway.model import RevocationReason
from gateway.ports import OCSPSettings
from gateway.server.app import components_of, create_app
from gateway.server.run import bind_main, start_listeners
from tests.helpers import free_port, write_config
from tests.ocsp_helpers import Client, Site, ocsp_config, openssl, start_site
from tests.pg_helpers import scratch_database

MALFORMED = ocsp.OCSPResponseStatus.MALFORMED_REQUEST


def _request_for(cert: x509.Certificate, issuer: x509.Certificate, nonce: bool = False) -> bytes:
    builder = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1())
    if nonce:
        builder = builder.add_extension(x509.OCSPNonce(b"fresh-nonce-1234"), critical=False)
    return builder.build().public_bytes(Encoding.DER)


async def _status(response: Any) -> ocsp.OCSPResponseStatus:
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"] == "application/ocsp-response"
    assert response.headers["Cache-Control"] == "no-store"
    return ocsp.load_der_ocsp_response(await response.read()).response_status


@pytest.fixture
async def site(tmp_path: Path, aiohttp_client: Client) -> Site:
    return await start_site(tmp_path, aiohttp_client)


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/ocsp-request", b""),
        ("application/ocsp-request", b"\x30\x82\xff\xff garbage"),
        ("application/ocsp-request", b"not DER at all"),
        ("application/octet-stream", None),  # a good request, the wrong type
        ("text/plain", None),
    ],
    ids=["empty", "truncated", "garbage", "octet-stream", "text"],
)
async def test_post_malformed_is_malformed_request(
    site: Site, content_type: str, body: bytes | None
) -> None:
    issuing = x509.load_pem_x509_certificate(site.path("issuing.pem").read_bytes())
    cert = await site.issue("m.example.test")
    data = body if body is not None else _request_for(cert, issuing)
    response = await site.client.post("/ocsp", data=data, headers={"Content-Type": content_type})
    assert await _status(response) is MALFORMED


@pytest.mark.parametrize(
    "path", ["/ocsp", "/ocsp/", "/ocsp/%%%", "/ocsp/not*base64", "/ocsp/AAAA", "/ocsp/MAA="]
)
async def test_get_malformed_is_malformed_request(site: Site, path: str) -> None:
    assert await _status(await site.client.get(path)) is MALFORMED


async def test_get_url_safe_alphabet_and_truncated_request(site: Site) -> None:
    issuing = x509.load_pem_x509_certificate(site.path("issuing.pem").read_bytes())
    cert = await site.issue("u.example.test")
    der = _request_for(cert, issuing)
    safe = base64.urlsafe_b64encode(der).decode().rstrip("=")
    response = await site.client.get(f"/ocsp/{safe}")
    parsed = ocsp.load_der_ocsp_response(await response.read())
    assert parsed.certificate_status is ocsp.OCSPCertStatus.GOOD
    truncated = base64.b64encode(der[:-4]).decode()
    assert await _status(await site.client.get(f"/ocsp/{truncated}")) is MALFORMED


async def test_certificate_of_another_ca_is_unauthorized(site: Site, tmp_path: Path) -> None:
    other = tmp_path / "other"
    await openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                  "-nodes", "-keyout", str(other) + ".key", "-out", str(other) + ".pem",
                  "-subj", "/CN=someone else", "-days", "2")  # fmt: skip
    foreign = x509.load_pem_x509_certificate((tmp_path / "other.pem").read_bytes())
    der = _request_for(foreign, foreign)
    response = await site.client.post(
        "/ocsp", data=der, headers={"Content-Type": "application/ocsp-request"}
    )
    assert await _status(response) is ocsp.OCSPResponseStatus.UNAUTHORIZED


async def test_plain_device_listener_serves_ocsp(tmp_path: Path) -> None:
    """Beside a TLS main listener, the plain device listener answers /ocsp (DEVICE_PATHS)."""
    plain = free_port()
    cfg = write_config(tmp_path)
    cfg.write_text(
        cfg.read_text() + f'[server.tls]\nnames = ["localhost"]\n[server.plain]\nport = {plain}\n'
    )
    config = load_config(cfg)
    sockets = bind_main(config, reuse_port=False)
    app = await create_app(config)
    runner = await start_listeners(app, config, sockets, reuse_port=False)
    try:
        chain = await components_of(app).service.ca_chain()
        (tmp_path / "issuing.pem").write_bytes(chain[0].public_bytes(Encoding.PEM))
        (tmp_path / "root.pem").write_bytes(chain[-1].public_bytes(Encoding.PEM))
        out = await openssl(
            "ocsp", "-url", f"http://127.0.0.1:{plain}/ocsp",
            "-issuer", str(tmp_path / "issuing.pem"), "-serial", "0x42",
            "-CAfile", str(tmp_path / "root.pem"),
        )  # fmt: skip
        assert "Response verify OK" in out and "0x42: unknown" in out, out
    finally:
        await runner.cleanup()


# -- the delegated responder certificate ------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.at = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.at


def _responder(tmp: Path, clock: Clock, validity: timedelta = timedelta(hours=3)) -> Any:
    settings = parse_settings("local", {}, str(tmp / "certgate.toml"))
    material = open_ca(settings, tmp / "data", warn=False)
    return OCSPResponder(
        OCSPSettings(delegated=True, signer_validity=validity),
        material.signer,
        material.chain,
        material.keys,
        material.directory,
        KeyAlgorithm.EC_P256,
        responder_name("", "certgate"),
        clock=clock,
    ), material


async def test_responder_certificate_shared_then_renewed_with_the_same_key(tmp_path: Path) -> None:
    clock = Clock()
    first, material = _responder(tmp_path, clock)
    signer = await first.signer()
    assert (material.directory / "ocsp.key.pem").stat().st_mode & 0o777 == 0o600
    assert signer.issued  # this process issued it: the gateway audits it
    second, _ = _responder(tmp_path, clock)
    adopted = await second.signer()
    assert adopted.responder == signer.responder and not adopted.issued  # not issued again
    assert signer.not_after - signer.responder.not_valid_before_utc <= timedelta(hours=4)
    clock.at += timedelta(hours=1, minutes=30)  # more than a third of 3h left: not due
    assert (await first.signer()) is signer
    clock.at += timedelta(minutes=45)  # 45 minutes left: due
    renewed = await first.signer()
    assert renewed.responder.serial_number != signer.responder.serial_number
    assert renewed.responder.public_key() == signer.responder.public_key() and renewed.issued
    on_disk = x509.load_pem_x509_certificate((material.directory / OCSP_PEM).read_bytes())
    assert on_disk == renewed.responder
    first.close()
    second.close()


async def test_responder_key_in_the_pkcs11_token(tmp_path: Path, aiohttp_client: Client) -> None:
    from tests.softhsm_helpers import soft_token

    token = soft_token(tmp_path)
    os.environ.update(token.env)
    try:
        cfg = ocsp_config(tmp_path, "", store="")
        cfg.write_text(cfg.read_text() + token.connector_keys())
        app = await create_app(load_config(cfg))
        client = await aiohttp_client(app)
        site = Site(cfg, tmp_path, app, client)
        await site.write_chain()
        await site.issue("hsm.example.test")
        out = await openssl(
            "ocsp", "-url", site.url, "-issuer", str(site.path("issuing.pem")),
            "-cert", str(site.path("hsm.example.test.pem")), "-CAfile", str(site.path("root.pem")),
            "-respout", str(site.path("r.der")),
        )  # fmt: skip
        assert "Response verify OK" in out and ": good" in out, out
        response = ocsp.load_der_ocsp_response(site.path("r.der").read_bytes())
        assert len(response.certificates) == 1  # delegated, its key in the token
        listed = token.util("--show-slots").stdout  # the token exists
        assert token.label in listed
        data = tmp_path / "data"
        assert not list(data.rglob("*.key.pem")), list(data.rglob("*.key.pem"))
    finally:
        for name in token.env:
            os.environ.pop(name, None)


# -- several instances on one PostgreSQL ---------------------------------------------------------


@pytest.fixture
def pg_url() -> Any:
    yield from scratch_database("certgate_ocsp")


async def test_two_gateways_on_postgresql_see_each_others_revocation(
    tmp_path: Path, aiohttp_client: Client, pg_url: str
) -> None:
    store = f'[store]\nurl = "{pg_url}"\n'
    a = tmp_path / "a"
    a.mkdir()
    cfg_a = ocsp_config(a, store=store)
    app_a = await create_app(load_config(cfg_a))
    site_a = Site(cfg_a, a, app_a, await aiohttp_client(app_a))
    await site_a.write_chain()
    # The second instance shares the database and the CA directory (a copy, as a second host
    # holds it), but keeps its own responder certificate.
    b = tmp_path / "b"
    b.mkdir()
    shutil.copytree(a / "data" / "ca", b / "data" / "ca")
    for name in ("issuing.pem", "root.pem"):
        shutil.copy(a / name, b / name)
    cfg_b = ocsp_config(b, store=store)
    app_b = await create_app(load_config(cfg_b))
    site_b = Site(cfg_b, b, app_b, await aiohttp_client(app_b))
    cert = await site_a.issue("pg.example.test")
    shutil.copy(a / "pg.example.test.pem", b / "pg.example.test.pem")

    async def status(site: Site) -> str:
        return await openssl(
            "ocsp", "-url", site.url, "-issuer", str(site.path("issuing.pem")),
            "-cert", str(site.path("pg.example.test.pem")), "-CAfile", str(site.path("root.pem")),
        )  # fmt: skip

    assert ": good" in await status(site_b)
    serial = format(cert.serial_number, "x")
    await components_of(app_a).service.revoke(serial, RevocationReason.KEY_COMPROMISE, "test")
    out = await status(site_b)
    assert "Response verify OK" in out and ": revoked" in out, out


# -- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "key", "reason"),
    [
        ({"enabled": "yes"}, "ocsp.enabled", "true or false"),
        ({"url": "ftp://x/ocsp"}, "ocsp.url", "http"),
        ({"signer": "delegate"}, "ocsp.signer", "did you mean 'delegated'"),
        ({"response_validity": "10s"}, "ocsp.response_validity", ""),
        ({"response_validity": "3d"}, "ocsp.signer_validity", "three times"),
        ({"cache": True}, "ocsp.cache", ""),
    ],
)
def test_ocsp_configuration_errors_name_the_key(
    tmp_path: Path, table: dict[str, Any], key: str, reason: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"ocsp": table}, "certgate.toml", tmp_path)
    assert caught.value.key_path == key, str(caught.value)
    assert reason in str(caught.value)


def test_ocsp_defaults(tmp_path: Path) -> None:
    bare = parse_config({}, "certgate.toml", tmp_path).ocsp
    assert bare.enabled and bare.aia_url is None and bare.signer == "delegated"
    external = parse_config(
        {"server": {"external_url": "http://pki.example/"}}, "certgate.toml", tmp_path
    ).ocsp
    assert external.aia_url == "http://pki.example/ocsp"
    none = parse_config(
        {"server": {"external_url": "http://pki.example"}, "ocsp": {"url": ""}}, "c.toml", tmp_path
    ).ocsp
    assert none.aia_url is None


def _counter(text: str, series: str) -> float:
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_ocsp_answers_are_counted_in_the_metrics(site: Site) -> None:
    """Counters are per process (other tests count too): compare before and after."""
    await site.issue("metrics.example.test")
    issuing = x509.load_pem_x509_certificate(site.path("issuing.pem").read_bytes())
    cert = x509.load_pem_x509_certificate(site.path("metrics.example.test.pem").read_bytes())
    series = (
        'certgate_ocsp_responses_total{method="POST",status="successful"}',
        'certgate_ocsp_responses_total{method="POST",status="malformedRequest"}',
        'certgate_ocsp_certificate_statuses_total{status="good"}',
    )
    before = await (await site.client.get("/metrics")).text()
    headers = {"Content-Type": "application/ocsp-request"}
    await site.client.post("/ocsp", data=_request_for(cert, issuing), headers=headers)
    await site.client.post("/ocsp", data=b"junk", headers=headers)
    after = await (await site.client.get("/metrics")).text()
    for name in series:
        assert _counter(after, name) - _counter(before, name) == 1.0, name


async def test_get_with_double_slash_and_plus_unescaped_on_the_wire(site: Site) -> None:
    """RFC 5019 §5 clients that leave base64's '/' and '+' unescaped, sent byte for byte (no
    client library normalising the path): '//' inside the request is not a path separator."""
    issuing = x509.load_pem_x509_certificate(site.path("issuing.pem").read_bytes())
    cert = await site.issue("slash.example.test")
    for attempt in range(20000):
        nonce = attempt.to_bytes(4, "big") * 4
        der = (
            ocsp.OCSPRequestBuilder()
            .add_certificate(cert, issuing, hashes.SHA1())
            .add_extension(x509.OCSPNonce(nonce), critical=False)
            .build()
            .public_bytes(Encoding.DER)
        )
        encoded = base64.b64encode(der).decode()
        if "//" in encoded and "+" in encoded:
            break
    else:
        pytest.fail("no request encodes with '//' and '+'")
    reader, writer = await asyncio.open_connection("127.0.0.1", site.client.server.port)
    writer.write(f"GET /ocsp/{encoded} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    head, body = (await reader.read()).split(b"\r\n\r\n", 1)
    writer.close()
    assert head.startswith(b"HTTP/1.1 200"), head
    response = ocsp.load_der_ocsp_response(body)
    assert response.certificate_status is ocsp.OCSPCertStatus.GOOD


async def test_start_up_names_the_responder_certificate(
    tmp_path: Path, aiohttp_client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    """The signer is loaded (or issued) when the app starts, and the log says which."""
    caplog.set_level(logging.INFO, logger="gateway.service.ocsp")
    site = await start_site(tmp_path, aiohttp_client)
    assert (tmp_path / "data" / "ca" / OCSP_PEM).is_file()
    responder = x509.load_pem_x509_certificate((tmp_path / "data" / "ca" / OCSP_PEM).read_bytes())
    logged = [r.getMessage() for r in caplog.records if r.name == "gateway.service.ocsp"]
    assert any(f"serial {responder.serial_number:x}" in m for m in logged), logged
    assert site.app is not None
