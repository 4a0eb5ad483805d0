"""The OCSP responder (issue #17 item 1) against the real ``openssl ocsp``: good, revoked after
``certgate certs revoke``, unknown for a serial never issued; the response verified by OpenSSL
with its delegated responder certificate (id-kp-OCSPSigning, id-pkix-ocsp-nocheck); nonces
echoed; GET as RFC 5019 §5 spells it (also via curl) with its caching headers; the AIA OCSP
URL in issued certificates. The gateway runs in-process under aiohttp's test server (a real
loopback port), the CLI in-process (tests.helpers.certgate)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import shutil
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from aiohttp.test_utils import TestServer, unused_port
from cryptography import x509
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID

from gateway.config import load_config
from gateway.server.app import create_app
from tests.helpers import certgate
from tests.ocsp_helpers import SITE, Client, Site, ocsp_config, openssl, start_site

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


@pytest.fixture
async def site(tmp_path: Path, aiohttp_client: Client) -> AsyncIterator[Site]:
    yield await start_site(tmp_path, aiohttp_client)


async def ask(site: Site, name: str, *extra: str) -> str:
    """``openssl ocsp`` about ``<name>.pem``, verifying against the root (-CAfile)."""
    return await openssl(
        "ocsp",
        "-url", site.url,
        "-issuer", str(site.path("issuing.pem")),
        "-cert", str(site.path(f"{name}.pem")),
        "-CAfile", str(site.path("root.pem")),
        *extra,
    )  # fmt: skip


async def test_good_then_revoked_after_cli_revoke(site: Site) -> None:
    cert = await site.issue("www.example.test")
    out = await ask(site, "www.example.test")
    assert "Response verify OK" in out, out
    assert f"{site.path('www.example.test.pem')}: good" in out, out
    serial = format(cert.serial_number, "x")
    certgate(
        "certs", "revoke", serial, "--reason", "key-compromise", "-c", str(site.cfg), check=True
    )
    out = await ask(site, "www.example.test")
    assert "Response verify OK" in out, out
    assert ": revoked" in out, out
    assert "Reason: keyCompromise" in out, out
    assert "Revocation Time:" in out, out


async def test_serial_never_issued_is_unknown(site: Site) -> None:
    out = await openssl(
        "ocsp",
        "-url", site.url,
        "-issuer", str(site.path("issuing.pem")),
        "-serial", "0x1234567890abcdef",
        "-CAfile", str(site.path("root.pem")),
    )  # fmt: skip
    assert "Response verify OK" in out, out
    assert "0x1234567890abcdef: unknown" in out, out


async def test_delegated_responder_certificate(site: Site) -> None:
    await site.issue("a.example.test")
    out = await ask(site, "a.example.test", "-resp_text", "-respout", str(site.path("r.der")))
    assert "Response verify OK" in out, out
    response = ocsp.load_der_ocsp_response(site.path("r.der").read_bytes())
    assert response.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
    (responder,) = response.certificates
    issuing = x509.load_pem_x509_certificate(site.path("issuing.pem").read_bytes())
    responder.verify_directly_issued_by(issuing)
    eku = responder.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.OCSP_SIGNING]
    assert responder.extensions.get_extension_for_class(x509.OCSPNoCheck)
    assert not responder.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert (
        response.responder_key_hash
        == x509.SubjectKeyIdentifier.from_public_key(responder.public_key()).digest
    )
    # RFC 5019 §2.2.4: thisUpdate, nextUpdate, producedAt; an hour by default
    assert response.next_update_utc - response.this_update_utc == timedelta(hours=1)
    assert response.next_update_utc <= responder.not_valid_after_utc
    # Its issuance is in the audit trail, once (every issuance is an audit event).
    listed = certgate(
        "audit", "list", "--type", "ocsp.responder.issued", "--json", "-c", str(site.cfg),
        check=True,
    ).stdout  # fmt: skip
    (event,) = json.loads(listed)
    assert event["serial"] == format(responder.serial_number, "x")
    assert event["detail"]["subject"] == responder.subject.rfc4514_string()


async def test_nonce_is_echoed(site: Site) -> None:
    await site.issue("n.example.test")
    out = await ask(site, "n.example.test", "-reqout", str(site.path("q.der")),
                    "-respout", str(site.path("r.der")))  # fmt: skip
    assert "Response verify OK" in out and "WARNING" not in out, out
    request = ocsp.load_der_ocsp_request(site.path("q.der").read_bytes())
    response = ocsp.load_der_ocsp_response(site.path("r.der").read_bytes())
    sent = request.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
    echoed = response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
    assert sent == echoed
    out = await ask(site, "n.example.test", "-no_nonce", "-respout", str(site.path("r2.der")))
    assert "Response verify OK" in out, out
    plain = ocsp.load_der_ocsp_response(site.path("r2.der").read_bytes())
    with pytest.raises(x509.ExtensionNotFound):
        plain.extensions.get_extension_for_class(x509.OCSPNonce)


async def test_get_with_unescaped_base64_and_caching_headers(site: Site) -> None:
    await site.issue("g.example.test")
    await ask(site, "g.example.test", "-no_nonce", "-reqout", str(site.path("q.der")))
    der = site.path("q.der").read_bytes()
    b64 = base64.b64encode(der).decode()
    for path in (f"/ocsp/{b64}", f"/ocsp/{quote(b64, safe='')}"):
        response = await site.client.get(path)
        body = await response.read()
        assert response.status == 200
        assert response.headers["Content-Type"] == "application/ocsp-response"
        parsed = ocsp.load_der_ocsp_response(body)
        assert parsed.certificate_status is ocsp.OCSPCertStatus.GOOD
        assert response.headers["ETag"] == f'"{hashlib.sha1(body).hexdigest()}"'
        cache = response.headers["Cache-Control"]
        assert "max-age=3600" in cache and "public" in cache, cache
        assert response.headers["Last-Modified"] and response.headers["Expires"]
    post = await site.client.post(
        "/ocsp", data=der, headers={"Content-Type": "application/ocsp-request"}
    )
    assert post.status == 200 and post.headers["Cache-Control"] == "no-store"


async def test_get_with_nonce_is_not_cacheable(site: Site) -> None:
    await site.issue("h.example.test")
    await ask(site, "h.example.test", "-reqout", str(site.path("q.der")))
    b64 = base64.b64encode(site.path("q.der").read_bytes()).decode()
    response = await site.client.get(f"/ocsp/{b64}")
    assert response.status == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert "ETag" not in response.headers


async def test_curl_get_as_rfc5019_clients_send_it(site: Site) -> None:
    if shutil.which("curl") is None:
        pytest.skip("needs curl")
    await site.issue("c.example.test")
    await ask(site, "c.example.test", "-no_nonce", "-reqout", str(site.path("q.der")))
    b64 = quote(base64.b64encode(site.path("q.der").read_bytes()).decode(), safe="")
    proc = await asyncio.create_subprocess_exec(
        "curl", "-sS", "-o", str(site.path("r.der")), "-D", "-", f"{site.url}/{b64}",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    headers, _ = await proc.communicate()
    assert proc.returncode == 0
    assert b"application/ocsp-response" in headers
    out = await openssl(
        "ocsp",
        "-respin", str(site.path("r.der")),
        "-issuer", str(site.path("issuing.pem")),
        "-cert", str(site.path("c.example.test.pem")),
        "-CAfile", str(site.path("root.pem")),
    )  # fmt: skip
    assert "Response verify OK" in out and ": good" in out, out


async def test_several_cert_ids_are_all_answered(site: Site) -> None:
    for name in ("m1.example.test", "m2.example.test"):
        await site.issue(name)
    out = await openssl(
        "ocsp",
        "-url", site.url,
        "-issuer", str(site.path("issuing.pem")),
        "-cert", str(site.path("m1.example.test.pem")),
        "-cert", str(site.path("m2.example.test.pem")),
        "-serial", "0x77",
        "-CAfile", str(site.path("root.pem")),
    )  # fmt: skip
    assert "Response verify OK" in out, out
    assert "m1.example.test.pem: good" in out and "m2.example.test.pem: good" in out, out
    assert "0x77: unknown" in out, out


async def test_aia_ocsp_url_in_issued_certificates(site: Site) -> None:
    cert = await site.issue("aia.example.test")
    aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    ocsp_urls = [
        d.access_location.value
        for d in aia
        if d.access_method == AuthorityInformationAccessOID.OCSP
    ]
    assert ocsp_urls == [f"{SITE}/ocsp"]


async def test_openssl_uses_the_aia_url(tmp_path: Path, aiohttp_client: Client) -> None:
    """``url`` names the responder; openssl finds it in the certificate (no -url)."""
    port = unused_port()
    extra = f'[ocsp]\nurl = "http://127.0.0.1:{port}/ocsp"\n'
    cfg = ocsp_config(tmp_path, extra)
    app = await create_app(load_config(cfg))
    server = TestServer(app, host="127.0.0.1", port=port)
    client = await aiohttp_client(server)
    site = Site(cfg, tmp_path, app, client)
    await site.write_chain()
    await site.issue("x.example.test")
    uri = await openssl("x509", "-noout", "-ocsp_uri", "-in", str(site.path("x.example.test.pem")))
    assert uri.strip() == f"http://127.0.0.1:{port}/ocsp"
    # openssl ocsp needs -url; a relying party takes it from the certificate, as here.
    out = await openssl(
        "ocsp",
        "-url", uri.strip(),
        "-issuer", str(site.path("issuing.pem")),
        "-cert", str(site.path("x.example.test.pem")),
        "-CAfile", str(site.path("root.pem")),
    )  # fmt: skip
    assert "Response verify OK" in out and ": good" in out, out


async def test_signer_ca_signs_with_the_issuing_ca(tmp_path: Path, aiohttp_client: Client) -> None:
    site = await start_site(tmp_path, aiohttp_client, '[ocsp]\nsigner = "ca"\n')
    await site.issue("ca.example.test")
    out = await ask(site, "ca.example.test", "-respout", str(site.path("r.der")))
    assert "Response verify OK" in out and ": good" in out, out
    response = ocsp.load_der_ocsp_response(site.path("r.der").read_bytes())
    assert response.certificates == []
    issuing = x509.load_pem_x509_certificate(site.path("issuing.pem").read_bytes())
    assert (
        response.responder_key_hash
        == x509.SubjectKeyIdentifier.from_public_key(issuing.public_key()).digest
    )


async def test_switched_off_is_a_404_saying_how(tmp_path: Path, aiohttp_client: Client) -> None:
    site = await start_site(tmp_path, aiohttp_client, "[ocsp]\nenabled = false\n")
    response = await site.client.post("/ocsp", data=b"x")
    assert response.status == 404
    assert "[ocsp] enabled = true" in await response.text()
    cert = await site.issue("off.example.test")
    aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    assert all(d.access_method != AuthorityInformationAccessOID.OCSP for d in aia)


async def test_sha256_cert_id_and_signed_request(site: Site) -> None:
    """A SHA-256 CertID (RFC 5019 bis) and a signed request (RFC 6960 §4.1.2: the signature
    is not required here, RFC 5019 §2.1.2) are answered like any other."""
    await site.issue("s.example.test")
    key = site.path("requestor.key")
    cert = site.path("requestor.pem")
    await openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                  "-nodes", "-keyout", str(key), "-out", str(cert), "-subj", "/CN=requestor",
                  "-days", "1")  # fmt: skip
    out = await openssl(
        "ocsp", "-url", site.url, "-sha256",
        "-issuer", str(site.path("issuing.pem")), "-cert", str(site.path("s.example.test.pem")),
        "-signer", str(cert), "-signkey", str(key),
        "-CAfile", str(site.path("root.pem")),
    )  # fmt: skip
    assert "Response verify OK" in out and "s.example.test.pem: good" in out, out
