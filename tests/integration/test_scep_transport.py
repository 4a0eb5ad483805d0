"""SCEP HTTP transport (RFC 8894 §4): GetCACaps, GetCACert, GetNextCACert, paths, the NDES
alias, and the few HTTP errors (transport only)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import cms as asn1_cms
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.config import load_config
from gateway.pkix import cms
from gateway.server.app import create_app
from tests.scep_helpers import DEFAULT_ENDPOINTS, scep_config

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
Client = Callable[[Any], Awaitable[Any]]


async def _client(tmp: Path, aiohttp_client: Client, toml: str = DEFAULT_ENDPOINTS) -> Any:
    return await aiohttp_client(await create_app(load_config(scep_config(tmp, toml))))


async def test_getcacaps_lists_exact_keywords_and_nothing_unimplemented(
    tmp_path: Path, aiohttp_client: Client
) -> None:
    client = await _client(tmp_path, aiohttp_client)
    r = await client.get("/scep/devices?operation=GetCACaps")
    assert r.status == 200 and r.content_type == "text/plain"
    lines = (await r.text()).splitlines()
    assert set(lines) == {
        "AES",
        "DES3",
        "POSTPKIOperation",
        "Renewal",
        "SCEPStandard",
        "SHA-1",
        "SHA-256",
        "SHA-512",
    }
    assert "GetNextCACert" not in lines  # no successor CA configured


async def test_scep_path_is_ignored_after_the_endpoint(
    tmp_path: Path, aiohttp_client: Client
) -> None:
    client = await _client(tmp_path, aiohttp_client)
    bodies = set()
    for path in (
        "/scep/devices",
        "/scep/devices/pkiclient.exe",
        "/scep/devices/cgi-bin/pkiclient.exe",
        "/scep/devices/any/prefix/pkiclient.exe",
    ):
        r = await client.get(f"{path}?operation=GetCACaps")
        assert r.status == 200
        bodies.add(await r.read())
    assert len(bodies) == 1


async def test_getcacert_is_a_degenerate_certs_only_signeddata_with_ra_and_chain(
    tmp_path: Path, aiohttp_client: Client
) -> None:
    client = await _client(tmp_path, aiohttp_client)
    r = await client.get("/scep/devices?operation=GetCACert&message=CAIdentifier")
    assert r.status == 200 and r.content_type == "application/x-x509-ca-ra-cert"
    body = await r.read()
    signed = asn1_cms.ContentInfo.load(body)["content"]
    assert signed["version"].native == "v1"
    assert len(signed["signer_infos"]) == 0
    assert len(signed["digest_algorithms"]) == 0
    assert signed["encap_content_info"]["content"].native is None
    certs, _ = cms.read_certs_only(body)
    names = [c.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value for c in certs]
    assert names == ["certgate SCEP RA", "certgate Issuing CA", "certgate Root CA"]
    ra = certs[0]
    ku = ra.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.digital_signature and ku.key_encipherment
    assert ra.public_key().key_size >= 2048  # type: ignore[union-attr]
    assert isinstance(certs[1].public_key(), ec.EllipticCurvePublicKey)  # EC CA, RSA RA
    ra.verify_directly_issued_by(certs[1])


async def test_ndes_alias_serves_the_configured_endpoint(
    tmp_path: Path, aiohttp_client: Client
) -> None:
    client = await _client(tmp_path, aiohttp_client)
    for path in ("/certsrv/mscep/mscep.dll", "/certsrv/mscep/mscep.dll/pkiclient.exe"):
        r = await client.get(f"{path}?operation=GetCACert")
        assert r.status == 200 and r.content_type == "application/x-x509-ca-ra-cert"


async def test_unknown_endpoint_is_404_and_unknown_operation_is_400(
    tmp_path: Path, aiohttp_client: Client
) -> None:
    client = await _client(tmp_path, aiohttp_client)
    assert (await client.get("/scep/nope?operation=GetCACaps")).status == 404
    assert (await client.get("/scep/devices?operation=Frobnicate")).status == 400
    assert (await client.get("/scep/devices")).status == 400
    assert (await client.put("/scep/devices?operation=GetCACaps")).status == 405


async def test_body_that_is_not_a_pkimessage_is_400_not_500(
    tmp_path: Path, aiohttp_client: Client
) -> None:
    client = await _client(tmp_path, aiohttp_client)
    r = await client.post("/scep/devices?operation=PKIOperation", data=b"\x30\x03\x02\x01\x01")
    assert r.status == 400
    r = await client.get("/scep/devices?operation=PKIOperation&message=%%%not-base64")
    assert r.status == 400
    r = await client.get("/scep/devices?operation=PKIOperation")
    assert r.status == 400


def _ca(tmp: Path) -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "next CA")])
    import datetime as dt

    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = tmp / "next-ca.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


async def test_getnextcacert_returns_successor_signed_by_the_current_ra(
    tmp_path: Path, aiohttp_client: Client
) -> None:
    path = _ca(tmp_path)
    toml = f'next_ca_certificates = "{path}"\n' + DEFAULT_ENDPOINTS
    client = await _client(tmp_path, aiohttp_client, toml)
    caps = (await (await client.get("/scep/devices?operation=GetCACaps")).text()).splitlines()
    assert "GetNextCACert" in caps
    r = await client.get("/scep/devices?operation=GetNextCACert")
    assert r.status == 200 and r.content_type == "application/x-x509-next-ca-cert"
    signed = cms.parse_signed(await r.read())
    cms.verify_signed(signed)
    assert signed.signer.subject.rfc4514_string() == "CN=certgate SCEP RA"
    assert signed.content is not None
    certs, _ = cms.read_certs_only(signed.content)
    assert [c.subject.rfc4514_string() for c in certs] == ["CN=next CA"]


async def test_getnextcacert_without_a_successor_is_refused(
    tmp_path: Path, aiohttp_client: Client
) -> None:
    client = await _client(tmp_path, aiohttp_client)
    assert (await client.get("/scep/devices?operation=GetNextCACert")).status == 400
