"""SCEP trust (issue #12): a certificate may only renew itself (same subject and SAN set);
anything else needs the endpoint's challenge; a renewal records its prior certificate, which
is superseded and audited; a refused transaction is judged afresh when the client fixes its
CSR, while an identical repeat replays the stored FAILURE."""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from gateway.config import load_config
from gateway.model import serial_hex
from gateway.pkix import cms
from gateway.server.app import components_of, create_app
from protocols.scep import otp
from protocols.scep.messages import FailInfo, PKIStatus
from tests import scep_client as sc
from tests.helpers import count_ca_signatures
from tests.scep_helpers import SID_URI, STATIC_PASSWORD, scep_config

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
Client = Callable[[Any], Awaitable[Any]]

TOML = """
[scep.endpoints.devices]
template = "scep-device"
challenge = "static"
challenge_password = "file:static.txt"

[scep.endpoints.approval]
template = "scep-approval"
challenge = "none"

[scep.endpoints.otp]
template = "scep-device"
challenge = "otp"

[scep.endpoints.requester]
template = "scep-requester"
challenge = "static"
challenge_password = "file:static.txt"
"""


class H:
    def __init__(self, client: Any, app: Any, ra: x509.Certificate, ca: x509.Certificate):
        self.client, self.app, self.ra, self.ca = client, app, ra, ca

    @property
    def store(self) -> Any:
        return components_of(self.app).store

    async def rep(self, c: sc.Client, der: bytes, endpoint: str = "devices") -> sc.CertRep:
        r = await self.client.post(f"/scep/{endpoint}?operation=PKIOperation", data=der)
        assert r.status == 200
        return c.read(await r.read())

    async def enroll(
        self, cn: str = "dev", uris: tuple[str, ...] = ()
    ) -> tuple[sc.Client, x509.Certificate]:
        c = sc.Client(self.ra)
        csr = sc.make_csr(c.key, cn, challenge=STATIC_PASSWORD, uris=uris)
        rep = await self.rep(c, c.pkcs_req(csr))
        assert rep.status == PKIStatus.SUCCESS, rep.fail_text
        return c, rep.certificates[0]

    async def serials(self) -> set[str]:
        return {r.serial for r in await self.store.list_certificates()}


@pytest.fixture
async def h(tmp_path: Path, aiohttp_client: Client) -> H:
    cfg = scep_config(tmp_path, TOML)
    # A template that builds the subject from the requester: the certificate's names are not
    # the CSR's, so a renewal repeats the names of the CSR the certificate was issued for.
    text = (tmp_path / "templates" / "device.toml").read_text()
    text = text.replace('name = "device"', 'name = "scep-requester"', 1)
    text = re.sub(r'^oid = ".*"$', f'oid = "2.25.{uuid.uuid4().int}"', text, count=1, flags=re.M)
    text = text.replace('source = "request"', 'source = "requester"', 1)
    text = text.replace("early_renewal = false", "early_renewal = true", 1)
    (tmp_path / "templates" / "scep-requester.toml").write_text(text)
    app = await create_app(load_config(cfg))
    client = await aiohttp_client(app)
    body = await (await client.get("/scep/devices?operation=GetCACert")).read()
    certs = cms.read_certs_only(body)[0]
    return H(client, app, certs[0], certs[1])


# --- item 1: a certificate may only renew itself -------------------------------------------


@pytest.mark.parametrize("renewal_req", [False, True], ids=["PKCSReq", "RenewalReq"])
async def test_certificate_cannot_renew_into_another_subject_without_the_challenge(
    h: H, renewal_req: bool
) -> None:
    c, first = await h.enroll("dev-a")
    before = await h.serials()
    renewer = sc.Client(h.ra, c.key, first)
    csr = sc.make_csr(c.key, "dev-b")
    rep = await h.rep(renewer, renewer.pkcs_req(csr, renewal=renewal_req, transaction_id="t-b"))
    assert (rep.status, rep.fail_info) == (PKIStatus.FAILURE, FailInfo.BAD_REQUEST)
    assert "may only renew itself" in (rep.fail_text or "")
    assert await h.serials() == before
    refusals = [e for e in await h.store.audit_events() if e.event == "scep.refused"]
    assert [(e.detail["transaction_id"], e.detail["signer_serial"]) for e in refusals] == [
        ("t-b", serial_hex(first.serial_number))
    ]


