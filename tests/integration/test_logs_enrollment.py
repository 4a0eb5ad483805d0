"""Log lines of enrollments (issue #15 item 5), in-process on the real app factory: one
``certificate issued`` line per issuance from the service, whichever protocol asked (EST and
SCEP here), that parses as JSON with its fields; protocol refusals (EST 401, SCEP failInfo)
logged with their reason; and no password, challenge or private key in any line, at DEBUG, in
either format."""

from __future__ import annotations

import base64
import json
import logging
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

from gateway.config import load_config
from gateway.model import serial_hex
from gateway.observability.logs import JsonFormatter, TextFormatter
from gateway.pkix import cms
from gateway.server.app import components_of, create_app
from protocols.est.routes import EST_CONTEXT
from protocols.scep.messages import PKIStatus
from tests import scep_client as sc
from tests.est_helpers import write_est_config
from tests.helpers import free_port
from tests.scep_helpers import DEFAULT_ENDPOINTS, STATIC_PASSWORD, scep_config

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
Client = Callable[[Any], Awaitable[Any]]
PASSWORD = "correct horse battery staple"
WRONG_PASSWORD = "Tr0ub4dor&3"
WRONG_CHALLENGE = "not-the-static-secret-456"


def basic(password: str) -> dict[str, str]:
    token = base64.b64encode(f"alice:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def csr_der(cn: str) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.DER)


async def est_app(tmp: Path, aiohttp_client: Client) -> tuple[Any, Any]:
    tmp.mkdir()
    cfg = write_est_config(tmp, est_port=free_port(), est='trusted_proxies = ["127.0.0.1/32"]\n')
    app = await create_app(load_config(cfg))
    await app[EST_CONTEXT].state.add_user("alice", PASSWORD, (), replace=False)
    return app, await aiohttp_client(app)


async def est_post(client: Any, operation: str, der: bytes, password: str) -> Any:
    return await client.post(
        f"/.well-known/est/{operation}",
        data=base64.b64encode(der),
        headers={"Content-Type": "application/pkcs10", **basic(password)},
    )


async def scep_app(tmp: Path, aiohttp_client: Client) -> tuple[Any, Any, x509.Certificate]:
    tmp.mkdir()
    app = await create_app(load_config(scep_config(tmp, DEFAULT_ENDPOINTS)))
    client = await aiohttp_client(app)
    body = await (await client.get("/scep/devices?operation=GetCACert")).read()
    return app, client, cms.read_certs_only(body)[0][0]


async def scep_enroll(client: Any, ra: x509.Certificate, cn: str, challenge: str) -> Any:
    c = sc.Client(ra)
    message = c.pkcs_req(sc.make_csr(c.key, cn, challenge=challenge))
    r = await client.post("/scep/devices?operation=PKIOperation", data=message)
    assert r.status == 200
    return c.read(await r.read())


def issued_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    formatter = JsonFormatter()
    return [
        json.loads(formatter.format(r))
        for r in caplog.records
        if r.name == "certgate.enrollment" and r.getMessage() == "certificate issued"
    ]


async def test_each_protocol_logs_one_issued_line_that_parses_as_json(
    tmp_path: Path, aiohttp_client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    est, est_client = await est_app(tmp_path / "est", aiohttp_client)
    scep, scep_client, ra = await scep_app(tmp_path / "scep", aiohttp_client)
    with caplog.at_level(logging.INFO):
        r = await est_post(est_client, "simpleenroll", csr_der("est-device-1"), PASSWORD)
        assert r.status == 200, await r.text()
        est_cert = pkcs7.load_der_pkcs7_certificates(base64.b64decode(await r.read()))[0]
        rep = await scep_enroll(scep_client, ra, "scep-device-1", STATIC_PASSWORD)
        assert rep.status == PKIStatus.SUCCESS, rep.fail_text
    lines = issued_lines(caplog)
    assert [line["protocol"] for line in lines] == ["est", "scep"]
    for line, app, cn in ((lines[0], est, "est-device-1"), (lines[1], scep, "scep-device-1")):
        assert line["level"] == "INFO" and line["logger"] == "certgate.enrollment"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["timestamp"])
        assert line["subject"] == f"CN={cn}"
        stored = await components_of(app).store.get_request(line["request_id"])
        assert stored is not None and stored.protocol == line["protocol"]
        assert line["serial"] == stored.certificate_serial
        assert line["template"] == stored.template
        assert line["requester"] == stored.requester.principal
    assert lines[0]["serial"] == serial_hex(est_cert.serial_number)
    assert lines[0]["requester"] == "alice"


async def test_a_repeated_transaction_logs_no_second_issuance(
    tmp_path: Path, aiohttp_client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    _, client, ra = await scep_app(tmp_path / "scep", aiohttp_client)
    c = sc.Client(ra)
    message = c.pkcs_req(sc.make_csr(c.key, "again", challenge=STATIC_PASSWORD))
    with caplog.at_level(logging.INFO):
        for _ in range(2):
            r = await client.post("/scep/devices?operation=PKIOperation", data=message)
            assert c.read(await r.read()).status == PKIStatus.SUCCESS
    assert len(issued_lines(caplog)) == 1


async def test_refusals_are_logged_with_their_reason(
    tmp_path: Path, aiohttp_client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    _, est_client = await est_app(tmp_path / "est", aiohttp_client)
    _, scep_client, ra = await scep_app(tmp_path / "scep", aiohttp_client)
    with caplog.at_level(logging.INFO):
        r = await est_post(est_client, "simpleenroll", csr_der("x"), WRONG_PASSWORD)
        assert r.status == 401
        told = (await r.text()).strip()
        rep = await scep_enroll(scep_client, ra, "y", WRONG_CHALLENGE)
        assert rep.status == PKIStatus.FAILURE
    refusals = {
        r.name: r.certgate_fields  # type: ignore[attr-defined]
        for r in caplog.records
        if r.name in ("certgate.est", "certgate.scep") and hasattr(r, "certgate_fields")
    }
    assert refusals["certgate.est"]["code"] == "401"
    assert refusals["certgate.est"]["reason"] == told  # what the client was told
    assert refusals["certgate.scep"]["code"] == "BAD_REQUEST"
    assert refusals["certgate.scep"]["reason"] == rep.fail_text


async def test_secrets_never_reach_the_logs(
    tmp_path: Path, aiohttp_client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    """Passwords (right and wrong), SCEP challenges (right and wrong) and a server-generated
    private key, through every path that logs: issuance, refusal, protocol refusal."""
    _, est_client = await est_app(tmp_path / "est", aiohttp_client)
    _, scep_client, ra = await scep_app(tmp_path / "scep", aiohttp_client)
    with caplog.at_level(logging.DEBUG):
        assert (await est_post(est_client, "simpleenroll", csr_der("a"), PASSWORD)).status == 200
        assert (await est_post(est_client, "simpleenroll", csr_der("b"), WRONG_PASSWORD)).status
        keygen = await est_post(est_client, "serverkeygen", csr_der("c"), PASSWORD)
        assert keygen.status == 200, await keygen.text()
        ok = await scep_enroll(scep_client, ra, "d", STATIC_PASSWORD)
        bad = await scep_enroll(scep_client, ra, "e", WRONG_CHALLENGE)
        assert (ok.status, bad.status) == (PKIStatus.SUCCESS, PKIStatus.FAILURE)
    body = (await keygen.read()).decode()
    key_part = body.split("application/pkcs8", 1)[1].split("--", 1)[0]
    key_b64 = "".join(line.strip() for line in key_part.splitlines()[3:] if line.strip())
    assert len(key_b64) > 100  # the PKCS#8 key the client received
    secrets = {
        PASSWORD,
        WRONG_PASSWORD,
        basic(PASSWORD)["Authorization"].split()[1],
        basic(WRONG_PASSWORD)["Authorization"].split()[1],
        STATIC_PASSWORD,
        WRONG_CHALLENGE,
        key_b64[:40],
        key_b64[-40:],
    }
    assert issued_lines(caplog) and len(caplog.records) > 5
    rendered = [
        f(r) for r in caplog.records for f in (JsonFormatter().format, TextFormatter().format)
    ]
    for secret in secrets:
        leaks = [line for line in rendered if secret in line]
        assert not leaks, (secret, leaks[:1])


async def test_the_access_line_carries_its_fields(
    tmp_path: Path, aiohttp_client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = write_est_config(tmp_path, est_port=free_port())
    cfg.write_text(cfg.read_text().replace("access_log = false", "access_log = true"))
    client = await aiohttp_client(await create_app(load_config(cfg)))
    with caplog.at_level(logging.INFO, logger="certgate.access"):
        r = await client.get("/healthz?probe=1")
    access = [r for r in caplog.records if r.name == "certgate.access"]
    assert len(access) == 1
    line = json.loads(JsonFormatter().format(access[0]))
    assert line["message"] == "request"
    assert (line["method"], line["path"], line["status"]) == ("GET", "/healthz?probe=1", 200)
    assert line["request_id"] == r.headers["X-Request-ID"]
    assert line["peer"] == "127.0.0.1" and line["duration_ms"] >= 0
