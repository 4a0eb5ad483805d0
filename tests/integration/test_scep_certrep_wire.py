"""The wire form of CertRep FAILURE and PENDING (RFC 8894 §3.3.2.2, §3.3.2.3), read by OpenSSL.

Both omit the pkcsPKIEnvelope, but the SignedData still encapsulates id-data: an *absent*
eContent makes OpenSSL's PKCS#7 code (certmonger, sscep, and OpenSSL-backed Python clients)
fail with "no content" before it looks at the signature, so the reply carries an empty
OCTET STRING instead, which every CMS reader accepts and whose digest the signature covers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import cms as asn1_cms
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gateway.config import load_config
from gateway.pkix import cms
from gateway.server.app import create_app
from protocols.scep.messages import FailInfo, PKIStatus
from tests import scep_client as sc
from tests.helpers import openssl
from tests.scep_helpers import DEFAULT_ENDPOINTS, scep_config

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
async def app_client(
    tmp_path: Path, aiohttp_client: Callable[[Any], Awaitable[Any]]
) -> AsyncIterator[tuple[Any, x509.Certificate, x509.Certificate]]:
    app = await create_app(load_config(scep_config(tmp_path, DEFAULT_ENDPOINTS)))
    client = await aiohttp_client(app)
    r = await client.get("/scep/devices?operation=GetCACert")
    certs, _ = cms.read_certs_only(await r.read())
    ra = certs[0]
    ca = next(c for c in certs if c.subject == ra.issuer)
    yield client, ra, ca


async def _reply(client: Any, endpoint: str, der: bytes) -> bytes:
    r = await client.post(f"/scep/{endpoint}?operation=PKIOperation", data=der)
    assert r.status == 200
    return bytes(await r.read())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _assert_openssl_reads(
    body: bytes, ra: x509.Certificate, ca: x509.Certificate, tmp: Path
) -> None:
    (tmp / "rep.der").write_bytes(body)
    (tmp / "ca.pem").write_bytes(_pem(ca))
    (tmp / "ra.pem").write_bytes(_pem(ra))
    # PKCS#7 (the API certmonger uses) and CMS both verify the signature over the empty content.
    for command in ("smime", "cms"):
        verified = openssl(
            command, "-verify", "-inform", "DER", "-in", str(tmp / "rep.der"),
            "-CAfile", str(tmp / "ca.pem"), "-certfile", str(tmp / "ra.pem"),
            "-partial_chain", "-purpose", "any", "-out", str(tmp / f"{command}.out"),
        )  # fmt: skip
        assert verified.returncode == 0, verified.stderr.decode()
        assert (tmp / f"{command}.out").read_bytes() == b""
    out = openssl("smime", "-pk7out", "-inform", "DER", "-in", str(tmp / "rep.der"))
    assert out.returncode == 0, out.stderr.decode()
    assert out.stdout.startswith(b"-----BEGIN PKCS7-----")


def _encapsulated(body: bytes) -> Any:
    info = asn1_cms.ContentInfo.load(body)
    return info["content"]["encap_content_info"]


@pytest.mark.interop
async def test_failure_certrep_carries_empty_id_data_content_that_openssl_verifies(
    app_client: tuple[Any, x509.Certificate, x509.Certificate], tmp_path: Path
) -> None:
    client, ra, ca = app_client
    c = sc.Client(ra)
    body = await _reply(client, "devices", c.pkcs_req(sc.make_csr(c.key, challenge="wrong")))
    rep = c.read(body)
    assert (rep.status, rep.fail_info) == (PKIStatus.FAILURE, FailInfo.BAD_REQUEST)
    _assert_openssl_reads(body, ra, ca, tmp_path)
    encap = _encapsulated(body)
    assert encap["content_type"].dotted == cms.ID_DATA
    assert encap["content"].native == b""  # present and empty, not absent


@pytest.mark.interop
async def test_pending_certrep_carries_empty_id_data_content_that_openssl_verifies(
    app_client: tuple[Any, x509.Certificate, x509.Certificate], tmp_path: Path
) -> None:
    client, ra, ca = app_client
    c = sc.Client(ra)
    body = await _reply(client, "approval", c.pkcs_req(sc.make_csr(c.key, "wait-for-me")))
    assert c.read(body).status == PKIStatus.PENDING
    _assert_openssl_reads(body, ra, ca, tmp_path)
    encap = _encapsulated(body)
    assert encap["content_type"].dotted == cms.ID_DATA
    assert encap["content"].native == b""
