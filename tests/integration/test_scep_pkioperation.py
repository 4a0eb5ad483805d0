# ruff: noqa: F811  (pytest fixtures imported from tests.scep_fixtures)
"""SCEP PKIOperation through the real app factory (aiohttp test client) with the in-repo
client: envelopes, key transport, GET vs POST, polling, GetCert/GetCRL, challenge failures
(message checks, renewal and policy: test_scep_pkioperation_checks.py)."""

from __future__ import annotations

import os

import pytest
from cryptography import x509

from gateway.server.app import components_of
from protocols.scep.messages import FailInfo, MessageType, PKIStatus
from tests import scep_client as sc
from tests.scep_fixtures import Scep, csr_for, scep  # noqa: F401

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


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
