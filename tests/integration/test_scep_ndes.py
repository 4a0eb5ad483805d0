"""SCEP as NDES (issue #12 item 9): with ``ra_mode = "ndes-pair"`` an endpoint publishes
NDES's two RA certificates (a signature certificate and an encryption certificate, told apart
by key usage) and, with ``signer = "any"`` (its default), accepts a PKCSReq signed by a
throw-away self-signed key that is not the CSR's key; the CSR's own signature proves
possession and the CertRep is encrypted to the signer. Strict endpoints keep refusing it, and
a throw-away signer is never a renewal authority."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.config import load_config
from gateway.errors import ConfigError
from gateway.model import serial_hex
from gateway.pkix import cms
from gateway.server.app import components_of, create_app
from protocols.scep.config import parse_settings
from protocols.scep.messages import FailInfo, PKIStatus
from tests import scep_client as sc
from tests.helpers import openssl
from tests.scep_helpers import STATIC_PASSWORD, scep_config

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

TOML = """
ndes_alias = "ndes"

[scep.endpoints.devices]
template = "scep-device"
challenge = "static"
challenge_password = "file:static.txt"

[scep.endpoints.ndes]
template = "scep-device"
challenge = "static"
challenge_password = "file:static.txt"
ra_mode = "ndes-pair"

