"""EST client certificates from issuers a label does not trust (issue #12 item 11), over a real
TLS handshake on the EST listener's own ``SSLContext``, in-process (aiohttp's runner serves the
app built by the real factory; aiohttp's client presents the certificate).

The handshake completes whatever the client certificate's issuer; each label then verifies the
certificate against its own trust anchors (RFC 7030 §3.3.2). An untrusted certificate never
authenticates: a certificate-only label answers 403 naming the label and its anchors; a label
that accepts HTTP Basic ignores the certificate (401 asking for Basic, or Basic if sent). Each
such certificate is logged. Also: every label's /csrattrs ends with a bare OID (libest).
"""

from __future__ import annotations

import base64
import logging
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.config import load_config
from gateway.pkix import pem_chain
from gateway.pkix.der import element_length, header_length
from gateway.plugin import Listener
from gateway.server.app import LISTENERS, components_of, create_app
from protocols.est.routes import EST_CONTEXT
from tests.est_helpers import write_est_config
from tests.helpers import free_port
from tests.pki_helpers import PrivateKey, issue, make_ca, write_cert, write_key
from tests.wstep_helpers import SOAP_HEADERS, rst

BASIC = {"Authorization": "Basic " + base64.b64encode(b"alice:correct horse").decode()}
TIMEOUT = aiohttp.ClientTimeout(total=30)


@dataclass
class Est:
    url: str
    app: web.Application
    server_ca: str
    tmp: Path
    boot: tuple[PrivateKey, x509.Certificate]
    rogue: tuple[PrivateKey, x509.Certificate]
    own_ca: str

    def client_cert(
        self, issuer: tuple[PrivateKey, x509.Certificate], cn: str, **options: Any
    ) -> tuple[Path, Path]:
        key, cert = issue(*issuer, cn, **options)
        return (
            write_cert(self.tmp / f"{cn}.crt", cert),
            write_key(self.tmp / f"{cn}.key", key),
        )

    async def post(
        self,
        path: str,
        cn: str,
        *,
        cert: tuple[Path, Path] | None = None,
        headers: dict[str, str] | None = None,
        tls: ssl.TLSVersion | None = None,
    ) -> tuple[int, str, Any]:
        ctx = ssl.create_default_context(cadata=self.server_ca)
        if tls is not None:
            ctx.minimum_version = ctx.maximum_version = tls
        if cert is not None:
            ctx.load_cert_chain(*cert)
        key = ec.generate_private_key(ec.SECP256R1())
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .sign(key, hashes.SHA256())
        )
        body = base64.b64encode(csr.public_bytes(serialization.Encoding.DER))
        async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
            async with session.post(
                f"{self.url}{path}",
                data=body,
                ssl=ctx,
                headers={"Content-Type": "application/pkcs10", **(headers or {})},
            ) as r:
                return r.status, await r.text(), r.headers

    async def get(self, path: str) -> tuple[int, bytes]:
        ctx = ssl.create_default_context(cadata=self.server_ca)
        async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
            async with session.get(f"{self.url}{path}", ssl=ctx) as r:
                return r.status, await r.read()


@pytest.fixture
async def est(tmp_path: Path) -> AsyncIterator[Est]:
    boot_path, boot_key, boot_cert = make_ca(tmp_path, "manufacturer-ca")
    _, rogue_key, rogue_cert = make_ca(tmp_path, "rogue-ca")
    port = free_port()
    cfg = write_est_config(
        tmp_path,
        est_port=port,
        est=f"""
        [est.labels.bootstrap]
        template = "device"
        auth = ["tls-client-cert"]
        trust_anchors = ["certgate", "{boot_path}"]
        [est.labels.mixed]
        template = "device"
        trust_anchors = ["{boot_path}"]
        [est.labels.pop]
        template = "device"
        require_pop_link = true
        """,
        extra="""
        [wstep]
        enabled = true
        """,
    )
    app = await create_app(load_config(cfg))
    await app[EST_CONTEXT].state.add_user("alice", "correct horse", (), replace=False)
    (listener,) = [item for item in app[LISTENERS] if item.name == "est"]
    assert isinstance(listener, Listener)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", port, ssl_context=listener.ssl_context).start()
        chain = await components_of(app).service.ca_chain()
        yield Est(
            f"https://localhost:{port}/.well-known/est",
            app,
            pem_chain(chain).decode(),
            tmp_path,
            (boot_key, boot_cert),
            (rogue_key, rogue_cert),
            chain[0].subject.rfc4514_string(),
        )
    finally:
        await runner.cleanup()


def _untrusted_logged(caplog: pytest.LogCaptureFixture, label: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "certgate.est" and "rogue-ca" in r.getMessage() and label in r.getMessage()
    ]


async def test_untrusted_issuer_gets_403_naming_the_label_and_its_anchors(
    est: Est, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="certgate.est")
    cert = est.client_cert(est.rogue, "rogue-device")
    status, body, _ = await est.post("/bootstrap/simpleenroll", "rogue-device", cert=cert)
    assert status == 403, body
    assert "bootstrap" in body
    assert "CN=manufacturer-ca" in body
    assert est.own_ca in body  # the label's other anchor: the gateway's own CA
    assert "CN=rogue-ca" in body
    assert _untrusted_logged(caplog, "bootstrap")