async def test_certificate_cannot_renew_with_an_added_subject_alt_name(h: H) -> None:
    c, first = await h.enroll("dev-a")
    before = await h.serials()
    renewer = sc.Client(h.ra, c.key, first)
    csr = sc.make_csr(c.key, "dev-a", uris=(SID_URI,))
    rep = await h.rep(renewer, renewer.pkcs_req(csr, renewal=True))
    assert (rep.status, rep.fail_info) == (PKIStatus.FAILURE, FailInfo.BAD_REQUEST)
    assert await h.serials() == before


async def test_certificate_cannot_renew_with_a_dropped_subject_alt_name(h: H) -> None:
    c, first = await h.enroll("dev-a", uris=(SID_URI,))
    renewer = sc.Client(h.ra, c.key, first)
    rep = await h.rep(renewer, renewer.pkcs_req(sc.make_csr(c.key, "dev-a"), renewal=True))
    assert (rep.status, rep.fail_info) == (PKIStatus.FAILURE, FailInfo.BAD_REQUEST)


async def test_other_names_with_a_valid_challenge_are_a_new_enrollment_not_a_renewal(
    h: H,
) -> None:
    c, first = await h.enroll("dev-a")
    signer = sc.Client(h.ra, c.key, first)
    csr = sc.make_csr(c.key, "dev-b", challenge=STATIC_PASSWORD)
    rep = await h.rep(signer, signer.pkcs_req(csr, transaction_id="other-names"))
    assert rep.status == PKIStatus.SUCCESS, rep.fail_text
    assert rep.certificates[0].subject == csr.subject
    stored = await h.store.find_request("scep", "other-names")
    assert stored is not None and stored.kind.value == "new" and stored.prior_serial is None
    assert stored.requester.auth_method == "challenge"
    old = await h.store.get_certificate(serial_hex(first.serial_number))
    assert old.superseded_by is None


async def test_self_renewal_records_prior_supersedes_it_and_audits(h: H) -> None:
    c, first = await h.enroll("dev-a", uris=(SID_URI,))
    renewer = sc.Client(h.ra, c.key, first)
    csr = sc.make_csr(c.key, "dev-a", uris=(SID_URI,))
    rep = await h.rep(renewer, renewer.pkcs_req(csr, renewal=True, transaction_id="self"))
    assert rep.status == PKIStatus.SUCCESS, rep.fail_text
    new = rep.certificates[0]
    old_serial, new_serial = serial_hex(first.serial_number), serial_hex(new.serial_number)
    stored = await h.store.find_request("scep", f"self/renewal/{old_serial}")
    assert stored.kind.value == "renewal" and stored.prior_serial == old_serial
    assert (await h.store.get_certificate(old_serial)).superseded_by == new_serial
    events = {e.event: e for e in await h.store.audit_events(stored.id)}
    assert events["request.received"].detail["kind"] == "renewal"
    assert events["request.received"].detail["auth_method"] == "certificate"
    assert events["certificate.issued"].detail["supersedes"] == old_serial


async def test_renewal_may_repeat_the_names_of_the_request_the_certificate_was_issued_for(
    h: H,
) -> None:
    c = sc.Client(h.ra)
    empty = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
    enroll_csr = empty.add_attribute(
        x509.oid.AttributeOID.CHALLENGE_PASSWORD, STATIC_PASSWORD.encode()
    ).sign(c.key, hashes.SHA256())
    first = await h.rep(c, c.pkcs_req(enroll_csr), "requester")
    assert first.status == PKIStatus.SUCCESS, first.fail_text
    cert = first.certificates[0]
    assert cert.subject.rfc4514_string() == "CN=scep:requester"
    renewer = sc.Client(h.ra, c.key, cert)
    renew_csr = empty.sign(c.key, hashes.SHA256())
    rep = await h.rep(renewer, renewer.pkcs_req(renew_csr, renewal=True), "requester")
    assert rep.status == PKIStatus.SUCCESS, rep.fail_text
    assert rep.certificates[0].subject == cert.subject
    old = await h.store.get_certificate(serial_hex(cert.serial_number))
    assert old.superseded_by == serial_hex(rep.certificates[0].serial_number)
    # Names that are neither the certificate's nor its request's still need the challenge.
    named = sc.make_csr(c.key, "someone-else")
    other = await h.rep(renewer, renewer.pkcs_req(named, renewal=True), "requester")
    assert (other.status, other.fail_info) == (PKIStatus.FAILURE, FailInfo.BAD_REQUEST)


