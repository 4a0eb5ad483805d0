"""SCEP renewal and resync: PKCSReq signed by an issued certificate (macOS), revoked or
foreign signers, endpoints without renewal, and RFC 8894 §5.2 resync with ``resync``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from gateway.config import load_config
from gateway.model import RevocationReason
from gateway.pkix import cms
from gateway.server.app import components_of, create_app
from protocols.scep.messages import FailInfo, PKIStatus
from tests import scep_client as sc
from tests.scep_helpers import STATIC_PASSWORD, scep_config

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
Client = Callable[[Any], Awaitable[Any]]

TOML = """
[scep.endpoints.devices]
template = "scep-device"
challenge = "static"
challenge_password = "file:static.txt"

[scep.endpoints.norenew]
template = "scep-device"
challenge = "static"
challenge_password = "file:static.txt"
renewal = false
capabilities = ["AES", "POSTPKIOperation", "SCEPStandard", "SHA-256"]

[scep.endpoints.resend]
template = "scep-device"
challenge = "static"
challenge_password = "file:static.txt"
resync = "resend"
"""


class H:
    def __init__(self, client: Any, app: Any, ra: x509.Certificate) -> None:
        self.client, self.app, self.ra = client, app, ra

    async def rep(self, c: sc.Client, der: bytes, endpoint: str = "devices") -> sc.CertRep:
        r = await self.client.post(f"/scep/{endpoint}?operation=PKIOperation", data=der)
        assert r.status == 200
        return c.read(await r.read())

    async def enroll(self, endpoint: str = "devices") -> tuple[sc.Client, x509.Certificate]:
        c = sc.Client(self.ra)
        rep = await self.rep(
            c, c.pkcs_req(sc.make_csr(c.key, "dev", challenge=STATIC_PASSWORD)), endpoint
        )
        assert rep.status == PKIStatus.SUCCESS, rep.fail_text
        return c, rep.certificates[0]


@pytest.fixture
async def h(tmp_path: Path, aiohttp_client: Client) -> H:
    app = await create_app(load_config(scep_config(tmp_path, TOML)))
    client = await aiohttp_client(app)
    body = await (await client.get("/scep/devices?operation=GetCACert")).read()
    return H(client, app, cms.read_certs_only(body)[0][0])


async def test_pkcsreq_signed_by_an_issued_certificate_renews_without_challenge(h: H) -> None:
    c, first = await h.enroll()
    renewer = sc.Client(h.ra, c.key, first)
    rep = await h.rep(renewer, renewer.pkcs_req(sc.make_csr(c.key, "dev"), transaction_id="m"))
    assert rep.status == PKIStatus.SUCCESS, rep.fail_text
    assert rep.certificates[0].serial_number != first.serial_number
    stored = await components_of(h.app).store.find_request(
        "scep", f"m/renewal/{first.serial_number:x}"
    )
    assert stored is not None and stored.requester.auth_method == "certificate"


async def test_renewal_signed_by_a_revoked_certificate_is_refused(h: H) -> None:
    c, first = await h.enroll()
    await components_of(h.app).service.revoke(
        format(first.serial_number, "x"), RevocationReason.KEY_COMPROMISE, "admin"
    )
    renewer = sc.Client(h.ra, c.key, first)
    rep = await h.rep(renewer, renewer.pkcs_req(sc.make_csr(c.key, "dev"), renewal=True))
    assert (rep.status, rep.fail_info) == (PKIStatus.FAILURE, FailInfo.BAD_REQUEST)


async def test_renewal_signed_by_a_look_alike_certificate_is_refused(h: H) -> None:
    # Same issuer name and serial as a real certificate, but self-signed: not from our CA.
    _c, first = await h.enroll()
    fake_key = sc.rsa_key()
    fake = (
        x509.CertificateBuilder()
        .subject_name(first.subject)
        .issuer_name(first.issuer)
        .public_key(fake_key.public_key())
        .serial_number(first.serial_number)
        .not_valid_before(first.not_valid_before_utc)
        .not_valid_after(first.not_valid_after_utc)
        .sign(fake_key, hashes.SHA256())
    )
    forger = sc.Client(h.ra, fake_key, fake)
    rep = await h.rep(forger, forger.pkcs_req(sc.make_csr(fake_key, "dev"), renewal=True))
    assert (rep.status, rep.fail_info) == (PKIStatus.FAILURE, FailInfo.BAD_REQUEST)


async def test_endpoint_without_renewal_refuses_renewalreq_and_does_not_advertise_it(
    h: H,
) -> None:
    caps = await (await h.client.get("/scep/norenew?operation=GetCACaps")).text()
    assert "Renewal" not in caps.splitlines()
    c, first = await h.enroll("norenew")
    renewer = sc.Client(h.ra, c.key, first)
    rep = await h.rep(renewer, renewer.pkcs_req(sc.make_csr(c.key, "dev"), renewal=True), "norenew")
    assert (rep.status, rep.fail_info) == (PKIStatus.FAILURE, FailInfo.BAD_REQUEST)


async def test_resync_resend_returns_the_existing_certificate_for_a_new_transaction(
    h: H,
) -> None:
    c, first = await h.enroll("resend")
    csr = sc.make_csr(c.key, "dev", challenge=STATIC_PASSWORD)
    rep = await h.rep(c, c.pkcs_req(csr, transaction_id="fresh-txn"), "resend")
    assert rep.status == PKIStatus.SUCCESS
    assert rep.certificates[0] == first


async def test_resync_issue_gives_a_new_certificate_for_a_new_transaction(h: H) -> None:
    c, first = await h.enroll()
    csr = sc.make_csr(c.key, "dev", challenge=STATIC_PASSWORD)
    rep = await h.rep(c, c.pkcs_req(csr, transaction_id="fresh-txn"))
    assert rep.status == PKIStatus.SUCCESS
    assert rep.certificates[0].serial_number != first.serial_number