async def test_untrusted_certificate_on_a_basic_label_falls_back_to_basic(
    est: Est, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="certgate.est")
    cert = est.client_cert(est.rogue, "factory-7")
    status, body, _ = await est.post("/mixed/simpleenroll", "dev-7", cert=cert, headers=BASIC)
    assert status == 200, body
    (record,) = [
        r
        for r in await components_of(est.app).store.list_requests()
        if r.requester.principal == "alice"
    ]
    assert record.requester.auth_method == "basic"
    assert not any("tls_client" in k for k in record.requester.verified_facts)
    assert _untrusted_logged(caplog, "mixed")


async def test_untrusted_certificate_without_credentials_is_asked_for_basic(
    est: Est,
) -> None:
    cert = est.client_cert(est.rogue, "factory-8")
    status, body, headers = await est.post("/mixed/simpleenroll", "dev-8", cert=cert)
    assert status == 401, body
    assert headers["WWW-Authenticate"].startswith("Basic")
    assert "CN=manufacturer-ca" in body


@pytest.mark.parametrize("tls", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
async def test_a_forged_issuer_name_does_not_authenticate(est: Est, tls: ssl.TLSVersion) -> None:
    """Issuer name of the manufacturer CA, signature of another key; the connection stays
    usable after OpenSSL's failed signature check (its error queue is cleared)."""
    forged = (est.rogue[0], est.boot[1])
    cert = est.client_cert(forged, "forged-device")
    status, body, _ = await est.post("/bootstrap/simpleenroll", "forged", cert=cert, tls=tls)
    assert status == 403, body
    assert "does not verify" in body


async def test_a_trusted_certificate_not_for_client_authentication_is_refused(est: Est) -> None:
    """What OpenSSL's TLS client purpose check refused in the handshake, the label refuses."""
    eku = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH])
    cert = est.client_cert(est.boot, "server-only", extensions=[(eku, False)])
    status, body, _ = await est.post("/bootstrap/simpleenroll", "server-only", cert=cert)
    assert status == 403, body
    assert "client authentication" in body


async def test_a_trusted_manufacturer_certificate_still_authenticates(est: Est) -> None:
    cert = est.client_cert(est.boot, "idevid-9")
    status, body, _ = await est.post("/bootstrap/simpleenroll", "idevid-9", cert=cert)
    assert status == 200, body


async def test_every_label_csrattrs_end_with_a_bare_oid(est: Est) -> None:
    settings = est.app[EST_CONTEXT].settings
    labels = [label.label for label in (settings.default, *settings.labels.values())]
    assert len(labels) == 4
    for label in labels:
        status, body = await est.get(f"/{label}/csrattrs" if label else "/csrattrs")
        assert status == 200, label
        der = base64.b64decode(body)
        tags, offset = [], header_length(der, 0)
        while offset < len(der):
            tags.append(der[offset])
            offset += element_length(der, offset)
        assert tags and tags[-1] == 0x06, (label, tags)  # OBJECT IDENTIFIER


async def test_a_server_certificate_of_this_ca_does_not_authenticate_a_client(est: Est) -> None:
    """The listener's own certificate (template tls-server, EKU serverAuth only): the TLS
    client purpose check OpenSSL made in the handshake is made by the label and by
    /simplereenroll (RFC 7030 §3.3.2)."""
    server_cert = (est.tmp / "data" / "est" / "server.pem", est.tmp / "data" / "est" / "server.key")
    status, body, _ = await est.post("/bootstrap/simpleenroll", "localhost", cert=server_cert)
    assert status == 403 and "client authentication" in body, body
    status, body, _ = await est.post("/simplereenroll", "localhost", cert=server_cert)
    assert status == 403 and "client authentication" in body, body


async def test_the_est_listener_serves_only_est(est: Est) -> None:
    """The EST listener takes any client certificate in the handshake, and only EST judges it:
    other front-ends' routes (here MS-WSTEP CES, which maps any certificate its own TLS
    listener accepted to a principal) and the gateway's own are not served there."""
    cert = est.client_cert(est.rogue, "cross-protocol")
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cross-protocol")]))
        .sign(key, hashes.SHA256())
    )
    envelope = rst(csr.public_bytes(serialization.Encoding.DER), template="device", username=None)
    ctx = ssl.create_default_context(cadata=est.server_ca)
    ctx.load_cert_chain(*cert)
    base = est.url.removesuffix("/.well-known/est")
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        async with session.post(
            f"{base}/wstep/CES", data=envelope, ssl=ctx, headers=SOAP_HEADERS
        ) as r:
            assert r.status == 404, await r.text()
        async with session.get(f"{base}/ca/chain.pem", ssl=ctx) as r:
            assert r.status == 404
        async with session.get(f"{base}/.well-known/est/cacerts", ssl=ctx) as r:
            assert r.status == 200
    requests = await components_of(est.app).store.list_requests()
    assert not [r for r in requests if r.requester.principal.startswith("cert:")]