# --- item 6: a refused transaction is judged afresh when the CSR changes --------------------


async def test_fixed_csr_with_the_same_key_after_a_refusal_is_judged_afresh(h: H) -> None:
    c = sc.Client(h.ra)
    bad = sc.make_csr(c.key, "not a valid name!", challenge=STATIC_PASSWORD)
    refused = await h.rep(c, c.pkcs_req(bad, transaction_id="txn-fix"))
    assert (refused.status, refused.fail_info) == (PKIStatus.FAILURE, FailInfo.BAD_REQUEST)
    fixed = sc.make_csr(c.key, "good-name", challenge=STATIC_PASSWORD)
    rep = await h.rep(c, c.pkcs_req(fixed, transaction_id="txn-fix"))
    assert rep.status == PKIStatus.SUCCESS, rep.fail_text
    assert rep.certificates[0].subject == fixed.subject
    # A retry of the fixed message gets the same certificate, not another one.
    again = await h.rep(c, c.pkcs_req(fixed, transaction_id="txn-fix"))
    assert again.certificates[0] == rep.certificates[0]


async def test_identical_repeat_after_a_refusal_replays_without_judging_again(h: H) -> None:
    c = sc.Client(h.ra)
    bad = sc.make_csr(c.key, "not a valid name!", challenge=STATIC_PASSWORD)
    first = await h.rep(c, c.pkcs_req(bad, transaction_id="txn-same"))
    events_before = len(await h.store.audit_events())
    again = await h.rep(c, c.pkcs_req(bad, transaction_id="txn-same"))
    assert (again.status, again.fail_info, again.fail_text) == (
        first.status,
        first.fail_info,
        first.fail_text,
    )
    assert len(await h.store.audit_events()) == events_before  # nothing new was judged


async def test_other_key_still_cannot_reuse_a_refused_transaction(h: H) -> None:
    c = sc.Client(h.ra)
    bad = sc.make_csr(c.key, "not a valid name!", challenge=STATIC_PASSWORD)
    await h.rep(c, c.pkcs_req(bad, transaction_id="txn-key"))
    other = sc.Client(h.ra)
    csr = sc.make_csr(other.key, "good-name", challenge=STATIC_PASSWORD)
    rep = await h.rep(other, other.pkcs_req(csr, transaction_id="txn-key"))
    assert (rep.status, rep.fail_info) == (PKIStatus.FAILURE, FailInfo.BAD_REQUEST)


async def test_certpoll_follows_the_attempt_judged_after_a_refusal(h: H) -> None:
    c = sc.Client(h.ra)
    bad = sc.make_csr(c.key, "not a valid name!")
    refused = await h.rep(c, c.pkcs_req(bad, transaction_id="txn-poll"), "approval")
    assert refused.status == PKIStatus.FAILURE
    fixed = sc.make_csr(c.key, "good-name")
    pending = await h.rep(c, c.pkcs_req(fixed, transaction_id="txn-poll"), "approval")
    assert pending.status == PKIStatus.PENDING, pending.fail_text
    poll = c.cert_poll(h.ca.subject, fixed.subject, transaction_id="txn-poll")
    assert (await h.rep(c, poll, "approval")).status == PKIStatus.PENDING
    waiting = [r for r in await h.store.list_requests() if r.state.value == "pending"]
    assert len(waiting) == 1
    await components_of(h.app).service.approve(waiting[0].id, "admin")
    poll = c.cert_poll(h.ca.subject, fixed.subject, transaction_id="txn-poll")
    done = await h.rep(c, poll, "approval")
    assert done.status == PKIStatus.SUCCESS, done.fail_text
    assert done.certificates[0].subject == fixed.subject


