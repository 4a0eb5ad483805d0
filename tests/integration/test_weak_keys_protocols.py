"""Known-weak keys (issue #12 item 2, CA/B Forum BR §6.1.1.3) are refused over SCEP, EST and
ACME with each protocol's own error naming rule key-weak and the weakness, nothing is issued,
and the refusal is recorded with its audit event.

In-process: the real app factory with aiohttp's test client and the existing protocol helpers.
The weak keys (tests/weak_keys.py) are generated once per test session.
"""

# ruff: noqa: F811  (pytest fixtures imported from tests.acme_fixtures)

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from gateway.config import load_config
from gateway.model import RequestState
from gateway.pkix import cms
from gateway.server.app import components_of, create_app
from gateway.store import SQLStore
from protocols.est.routes import EST_CONTEXT
from protocols.scep.messages import FailInfo, PKIStatus
from tests import scep_client as sc
from tests import weak_keys
from tests.acme_fixtures import client, make_client  # noqa: F401
from tests.acme_helpers import Client
from tests.est_helpers import write_est_config
from tests.helpers import free_port
from tests.scep_helpers import DEFAULT_ENDPOINTS, STATIC_PASSWORD, scep_config

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

#: Seconds each protocol's test may take (the keys are generated before the clock starts).
BOUND = 60

AiohttpClient = Callable[[Any], Awaitable[Any]]

#: Each weak key with the words its denial must contain.
WEAK: dict[str, tuple[Callable[[], rsa.RSAPrivateKey], str]] = {
    "exponent-3": (weak_keys.small_exponent_key, "RSA public exponent 3 is below 65537"),
    "fermat": (weak_keys.fermat_key, "modulus factorable by Fermat's method"),
    "roca": (weak_keys.roca_key, "ROCA-vulnerable modulus"),
}


def _generated() -> list[tuple[str, tuple[Callable[[], rsa.RSAPrivateKey], str]]]:
    """WEAK's items, each key generated (once per session) before a test's clock starts."""
    for make, _ in WEAK.values():
        make()
    return list(WEAK.items())


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


async def assert_refusal_recorded(store: SQLStore, protocol: str, reason: str) -> None:
    """One denied request of ``protocol`` names rule key-weak and ``reason``, has its
    request.denied audit event, and no certificate exists."""
    denied = [
        r
        for r in await store.list_requests()
        if r.protocol == protocol
        and r.denial_rule == "key-weak"
        and reason in (r.denial_detail or "")
    ]
    assert len(denied) == 1 and denied[0].state is RequestState.DENIED, denied
    events = [e.event for e in await store.audit_events(denied[0].id)]
    assert "request.denied" in events, events
    assert all(c.request_id != denied[0].id for c in await store.list_certificates())


# --- SCEP (RFC 8894 §3.3.2.2: CertRep FAILURE with failInfo badRequest) ----------------------


async def test_scep_refuses_weak_keys_with_failure_badrequest(
    tmp_path: Path, aiohttp_client: AiohttpClient
) -> None:
    app = await create_app(load_config(scep_config(tmp_path, DEFAULT_ENDPOINTS)))
    http = await aiohttp_client(app)
    r = await http.get("/scep/devices?operation=GetCACert")
    assert r.status == 200
    certs, _ = cms.read_certs_only(await r.read())
    ra = next(c for c in certs if not _is_ca(c))
    weak = _generated()
    async with asyncio.timeout(BOUND):
        for kind, (make, reason) in weak:
            c = sc.Client(ra, key=make())
            csr = sc.make_csr(c.key, f"weak-{kind}", challenge=STATIC_PASSWORD)
            body = c.pkcs_req(csr, transaction_id=f"weak-{kind}")
            r = await http.post(
                "/scep/devices/pkiclient.exe?operation=PKIOperation",
                data=body,
                headers={"Content-Type": "application/x-pki-message"},
            )
            assert r.status == 200
            rep = c.read(await r.read())
            assert (rep.status, rep.fail_info) == (PKIStatus.FAILURE, FailInfo.BAD_REQUEST), kind
            assert rep.certificates == ()
            assert rep.fail_text is not None and rep.fail_text.startswith("key-weak: "), (
                rep.fail_text
            )
            assert reason in rep.fail_text
            await assert_refusal_recorded(components_of(app).store, "scep", reason)


# --- EST (RFC 7030 §4.2.3: a 4xx with a text reason; a bad CSR is 400) -----------------------

EST_AUTH = {"Authorization": "Basic " + base64.b64encode(b"alice:correct horse").decode()}


def _est_csr(key: rsa.RSAPrivateKey, cn: str) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.DER)


async def test_est_refuses_weak_keys_with_400_naming_the_rule(
    tmp_path: Path, aiohttp_client: AiohttpClient
) -> None:
    cfg = write_est_config(
        tmp_path, est_port=free_port(), est='trusted_proxies = ["127.0.0.1/32"]\n'
    )
    app = await create_app(load_config(cfg))
    await app[EST_CONTEXT].state.add_user("alice", "correct horse", (), replace=False)
    http = await aiohttp_client(app)
    weak = _generated()
    async with asyncio.timeout(BOUND):
        for kind, (make, reason) in weak:
            r = await http.post(
                "/.well-known/est/simpleenroll",
                data=base64.b64encode(_est_csr(make(), f"weak-{kind}")),
                headers={"Content-Type": "application/pkcs10", **EST_AUTH},
            )
            text = await r.text()
            assert r.status == 400, (kind, r.status, text)
            assert r.content_type == "text/plain"
            assert text.startswith("bad CSR: key-weak: ") and reason in text, text
            await assert_refusal_recorded(components_of(app).store, "est", reason)


# --- ACME (RFC 8555 §7.4: badCSR, the order stays ready) --------------------------------------


async def test_acme_finalize_with_weak_key_is_bad_csr_and_the_order_stays_ready(
    client: Client,
) -> None:
    store = components_of(client.http.app).store
    weak = _generated()
    async with asyncio.timeout(BOUND):
        for kind, (make, reason) in weak:
            name = f"weak-{kind}.example.com"
            order = await client.new_order(name)
            assert order.status == 201, order.body
            authz = (await client.post(order.json["authorizations"][0])).json
            await client.post(authz["challenges"][0]["url"], {})
            r = await client.finalize(order.json, key=make(), dns=(name,))
            assert (r.status, r.problem) == (400, "badCSR"), r.body
            assert r.json["detail"].startswith("key-weak: ") and reason in r.json["detail"]
            assert (await client.post(order.headers["Location"])).json["status"] == "ready"
            await assert_refusal_recorded(store, "acme", reason)
