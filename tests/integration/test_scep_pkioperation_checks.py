# ruff: noqa: F811  (pytest fixtures imported from tests.scep_fixtures)
"""SCEP PKIOperation through the real app (aiohttp test client): message checks (recipient,
signature, signer key, key algorithm, signing time, message type), renewal, strong mapping,
template policy, transport and the reply read by OpenSSL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.server.app import components_of
from protocols.scep.messages import FailInfo, PKIStatus
from tests import scep_client as sc
from tests.scep_fixtures import Scep, csr_for, scep  # noqa: F401
from tests.scep_helpers import SID_URI, STATIC_PASSWORD

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


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