async def test_different_csr_after_an_issuance_with_the_same_key_is_judged_afresh(h: H) -> None:
    # Clients derive the transactionID from the key (RFC 8894 §3.2.1.1): a device asking for
    # new names with its old key must not be handed the certificate of its earlier request.
    c = sc.Client(h.ra)
    first = sc.make_csr(c.key, "first-name", challenge=STATIC_PASSWORD)
    rep = await h.rep(c, c.pkcs_req(first, transaction_id="txn-names"))
    assert rep.status == PKIStatus.SUCCESS, rep.fail_text
    second = sc.make_csr(c.key, "second-name", challenge=STATIC_PASSWORD)
    rep2 = await h.rep(c, c.pkcs_req(second, transaction_id="txn-names"))
    assert rep2.status == PKIStatus.SUCCESS, rep2.fail_text
    assert rep2.certificates[0].subject == second.subject
    assert rep2.certificates[0] != rep.certificates[0]
    # ... and without the endpoint's authorization it is refused, not answered with either.
    third = sc.make_csr(c.key, "third-name", challenge="wrong")
    rep3 = await h.rep(c, c.pkcs_req(third, transaction_id="txn-names"))
    assert (rep3.status, rep3.fail_info) == (PKIStatus.FAILURE, FailInfo.BAD_REQUEST)
    # A retry of the first request still gets the first certificate.
    again = await h.rep(c, c.pkcs_req(first, transaction_id="txn-names"))
    assert again.certificates[0] == rep.certificates[0]


async def test_different_csr_while_the_transaction_is_pending_is_refused(h: H) -> None:
    c = sc.Client(h.ra)
    asked = sc.make_csr(c.key, "good-name")
    pending = await h.rep(c, c.pkcs_req(asked, transaction_id="txn-wait"), "approval")
    assert pending.status == PKIStatus.PENDING, pending.fail_text
    other = sc.make_csr(c.key, "other-name")
    rep = await h.rep(c, c.pkcs_req(other, transaction_id="txn-wait"), "approval")
    assert (rep.status, rep.fail_info) == (PKIStatus.FAILURE, FailInfo.BAD_REQUEST)
    assert "pending for another CSR" in (rep.fail_text or "")
    again = await h.rep(c, c.pkcs_req(asked, transaction_id="txn-wait"), "approval")
    assert again.status == PKIStatus.PENDING
    assert len([r for r in await h.store.list_requests() if r.state.value == "pending"]) == 1


async def test_transaction_id_with_the_attempt_separator_is_refused(h: H) -> None:
    # '#' (not in PrintableString) separates a transaction's attempts in the store; a client
    # using it could otherwise pre-empt another transaction's later attempt.
    c = sc.Client(h.ra)
    csr = sc.make_csr(c.key, "good-name", challenge=STATIC_PASSWORD)
    rep = await h.rep(c, c.pkcs_req(csr, transaction_id="victim#2"))
    assert (rep.status, rep.fail_info) == (PKIStatus.FAILURE, FailInfo.BAD_REQUEST)
    assert await h.store.find_request("scep", "victim#2") is None


async def test_one_time_password_of_a_refused_attempt_serves_the_fixed_csr_of_that_transaction(
    h: H,
) -> None:
    # The password was consumed by this transaction's refused attempt: the same device (same
    # key, same transactionID) may present it again with its fixed CSR; nobody else may.
    components = components_of(h.app)
    now = components.service.clock.now()
    made = await otp.create(h.store, "otp", None, timedelta(hours=1), "test", now)
    c = sc.Client(h.ra)
    bad = sc.make_csr(c.key, "not a valid name!", challenge=made.password)
    refused = await h.rep(c, c.pkcs_req(bad, transaction_id="otp-fix"), "otp")
    assert refused.status == PKIStatus.FAILURE
    fixed = sc.make_csr(c.key, "good-name", challenge=made.password)
    rep = await h.rep(c, c.pkcs_req(fixed, transaction_id="otp-fix"), "otp")
    assert rep.status == PKIStatus.SUCCESS, rep.fail_text
    other = sc.Client(h.ra)
    stolen = sc.make_csr(other.key, "good-name", challenge=made.password)
    again = await h.rep(other, other.pkcs_req(stolen, transaction_id="otp-other"), "otp")
    assert (again.status, again.fail_info) == (PKIStatus.FAILURE, FailInfo.BAD_REQUEST)