[scep.endpoints.ndes-approval]
template = "scep-approval"
challenge = "none"
ra_mode = "ndes-pair"
"""
NDES = "/certsrv/mscep/mscep.dll/pkiclient.exe"
CRA = x509.ObjectIdentifier("1.3.6.1.4.1.311.20.2.1")  # Certificate Request Agent


def _ku(cert: x509.Certificate) -> x509.KeyUsage:
    return cert.extensions.get_extension_for_class(x509.KeyUsage).value


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


@dataclass
class H:
    client: Any
    app: Any
    ca: x509.Certificate
    signing: x509.Certificate  # NDES "Exchange Enrollment Agent (Offline request)"
    encryption: x509.Certificate  # NDES "CEP Encryption"
    combined: x509.Certificate  # the strict endpoints' RA certificate

    async def rep(self, c: sc.Client, der: bytes, path: str = NDES) -> sc.CertRep:
        r = await self.client.post(f"{path}?operation=PKIOperation", data=der)
        assert r.status == 200, await r.text()
        return c.read(await r.read())

    def throwaway(self) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
        key = sc.rsa_key()
        return key, sc.self_signed(key, windows=True)


async def _certs(client: Any, path: str) -> tuple[str, tuple[x509.Certificate, ...]]:
    r = await client.get(f"{path}?operation=GetCACert")
    assert r.status == 200
    return r.headers["Content-Type"], cms.read_certs_only(await r.read())[0]


@pytest.fixture
async def h(tmp_path: Path, aiohttp_client: Callable[[Any], Awaitable[Any]]) -> H:
    app = await create_app(load_config(scep_config(tmp_path, TOML)))
    client = await aiohttp_client(app)
    _, certs = await _certs(client, NDES)
    ca = next(c for c in certs if _is_ca(c) and c.subject != c.issuer)
    ras = [c for c in certs if not _is_ca(c)]
    signing = next(c for c in ras if _ku(c).digital_signature)
    encryption = next(c for c in ras if _ku(c).key_encipherment)
    _, strict = await _certs(client, "/scep/devices")
    combined = next(c for c in strict if not _is_ca(c))
    return H(client, app, ca, signing, encryption, combined)


async def test_getcacert_on_the_ndes_alias_returns_the_ca_and_the_two_ra_certificates(
    h: H,
) -> None:
    ctype, certs = await _certs(h.client, NDES)
    assert ctype == "application/x-x509-ca-ra-cert"
    ras = [c for c in certs if not _is_ca(c)]
    assert len(ras) == 2 and h.ca in certs and h.combined not in certs
    sig, enc = _ku(h.signing), _ku(h.encryption)
    assert sig.digital_signature and not sig.key_encipherment and not sig.data_encipherment
    assert enc.key_encipherment and not enc.digital_signature
    for ra in (h.signing, h.encryption):
        ra.verify_directly_issued_by(h.ca)
        assert isinstance(ra.public_key(), rsa.RSAPublicKey)
        assert CRA in ra.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert h.signing.public_key() != h.encryption.public_key()
    # The named endpoint serves the same pair; a combined endpoint keeps its single RA.
    assert (await _certs(h.client, "/scep/ndes"))[1] == certs
    _, strict = await _certs(h.client, "/scep/devices")
    assert [c for c in strict if not _is_ca(c)] == [h.combined]
    caps = await (await h.client.get(f"{NDES}?operation=GetCACaps")).text()
    assert {"POSTPKIOperation", "Renewal", "SHA-256", "DES3", "AES"} <= set(caps.split())


async def test_pkcsreq_signed_by_a_throwaway_key_is_issued_and_encrypted_to_that_signer(
    h: H,
) -> None:
    device = sc.rsa_key()
    key, signer = h.throwaway()
    c = sc.Client(h.encryption, key, signer)
    csr = sc.make_csr(device, "ndes-dev", challenge=STATIC_PASSWORD)
    rep = await h.rep(c, c.pkcs_req(csr, cipher="tripledes_3key", digest="sha1"))
    assert rep.status == PKIStatus.SUCCESS, rep.fail_text
    assert rep.signer == h.signing  # CertRep signed by the signature certificate
    issued = rep.certificates[0]  # decrypted with the throw-away key: encrypted to the signer
    assert issued.public_key() == device.public_key() and issued.subject == csr.subject


@pytest.mark.interop
async def test_openssl_verifies_the_pair_certrep_and_decrypts_it_with_the_throwaway_key(
    h: H, tmp_path: Path
) -> None:
    """An independent CMS implementation: the CertRep verifies under the CA with the RA
    signature certificate, and only the throw-away signer's key opens its envelope."""
    key, signer = h.throwaway()
    c = sc.Client(h.encryption, key, signer)
    csr = sc.make_csr(sc.rsa_key(), "ndes-openssl", challenge=STATIC_PASSWORD)
    r = await h.client.post(f"{NDES}?operation=PKIOperation", data=c.pkcs_req(csr))
    files = {
        "rep.der": await r.read(),
        "me.pem": signer.public_bytes(serialization.Encoding.PEM),
        "key.pem": key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        "ca.pem": h.ca.public_bytes(serialization.Encoding.PEM),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    verified = openssl(
        "cms", "-verify", "-inform", "DER", "-in", str(tmp_path / "rep.der"),
        "-CAfile", str(tmp_path / "ca.pem"), "-partial_chain", "-purpose", "any",
        "-signer", str(tmp_path / "signer.pem"), "-out", str(tmp_path / "env.der"),
    )  # fmt: skip
    assert verified.returncode == 0, verified.stderr
    used = x509.load_pem_x509_certificate((tmp_path / "signer.pem").read_bytes())
    assert used == h.signing
    decrypted = openssl(
        "cms", "-decrypt", "-inform", "DER", "-in", str(tmp_path / "env.der"),
        "-recip", str(tmp_path / "me.pem"), "-inkey", str(tmp_path / "key.pem"),
        "-out", str(tmp_path / "certs.der"),
    )  # fmt: skip
    assert decrypted.returncode == 0, decrypted.stderr
    printed = openssl("pkcs7", "-inform", "DER", "-in", str(tmp_path / "certs.der"), "-print_certs")
    assert b"subject=CN = ndes-openssl" in printed.stdout


async def test_strict_endpoint_still_refuses_a_signer_that_is_not_the_csr_key(h: H) -> None:
    key, signer = h.throwaway()
    c = sc.Client(h.combined, key, signer)
    csr = sc.make_csr(sc.rsa_key(), "ndes-dev", challenge=STATIC_PASSWORD)
    rep = await h.rep(c, c.pkcs_req(csr), "/scep/devices")
    assert (rep.status, rep.fail_info) == (PKIStatus.FAILURE, FailInfo.BAD_MESSAGE_CHECK)
    assert rep.signer == h.combined


async def test_throwaway_signer_still_needs_the_challenge(h: H) -> None:
    key, signer = h.throwaway()
    c = sc.Client(h.encryption, key, signer)
    rep = await h.rep(c, c.pkcs_req(sc.make_csr(sc.rsa_key(), "ndes-dev")))
    assert (rep.status, rep.fail_info) == (PKIStatus.FAILURE, FailInfo.BAD_REQUEST)
    assert rep.signer == h.signing


async def test_throwaway_signer_copying_an_issued_certificate_is_no_renewal_authority(
    h: H,
) -> None:
    device = sc.rsa_key()
    key, signer = h.throwaway()
    c = sc.Client(h.encryption, key, signer)
    first = await h.rep(c, c.pkcs_req(sc.make_csr(device, "ndes-dev", challenge=STATIC_PASSWORD)))
    issued = first.certificates[0]
    # A self-signed look-alike: the issued certificate's names and serial, the attacker's key.
    fake_key = sc.rsa_key()
    fake = (
        x509.CertificateBuilder()
        .subject_name(issued.subject)
        .issuer_name(issued.issuer)
        .public_key(fake_key.public_key())
        .serial_number(issued.serial_number)
        .not_valid_before(issued.not_valid_before_utc)
        .not_valid_after(issued.not_valid_after_utc)
        .sign(fake_key, hashes.SHA256())
    )
    before = {r.serial for r in await components_of(h.app).store.list_certificates()}
    forger = sc.Client(h.encryption, fake_key, fake)
    for renewal in (False, True):
        csr = sc.make_csr(sc.rsa_key(), "ndes-dev")
        rep = await h.rep(forger, forger.pkcs_req(csr, renewal=renewal))
        assert (rep.status, rep.fail_info) == (PKIStatus.FAILURE, FailInfo.BAD_REQUEST)
    assert {r.serial for r in await components_of(h.app).store.list_certificates()} == before
    # The real certificate still renews itself (signed with the device key it certifies).
    renewer = sc.Client(h.encryption, device, issued)
    rep = await h.rep(renewer, renewer.pkcs_req(sc.make_csr(device, "ndes-dev"), renewal=True))
    assert rep.status == PKIStatus.SUCCESS, rep.fail_text
    record = await components_of(h.app).store.get_certificate(serial_hex(issued.serial_number))
    assert record.superseded_by == serial_hex(rep.certificates[0].serial_number)


async def test_pending_request_is_polled_with_the_throwaway_signer(h: H) -> None:
    key, signer = h.throwaway()
    c = sc.Client(h.encryption, key, signer)
    csr = sc.make_csr(sc.rsa_key(), "ndes-pending")
    path = "/scep/ndes-approval"
    assert (await h.rep(c, c.pkcs_req(csr, transaction_id="p1"), path)).status == 3
    poll = c.cert_poll(h.ca.subject, csr.subject, transaction_id="p1")
    assert (await h.rep(c, poll, path)).status == PKIStatus.PENDING
    store = components_of(h.app).store
    stored = await store.find_request("scep", "p1")
    await components_of(h.app).service.approve(stored.id, "admin")
    done = await h.rep(c, c.cert_poll(h.ca.subject, csr.subject, transaction_id="p1"), path)
    assert done.status == PKIStatus.SUCCESS, done.fail_text
    assert done.certificates[0].public_key() == csr.public_key()


def _endpoint_settings(**extra: object) -> dict[str, Any]:
    endpoint = {"template": "device", "challenge": "none", **extra}
    return {"enabled": True, "endpoints": {"x": endpoint}}


TEMPLATES = {n: object() for n in ("device", "scep-ra", "scep-ra-signature", "scep-ra-encryption")}


@pytest.mark.parametrize(
    ("extra", "key"),
    [({"ra_mode": "pair"}, "ra_mode"), ({"signer": "anyone"}, "signer")],
)
def test_bad_ra_mode_or_signer_is_one_line_naming_the_key(
    extra: dict[str, object], key: str
) -> None:
    with pytest.raises(ConfigError) as err:
        parse_settings(_endpoint_settings(**extra), "certgate.toml", TEMPLATES, "device")
    assert err.value.key_path == f"scep.endpoints.x.{key}"
    assert "\n" not in str(err.value) and "must be one of" in str(err.value)


def test_ndes_pair_needs_its_two_templates() -> None:
    templates = {n: object() for n in ("device", "scep-ra")}
    with pytest.raises(ConfigError) as err:
        parse_settings(_endpoint_settings(ra_mode="ndes-pair"), "c.toml", templates, "device")
    assert err.value.key_path == "scep.ra_signature_template"


def test_signer_defaults_to_any_with_the_pair_and_strict_otherwise() -> None:
    pair = parse_settings(_endpoint_settings(ra_mode="ndes-pair"), "c", TEMPLATES, "device")
    assert pair.endpoints["x"].signer == "any"
    strict = parse_settings(_endpoint_settings(), "c", TEMPLATES, "device")
    assert (strict.endpoints["x"].ra_mode, strict.endpoints["x"].signer) == (
        "combined",
        "request-key",
    )
    explicit = _endpoint_settings(ra_mode="ndes-pair", signer="request-key")
    assert parse_settings(explicit, "c", TEMPLATES, "device").endpoints["x"].signer == (
        "request-key"
    )
