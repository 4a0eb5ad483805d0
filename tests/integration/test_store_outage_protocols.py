"""Issue #12 item 4: the gateway's own database outage gives each protocol's retryable answer,
never a 500 storm and never a permanent refusal. The outage: the SQLite database deleted under
the running gateway (item 3), through the real app factory and aiohttp's test client.

* EST: 503 + Retry-After (RFC 7030 §4.2.3's retry semantics).
* ACME: serverInternal + Retry-After; newNonce still answers (an unrecorded nonce, never
  accepted, so replay protection is intact).
* SCEP: HTTP 503 + Retry-After, not a CertRep FAILURE (final for a SCEP client).
* CES: a Receiver SOAP fault with RPC_S_SERVER_UNAVAILABLE (the "CA offline, retry" HRESULT
  Windows autoenrollment retries), not InvalidRequest.
* /readyz: 503.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.codecs.ms import hresults as hr
from gateway.codecs.ms.wstrust import EnrollmentFault, parse_reply
from gateway.config import load_config
from gateway.pkix import cms
from gateway.server.app import components_of, create_app
from protocols.est.routes import EST_CONTEXT
from protocols.wstep.users import Account, add_account, hash_password
from tests import scep_client as sc
from tests.acme_fixtures import client, make_client  # noqa: F401
from tests.acme_helpers import Client as AcmeClient
from tests.est_helpers import write_est_config
from tests.helpers import free_port, make_csr, write_config
from tests.scep_helpers import DEFAULT_ENDPOINTS, STATIC_PASSWORD, scep_config
from tests.wstep_helpers import PASSWORD, SOAP_HEADERS, rst

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
Http = Callable[[Any], Awaitable[Any]]


@pytest.fixture(autouse=True)
def _no_traceback_logged(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """An outage is one log line from the store, not a traceback per request."""
    caplog.set_level(logging.INFO)
    yield
    assert not [r.getMessage() for r in caplog.records if r.exc_info]


def delete_database(data_dir: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        (data_dir / f"certgate.db{suffix}").unlink(missing_ok=True)


async def assert_not_ready(http: Any) -> None:
    r = await http.get("/readyz")
    assert r.status == 503
    assert (await r.json())["checks"]["store"] == "failed: the gateway's database is unavailable"


def csr_der(cn: str) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.DER)


async def test_est_answers_503_with_retry_after(
    tmp_path: Path, aiohttp_client: Http, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    cfg = write_est_config(
        tmp_path, est_port=free_port(), est='trusted_proxies = ["127.0.0.1/32"]\n'
    )
    app = await create_app(load_config(cfg))
    await app[EST_CONTEXT].state.add_user("alice", "correct horse", (), replace=False)
    http = await aiohttp_client(app)
    auth = "Basic " + base64.b64encode(b"alice:correct horse").decode()
    headers = {"Content-Type": "application/pkcs10", "Authorization": auth}
    r = await http.post(
        "/.well-known/est/simpleenroll", data=base64.b64encode(csr_der("before")), headers=headers
    )
    assert r.status == 200, await r.text()
    delete_database(tmp_path / "data")
    for cn in ("during-1", "during-2"):
        r = await http.post(
            "/.well-known/est/simpleenroll", data=base64.b64encode(csr_der(cn)), headers=headers
        )
        assert r.status == 503, await r.text()
        assert int(r.headers["Retry-After"]) > 0
        assert r.content_type == "text/plain"
    await assert_not_ready(http)
    await asyncio.sleep(2.5)  # the pending poller (interval 1 s) meets the outage too
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "deleted" in errors[0].getMessage(), errors
    assert not [r for r in caplog.records if r.exc_info]


async def test_acme_answers_server_internal_with_retry_after_and_new_nonce_still_answers(
    client: AcmeClient,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    nonce = await client.nonce()
    delete_database(_data_dir(client))
    r = await client.new_order("outage.example")
    assert r.status == 503 and r.problem == "serverInternal", r.body
    assert int(r.headers["Retry-After"]) > 0
    for method in ("HEAD", "GET"):
        reply = await client.http.request(method, client.path(client.directory["newNonce"]))
        assert reply.status == (200 if method == "HEAD" else 204)
        fresh = reply.headers["Replay-Nonce"]
        assert fresh and fresh != nonce
    # The outage nonce is never accepted: still serverInternal, not a success.
    r = await client.post(client.directory["newOrder"], {"identifiers": []}, nonce=fresh)
    assert r.status == 503 and r.problem == "serverInternal"
    await assert_not_ready(client.http)
    # One clear line for the outage, no traceback per request.
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "deleted" in errors[0].getMessage(), errors
    assert not [r for r in caplog.records if r.exc_info]


def _data_dir(acme: AcmeClient) -> Path:
    return components_of(acme.http.app).config.data_dir


async def test_scep_answers_http_503_not_a_certrep_failure(
    tmp_path: Path, aiohttp_client: Http
) -> None:
    app = await create_app(load_config(scep_config(tmp_path, DEFAULT_ENDPOINTS)))
    http = await aiohttp_client(app)
    r = await http.get("/scep/devices?operation=GetCACert")
    certs, _ = cms.read_certs_only(await r.read())
    ra = next(c for c in certs if not _is_ca(c))
    c = sc.Client(ra)
    delete_database(tmp_path / "data")
    csr = sc.make_csr(c.key, "device-outage", challenge=STATIC_PASSWORD)
    r = await http.post(
        "/scep/devices/pkiclient.exe?operation=PKIOperation",
        data=c.pkcs_req(csr, transaction_id="txn-outage"),
        headers={"Content-Type": "application/x-pki-message"},
    )
    assert r.status == 503, await r.read()
    assert int(r.headers["Retry-After"]) > 0
    assert r.content_type != "application/x-pki-message"
    await assert_not_ready(http)


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


async def test_ces_answers_a_retryable_fault(tmp_path: Path, aiohttp_client: Http) -> None:
    cfg = write_config(tmp_path, "\n[wstep]\nenabled = true\n")
    app = await create_app(load_config(cfg))
    http = await aiohttp_client(app)
    account = Account("alice", "alice", (), hash_password(PASSWORD))
    await components_of(app).store.write(add_account, account, datetime.now(UTC))
    delete_database(tmp_path / "data")
    csr = make_csr(cn="a.example", dns=("a.example",))
    body = rst(csr.public_bytes(serialization.Encoding.DER))
    r = await http.post("/wstep/CES", data=body, headers=SOAP_HEADERS)
    reply = parse_reply(await r.read())
    assert isinstance(reply, EnrollmentFault), reply
    assert reply.code == "Receiver" and not reply.invalid_request
    assert reply.hresult == hr.code("RPC_S_SERVER_UNAVAILABLE")
    await assert_not_ready(http)