async def test_a_keys_next_csr_is_signed_once(h: H, monkeypatch: pytest.MonkeyPatch) -> None:
    """The attempts read to find a retry give the service the next attempt's key, so a new CSR
    under a transactionID already used (clients derive it from the key) is judged and signed
    once; it used to be judged and signed for attempt 1's key first, collide there, and be
    judged and signed again (a certificate signed for nobody)."""
    signed = count_ca_signatures(monkeypatch)
    c = sc.Client(h.ra)
    for n, cn in enumerate(("first-name", "second-name", "third-name"), start=1):
        csr = sc.make_csr(c.key, cn, challenge=STATIC_PASSWORD)
        rep = await h.rep(c, c.pkcs_req(csr, transaction_id="txn-once"))
        assert rep.status == PKIStatus.SUCCESS, rep.fail_text
        assert rep.certificates[0].subject == csr.subject
        assert len(signed) == n
    requests = await h.store.list_requests()
    stored = sorted(r.transaction_id for r in requests if r.transaction_id.startswith("txn-once"))
    assert stored == ["txn-once", "txn-once#2", "txn-once#3"]


async def test_a_transaction_id_fixed_per_device_never_runs_out_of_attempts(h: H) -> None:
    """Clients that keep one transactionID per key or device (RFC 8894 §3.2.1.1: a device's
    EUI; jscep, xipki and sscep hash the key) enrol under it again and again. Past the
    transaction's attempts its next CSR opens the next generation instead of being refused
    for good; repeats are still answered, from the generation they were made in, and CertPoll
    follows the newest attempt."""
    from gateway.service import MAX_ATTEMPTS
    from protocols.scep import transactions

    before = await h.serials()
    c = sc.Client(h.ra)
    issued: dict[str, x509.Certificate] = {}
    names = [f"dev-{n}" for n in range(1, MAX_ATTEMPTS + 3)]
    for cn in names:
        rep = await h.rep(
            c, c.pkcs_req(sc.make_csr(c.key, cn, challenge=STATIC_PASSWORD), transaction_id="eui-1")
        )
        assert rep.status == PKIStatus.SUCCESS, (cn, rep.fail_text)
        assert rep.certificates[0].subject == sc.make_csr(c.key, cn).subject
        issued[cn] = rep.certificates[0]
    assert len({cert.serial_number for cert in issued.values()}) == len(names)
    stored = {r.transaction_id for r in await h.store.list_requests()}
    assert {"eui-1", f"eui-1#{MAX_ATTEMPTS}", "eui-1#g1", "eui-1#g1#2"} <= stored
    # retransmissions: the last attempt of generation 0, the first of it, the newest
    for cn in (names[MAX_ATTEMPTS - 1], names[0], names[-1]):
        csr = sc.make_csr(c.key, cn, challenge=STATIC_PASSWORD)
        again = await h.rep(c, c.pkcs_req(csr, transaction_id="eui-1"))
        assert again.certificates[0] == issued[cn], cn
    assert len(await h.serials() - before) == len(names)  # the repeats issued nothing
    newest, number = await transactions.latest(h.store, "eui-1")
    assert newest is not None and (newest.transaction_id, number) == ("eui-1#g1#2", 2)
    # another key still cannot use the transactionID, in any generation
    other = sc.Client(h.ra)
    csr = sc.make_csr(other.key, "intruder", challenge=STATIC_PASSWORD)
    rep = await h.rep(other, other.pkcs_req(csr, transaction_id="eui-1"))
    assert (rep.status, rep.fail_info) == (PKIStatus.FAILURE, FailInfo.BAD_REQUEST)


async def test_transaction_ids_longer_than_the_store_can_suffix_are_refused(h: H) -> None:
    """The stored key adds renewal, generation and attempt suffixes to the transactionID, so
    it is bounded (192) below the store's 255: one longer is a 400 with a reason, no 500."""
    from protocols.scep.messages import MAX_TRANSACTION_ID

    c = sc.Client(h.ra)
    csr = sc.make_csr(c.key, "long-id", challenge=STATIC_PASSWORD)
    fits = await h.rep(c, c.pkcs_req(csr, transaction_id="t" * MAX_TRANSACTION_ID))
    assert fits.status == PKIStatus.SUCCESS, fits.fail_text
    too_long = c.pkcs_req(csr, transaction_id="u" * (MAX_TRANSACTION_ID + 1))
    r = await h.client.post("/scep/devices?operation=PKIOperation", data=too_long)
    assert r.status == 400 and "transactionID" in await r.text()
