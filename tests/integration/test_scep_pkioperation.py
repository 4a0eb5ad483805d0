"""SCEP PKIOperation through the real app factory (aiohttp test client) with the in-repo
client: envelopes, key transport, GET vs POST, polling, GetCert/GetCRL, failures."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.config import load_config
from gateway.pkix import cms
from gateway.server.app import components_of, create_app
from protocols.scep.messages import FailInfo, MessageType, PKIStatus
from tests import scep_client as sc
from tests.scep_helpers import DEFAULT_ENDPOINTS, SID_URI, STATIC_PASSWORD, scep_config

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@dataclass
class Scep:
    client: Any  # aiohttp TestClient
    ra: x509.Certificate
    ca: x509.Certificate
    app: Any

    async def post(self, der: bytes, endpoint: str = "devices") -> tuple[int, bytes, str]:
        r = await self.client.post(
            f"/scep/{endpoint}/pkiclient.exe?operation=PKIOperation",
            data=der,
            headers={"Content-Type": "application/x-pki-message"},
        )
        return r.status, await r.read(), r.headers.get("Content-Type", "")

    async def rep(self, c: sc.Client, der: bytes, endpoint: str = "devices") -> sc.CertRep:
        status, body, ctype = await self.post(der, endpoint)
        assert status == 200, body
        assert ctype == "application/x-pki-message"
        rep = c.read(body)
        assert rep.signer == self.ra
        return rep


@pytest.fixture
async def scep(
    tmp_path: Path, aiohttp_client: Callable[[Any], Awaitable[Any]]
) -> AsyncIterator[Scep]:
    cfg = scep_config(tmp_path, DEFAULT_ENDPOINTS)
    app = await create_app(load_config(cfg))
    client = await aiohttp_client(app)
    r = await client.get("/scep/devices?operation=GetCACert")
    assert r.status == 200
    certs, _ = cms.read_certs_only(await r.read())
    ra = next(c for c in certs if not _is_ca(c))
    issuing = next(c for c in certs if c.subject == ra.issuer)
    yield Scep(client, ra, issuing, app)


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def csr_for(c: sc.Client, cn: str = "device-1", **kw: Any) -> x509.CertificateSigningRequest:
    return sc.make_csr(c.key, cn, challenge=kw.pop("challenge", STATIC_PASSWORD), **kw)


async def test_pkcsreq_by_post_issues_and_reply_mirrors_nonces_and_transaction(
    scep: Scep,
) -> None:
    c = sc.Client(scep.ra)
    nonce = os.urandom(16)
    rep = await scep.rep(c, c.pkcs_req(csr_for(c), transaction_id="txn-1", nonce=nonce))
    assert rep.status == PKIStatus.SUCCESS
    assert rep.message_type == MessageType.CERT_REP
    assert rep.transaction_id == "txn-1"
    assert rep.recipient_nonce == nonce
    assert len(rep.sender_nonce) == 16 and rep.sender_nonce != nonce
    leaf = rep.certificates[0]
    assert leaf.public_key() == c.key.public_key()
    assert leaf.subject.rfc4514_string() == "CN=device-1"
    assert leaf.issuer == scep.ca.subject


async def test_sender_nonces_differ_between_replies(scep: Scep) -> None:
    c = sc.Client(scep.ra)
    csr = csr_for(c)
    one = await scep.rep(c, c.pkcs_req(csr, transaction_id="t-n"))
    two = await scep.rep(c, c.pkcs_req(csr, transaction_id="t-n"))
    assert one.sender_nonce != two.sender_nonce


@pytest.mark.parametrize(
    ("cipher", "transport", "digest"),
    [
        ("aes128_cbc", "rsaes_pkcs1v15", "sha256"),
        ("aes192_cbc", "rsaes_pkcs1v15", "sha512"),
        ("aes256_cbc", "rsaes_oaep", "sha256"),
        ("tripledes_3key", "rsaes_pkcs1v15", "sha1"),
        ("tripledes_3key", "rsaes_oaep", "sha1"),
    ],
)
async def test_reply_mirrors_cipher_key_transport_and_digest(
    scep: Scep, cipher: str, transport: str, digest: str
) -> None:
    c = sc.Client(scep.ra)
    der = c.pkcs_req(csr_for(c), cipher=cipher, key_transport=transport, digest=digest)
    rep = await scep.rep(c, der)
    assert rep.status == PKIStatus.SUCCESS, rep.fail_text
    assert (rep.cipher, rep.key_transport, rep.digest) == (cipher, transport, digest)


@pytest.mark.parametrize("style", ["plain", "macos", "cisco"])
async def test_pkioperation_by_get_in_each_client_encoding(scep: Scep, style: str) -> None:
    c = sc.Client(scep.ra)
    der = c.pkcs_req(csr_for(c))
    query = sc.get_query(der, macos=style == "macos", cisco=style == "cisco")
    r = await scep.client.get(f"/scep/devices/cgi-bin/pkiclient.exe?{query}")
    assert r.status == 200
    rep = c.read(await r.read())
    assert rep.status == PKIStatus.SUCCESS


async def test_post_without_operation_or_content_type_is_pkioperation(scep: Scep) -> None:
    c = sc.Client(scep.ra)
    r = await scep.client.post("/certsrv/mscep/mscep.dll", data=c.pkcs_req(csr_for(c)))
    assert r.status == 200
    assert c.read(await r.read()).status == PKIStatus.SUCCESS


async def test_default_endpoint_refuses_single_des_with_badalg(scep: Scep) -> None:
    c = sc.Client(scep.ra)
    rep = await scep.rep(c, c.pkcs_req(csr_for(c), cipher="des"))
    assert (rep.status, rep.fail_info) == (PKIStatus.FAILURE, FailInfo.BAD_ALG)
    assert rep.certificates == ()


async def test_legacy_endpoint_accepts_single_des_and_answers_in_des(scep: Scep) -> None:
    c = sc.Client(scep.ra)
    rep = await scep.rep(c, c.pkcs_req(csr_for(c), cipher="des", digest="sha1"), "legacy")
    assert rep.status == PKIStatus.SUCCESS
    assert rep.cipher == "des"


async def test_wrong_challenge_is_failure_badrequest_and_nothing_issued(scep: Scep) -> None:
    c = sc.Client(scep.ra)
    rep = await scep.rep(c, c.pkcs_req(csr_for(c, challenge="wrong-password"), transaction_id="w"))
    assert (rep.status, rep.fail_info) == (PKIStatus.FAILURE, FailInfo.BAD_REQUEST)
    store = components_of(scep.app).store
    assert await store.find_request("scep", "w") is None


async def test_missing_challenge_is_refused(scep: Scep) -> None:
    c = sc.Client(scep.ra)
    rep = await scep.rep(c, c.pkcs_req(sc.make_csr(c.key, "device-1")))
    assert (rep.status, rep.fail_info) == (PKIStatus.FAILURE, FailInfo.BAD_REQUEST)


async def test_repeated_pkcsreq_returns_the_same_certificate(scep: Scep) -> None:
    c = sc.Client(scep.ra)
    csr = csr_for(c)
    first = await scep.rep(c, c.pkcs_req(csr, transaction_id="same"))
    second = await scep.rep(c, c.pkcs_req(csr, transaction_id="same"))
    assert first.certificates[0] == second.certificates[0]
    inventory = await components_of(scep.app).store.list_certificates()
    assert sum(1 for r in inventory if r.subject == "CN=device-1") == 1


async def test_transaction_id_reused_with_another_key_is_refused(scep: Scep) -> None:
    a, b = sc.Client(scep.ra), sc.Client(scep.ra)
    assert (await scep.rep(a, a.pkcs_req(csr_for(a), transaction_id="t"))).status == 0
    rep = await scep.rep(b, b.pkcs_req(csr_for(b), transaction_id="t"))
    assert (rep.status, rep.fail_info) == (PKIStatus.FAILURE, FailInfo.BAD_REQUEST)


async def test_pending_then_certpoll_after_approval_succeeds(scep: Scep) -> None:
    c = sc.Client(scep.ra)
    csr = sc.make_csr(c.key, "approve-me")
    rep = await scep.rep(c, c.pkcs_req(csr, transaction_id="p1"), "approval")
    assert rep.status == PKIStatus.PENDING and rep.certificates == ()
    nonce = os.urandom(16)
    poll = c.cert_poll(scep.ca.subject, csr.subject, transaction_id="p1", nonce=nonce)
    rep = await scep.rep(c, poll, "approval")
    assert rep.status == PKIStatus.PENDING
    assert rep.recipient_nonce == nonce
    service = components_of(scep.app).service
    stored = await components_of(scep.app).store.find_request("scep", "p1")
    assert stored is not None
    await service.approve(stored.id, "manager")
    rep = await scep.rep(c, c.cert_poll(scep.ca.subject, csr.subject, transaction_id="p1"))
    assert rep.status == PKIStatus.SUCCESS
    assert rep.certificates[0].public_key() == c.key.public_key()


async def test_certpoll_for_unknown_transaction_is_badcertid(scep: Scep) -> None:
    c = sc.Client(scep.ra)
    rep = await scep.rep(c, c.cert_poll(scep.ca.subject, scep.ca.subject, transaction_id="nope"))
    assert (rep.status, rep.fail_info) == (PKIStatus.FAILURE, FailInfo.BAD_CERT_ID)


async def test_certpoll_by_another_key_is_badcertid(scep: Scep) -> None:
    a, b = sc.Client(scep.ra), sc.Client(scep.ra)
    csr = sc.make_csr(a.key, "approve-me")
    await scep.rep(a, a.pkcs_req(csr, transaction_id="p2"), "approval")
    rep = await scep.rep(b, b.cert_poll(scep.ca.subject, csr.subject, transaction_id="p2"))
    assert (rep.status, rep.fail_info) == (PKIStatus.FAILURE, FailInfo.BAD_CERT_ID)


async def test_getcert_returns_an_issued_certificate_and_badcertid_otherwise(scep: Scep) -> None:
    c = sc.Client(scep.ra)
    issued = (await scep.rep(c, c.pkcs_req(csr_for(c)))).certificates[0]
    rep = await scep.rep(
        c, c.issuer_and_serial(MessageType.GET_CERT, issued.issuer, issued.serial_number)
    )
    assert rep.status == PKIStatus.SUCCESS and rep.certificates == (issued,)
    rep = await scep.rep(c, c.issuer_and_serial(MessageType.GET_CERT, issued.issuer, 12345))
    assert (rep.status, rep.fail_info) == (PKIStatus.FAILURE, FailInfo.BAD_CERT_ID)


async def test_getcrl_returns_the_current_crl_with_revoked_serials(scep: Scep) -> None:
    c = sc.Client(scep.ra)
    issued = (await scep.rep(c, c.pkcs_req(csr_for(c)))).certificates[0]
    from gateway.model import RevocationReason

    await components_of(scep.app).service.revoke(
        format(issued.serial_number, "x"), RevocationReason.KEY_COMPROMISE, "admin"
    )
    rep = await scep.rep(
        c, c.issuer_and_serial(MessageType.GET_CRL, scep.ca.subject, issued.serial_number)
    )
    assert rep.status == PKIStatus.SUCCESS
    crl = x509.load_der_x509_crl(rep.crls[0])
    assert crl.get_revoked_certificate_by_serial_number(issued.serial_number) is not None


async def test_windows_style_signer_sha1_critical_aki_enrolls(scep: Scep) -> None:
    key = sc.rsa_key()
    c = sc.Client(scep.ra, key, sc.self_signed(key, windows=True))
    rep = await scep.rep(c, c.pkcs_req(csr_for(c), digest="sha1", key_transport="rsaes_oaep"))
    assert rep.status == PKIStatus.SUCCESS, rep.fail_text
    assert rep.digest == "sha1" and rep.key_transport == "rsaes_oaep"


async def test_envelope_for_another_recipient_is_badmessagecheck(scep: Scep) -> None:
    other = sc.self_signed(sc.rsa_key(), "not-the-ra")
    c = sc.Client(scep.ra)
    rep = await scep.rep(c, c.pkcs_req(csr_for(c), recipient=other))
    assert (rep.status, rep.fail_info) == (PKIStatus.FAILURE, FailInfo.BAD_MESSAGE_CHECK)


async def test_tampered_signature_is_badmessagecheck(scep: Scep) -> None:
    c = sc.Client(scep.ra)
    der = bytearray(c.pkcs_req(csr_for(c)))
    sig_at = len(der) - 10  # the signature is the last field of the SignerInfo
    der[sig_at] ^= 0xFF
    rep = await scep.rep(c, bytes(der))
    assert (rep.status, rep.fail_info) == (PKIStatus.FAILURE, FailInfo.BAD_MESSAGE_CHECK)


async def test_signer_key_other_than_csr_key_is_badmessagecheck(scep: Scep) -> None:
    c = sc.Client(scep.ra)
    other = sc.rsa_key()
    rep = await scep.rep(c, c.pkcs_req(sc.make_csr(other, challenge=STATIC_PASSWORD)))
    assert (rep.status, rep.fail_info) == (PKIStatus.FAILURE, FailInfo.BAD_MESSAGE_CHECK)


async def test_ec_client_key_is_refused_with_badalg_before_issuing(scep: Scep) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    c = sc.Client(scep.ra, key, sc.self_signed(key))
    rep = await scep.rep(c, c.pkcs_req(csr_for(c), transaction_id="ec"))
    assert (rep.status, rep.fail_info) == (PKIStatus.FAILURE, FailInfo.BAD_ALG)
    assert await components_of(scep.app).store.find_request("scep", "ec") is None


async def test_signing_time_far_off_is_badtime(scep: Scep) -> None:
    c = sc.Client(scep.ra)
    old = datetime.now(UTC) - timedelta(days=3)
    rep = await scep.rep(c, c.pkcs_req(csr_for(c), signing_time=old))
    assert (rep.status, rep.fail_info) == (PKIStatus.FAILURE, FailInfo.BAD_TIME)


async def test_unknown_message_type_is_badrequest(scep: Scep) -> None:
    c = sc.Client(scep.ra)
    rep = await scep.rep(c, c.message(18, b"\x30\x00"))
    assert (rep.status, rep.fail_info) == (PKIStatus.FAILURE, FailInfo.BAD_REQUEST)


async def test_renewalreq_signed_by_issued_certificate_renews_without_challenge(
    scep: Scep,
) -> None:
    c = sc.Client(scep.ra)
    first = (await scep.rep(c, c.pkcs_req(csr_for(c)))).certificates[0]
    new_key = sc.rsa_key()
    renewer = sc.Client(scep.ra, c.key, first)
    csr = sc.make_csr(new_key, "device-1")  # no challenge
    rep = await scep.rep(renewer, renewer.pkcs_req(csr, renewal=True, transaction_id="r1"))
    assert rep.status == PKIStatus.SUCCESS, rep.fail_text
    assert rep.certificates[0].public_key() == new_key.public_key()
    stored = await components_of(scep.app).store.find_request(
        "scep", f"r1/renewal/{first.serial_number:x}"
    )
    assert stored is not None and stored.kind.value == "renewal"
    assert stored.prior_serial == format(first.serial_number, "x")


async def test_same_key_renewal_reusing_the_enrollment_transaction_id_gets_a_new_certificate(
    scep: Scep,
) -> None:
    # micromdm derives the transactionID from the public key, so it repeats on renewal.
    c = sc.Client(scep.ra)
    first = (await scep.rep(c, c.pkcs_req(csr_for(c), transaction_id="k"))).certificates[0]
    renewer = sc.Client(scep.ra, c.key, first)
    again = renewer.pkcs_req(sc.make_csr(c.key, "device-1"), renewal=True, transaction_id="k")
    second = (await scep.rep(renewer, again)).certificates[0]
    assert second.serial_number != first.serial_number
    third = (await scep.rep(renewer, again)).certificates[0]
    assert third == second  # and the renewal itself is idempotent


async def test_renewalreq_signed_by_self_signed_certificate_is_refused(scep: Scep) -> None:
    c = sc.Client(scep.ra)
    rep = await scep.rep(c, c.pkcs_req(csr_for(c), renewal=True))
    assert (rep.status, rep.fail_info) == (PKIStatus.FAILURE, FailInfo.BAD_REQUEST)


async def test_strong_mapping_sid_uri_is_copied_into_the_certificate(scep: Scep) -> None:
    c = sc.Client(scep.ra)
    rep = await scep.rep(c, c.pkcs_req(csr_for(c, uris=(SID_URI,))))
    assert rep.status == PKIStatus.SUCCESS, rep.fail_text
    san = rep.certificates[0].extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert SID_URI in san.value.get_values_for_type(x509.UniformResourceIdentifier)


async def test_sid_uri_is_refused_where_the_template_does_not_allow_it(scep: Scep) -> None:
    c = sc.Client(scep.ra)
    csr = sc.make_csr(c.key, "device-1", uris=(SID_URI,))
    rep = await scep.rep(c, c.pkcs_req(csr), "plain")
    assert (rep.status, rep.fail_info) == (PKIStatus.FAILURE, FailInfo.BAD_REQUEST)


async def test_sha1_csr_refused_by_template_policy_is_failure(scep: Scep) -> None:
    c = sc.Client(scep.ra)
    csr = sc.make_csr(c.key, "device-1", digest=hashes.SHA1())
    rep = await scep.rep(c, c.pkcs_req(csr), "plain")
    assert (rep.status, rep.fail_info) == (PKIStatus.FAILURE, FailInfo.BAD_REQUEST)
    assert rep.fail_text and "sha" in rep.fail_text.lower()


async def test_chunked_post_body_is_accepted(scep: Scep) -> None:
    c = sc.Client(scep.ra)
    der = c.pkcs_req(csr_for(c))

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(der), 100):
            yield der[i : i + 100]

    r = await scep.client.post("/scep/devices?operation=PKIOperation", data=chunks())
    assert r.status == 200
    assert c.read(await r.read()).status == PKIStatus.SUCCESS


@pytest.mark.interop
@pytest.mark.parametrize("transport", ["rsaes_pkcs1v15", "rsaes_oaep"])
async def test_certrep_verifies_and_decrypts_with_openssl(
    scep: Scep, tmp_path: Path, transport: str
) -> None:
    """An independent CMS implementation reads our hand-assembled DER."""
    from cryptography.hazmat.primitives import serialization

    from tests.helpers import openssl

    c = sc.Client(scep.ra)
    status, body, _ = await scep.post(c.pkcs_req(csr_for(c), key_transport=transport))
    assert status == 200
    (tmp_path / "rep.der").write_bytes(body)
    assert c.signer is not None
    (tmp_path / "me.pem").write_bytes(c.signer.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(
        c.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (tmp_path / "ca.pem").write_bytes(scep.ca.public_bytes(serialization.Encoding.PEM))
    verified = openssl(
        "cms", "-verify", "-inform", "DER", "-in", str(tmp_path / "rep.der"),
        "-CAfile", str(tmp_path / "ca.pem"), "-partial_chain", "-purpose", "any",
        "-out", str(tmp_path / "env.der"),
    )  # fmt: skip
    assert verified.returncode == 0, verified.stderr
    decrypted = openssl(
        "cms", "-decrypt", "-inform", "DER", "-in", str(tmp_path / "env.der"),
        "-recip", str(tmp_path / "me.pem"), "-inkey", str(tmp_path / "key.pem"),
        "-out", str(tmp_path / "certs.der"),
    )  # fmt: skip
    assert decrypted.returncode == 0, decrypted.stderr
    printed = openssl("pkcs7", "-inform", "DER", "-in", str(tmp_path / "certs.der"), "-print_certs")
    assert printed.returncode == 0
    assert b"subject=CN = device-1" in printed.stdout
