"""EST retries (issue #12 item 5, RFC 7030 §4.2.3): only the *same* request is answered with the
recorded outcome. The same request is the same CSR content (the signature and the tls-unique
challengePassword may differ: §4.2.3 lets a client re-create the CSR for a new TLS session with
the same key); its signature is checked before anything is replayed. A different CSR with the
same key is judged afresh, except while an earlier request for that key is still pending: then
it is refused (409) instead of queueing a second pending request.

In-process: the real app factory with aiohttp's test client, reaching the EST routes as a
trusted TLS-terminating proxy (``[est] trusted_proxies``) with HTTP Basic.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import AttributeOID, NameOID

from gateway.config import load_config
from gateway.model import (
    EnrollmentRequest,
    PendingReason,
    Requester,
    RequestKind,
    RequestState,
    new_request_id,
)
from gateway.pkix.csr import csr_spki_sha256
from gateway.server.app import components_of, create_app
from gateway.service import request_digest
from gateway.service.records import request_record
from protocols.est.routes import EST_CONTEXT
from protocols.est.transactions import transaction_key
from tests.est_helpers import write_est_config
from tests.helpers import count_ca_signatures, free_port

Client = Callable[[Any], Awaitable[Any]]
AUTH = {"Authorization": "Basic " + base64.b64encode(b"alice:correct horse").decode()}


class H:
    def __init__(self, client: Any, app: Any) -> None:
        self.client, self.app = client, app

    async def post(self, path: str, der: bytes) -> tuple[int, bytes, Any]:
        r = await self.client.post(
            f"/.well-known/est{path}",
            data=base64.b64encode(der),
            headers={"Content-Type": "application/pkcs10", **AUTH},
        )
        return r.status, await r.read(), r.headers

    async def refusals(self) -> list[dict[str, Any]]:
        """The EST-level refusals audited (``est.request.refused``)."""
        events = await components_of(self.app).store.audit_events()
        return [dict(e.detail) for e in events if e.event == "est.request.refused"]

    async def requests(self) -> list[Any]:
        store = components_of(self.app).store
        return [
            r
            for r in await store.list_requests()
            if r.protocol == "est" and r.requester.principal == "alice"
        ]


@pytest.fixture
async def h(tmp_path: Path, aiohttp_client: Client) -> H:
    cfg = write_est_config(
        tmp_path,
        est_port=free_port(),
        est="""
        trusted_proxies = ["127.0.0.1/32"]
        retry_window = "5m"
        [est.labels.approval]
        template = "approval-required"
        """,
    )
    app = await create_app(load_config(cfg))
    await app[EST_CONTEXT].state.add_user("alice", "correct horse", (), replace=False)
    return H(await aiohttp_client(app), app)


def csr(key: ec.EllipticCurvePrivateKey, cn: str, *, password: bytes | None = None) -> bytes:
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    )
    if password is not None:
        builder = builder.add_attribute(AttributeOID.CHALLENGE_PASSWORD, password)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def broken_signature(der: bytes) -> bytes:
    """The same CSR with the last octet of its signature changed (still well-formed DER)."""
    return der[:-1] + bytes([der[-1] ^ 0x01])


def issued_cn(body: bytes) -> str:
    cert = pkcs7.load_der_pkcs7_certificates(base64.b64decode(body))[0]
    return str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


async def test_different_subject_with_the_same_key_is_judged_afresh(h: H) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    status, body, _ = await h.post("/simpleenroll", csr(key, "first"))
    assert status == 200 and issued_cn(body) == "first"
    status, body, _ = await h.post("/simpleenroll", csr(key, "second"))
    assert status == 200, body
    assert issued_cn(body) == "second"


async def test_the_same_csr_resent_within_the_window_gets_the_same_certificate(h: H) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    _, first, _ = await h.post("/simpleenroll", csr(key, "same"))
    # ECDSA signs afresh each time: same content, different bytes
    status, again, _ = await h.post("/simpleenroll", csr(key, "same"))
    assert status == 200 and again == first
    assert len(await h.requests()) == 1


async def test_a_broken_signature_is_not_answered_with_the_earlier_certificate(h: H) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    der = csr(key, "signed")
    status, _, _ = await h.post("/simpleenroll", der)
    assert status == 200
    status, body, _ = await h.post("/simpleenroll", broken_signature(der))
    assert status == 400, body
    assert b"signature" in body
    assert [r["rule"] for r in await h.refusals()] == ["csr-signature"]


async def test_a_corrected_csr_after_a_refusal_is_judged_afresh(h: H) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    status, body, _ = await h.post("/simpleenroll", csr(key, "bad name!"))
    assert status == 403 and b"bad name!" in body
    status, body, _ = await h.post("/simpleenroll", csr(key, "good-name"))
    assert status == 200, body
    assert issued_cn(body) == "good-name"


async def test_the_same_refused_csr_within_the_window_gets_the_same_refusal(h: H) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    first = await h.post("/simpleenroll", csr(key, "bad name!"))
    again = await h.post("/simpleenroll", csr(key, "bad name!"))
    assert (first[0], first[1]) == (again[0], again[1]) == (first[0], first[1])
    assert first[0] == 403
    assert len(await h.requests()) == 1


async def test_a_pending_request_is_found_again_by_the_same_csr_relinked(h: H) -> None:
    """§4.2.3: after 202 the client repeats the request, possibly in a new TLS session with a
    new tls-unique in the challengePassword (§3.5): still the same request."""
    key = ec.generate_private_key(ec.SECP256R1())
    status, body, headers = await h.post("/approval/simpleenroll", csr(key, "wait", password=b"A"))
    assert status == 202 and headers["Retry-After"]
    status, again, _ = await h.post("/approval/simpleenroll", csr(key, "wait", password=b"B"))
    assert status == 202
    assert again == body  # names the same request id
    assert len(await h.requests()) == 1


async def test_a_different_csr_while_one_is_pending_is_refused_not_queued(h: H) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    status, _, _ = await h.post("/approval/simpleenroll", csr(key, "first"))
    assert status == 202
    (pending,) = await h.requests()
    status, body, _ = await h.post("/approval/simpleenroll", csr(key, "second"))
    assert status == 409, body
    assert pending.id.encode() in body
    assert [r["rule"] for r in await h.refusals()] == ["est-pending-request"]
    assert [r.state for r in await h.requests()] == [RequestState.PENDING]
    # once the manager decides, the new CSR is judged on its own
    await components_of(h.app).service.deny(pending.id, "manager", "wrong name")
    status, body, _ = await h.post("/approval/simpleenroll", csr(key, "second"))
    assert status == 202, body
    assert pending.id.encode() not in body


async def test_a_different_csr_is_the_next_attempt_and_the_first_is_still_replayed(h: H) -> None:
    """One transaction per requester and key (the service's retry mechanism): CN=second is its
    attempt 2 with its own certificate; CN=first resent within the window still gets the
    CN=first certificate, never the newer attempt's."""
    key = ec.generate_private_key(ec.SECP256R1())
    _, first, _ = await h.post("/simpleenroll", csr(key, "first"))
    status, second, _ = await h.post("/simpleenroll", csr(key, "second"))
    assert status == 200 and issued_cn(second) == "second"
    status, again, _ = await h.post("/simpleenroll", csr(key, "first"))
    assert status == 200 and again == first
    stored = sorted(r.transaction_id for r in await h.requests())
    assert len(stored) == 2 and stored[1] == stored[0] + "#2"


async def test_a_pending_approval_stored_by_the_previous_version_finishes(h: H) -> None:
    """A request that answered 202 before the upgrade (its id in the previous form,
    ``key.<fingerprint>.<generation>``) is found by the client's repeat, and its certificate is
    delivered once approved -- no second request."""
    key = ec.generate_private_key(ec.SECP256R1())
    der = csr(key, "legacy", password=b"A")
    parsed = x509.load_der_x509_csr(der)
    stem = transaction_key(
        "approval", "approval-required", "alice", csr_spki_sha256(parsed), RequestKind.NEW, None
    )
    c = components_of(h.app)
    request = EnrollmentRequest(
        csr=parsed,
        template="approval-required",
        requester=Requester("est", "alice", "basic"),
        transaction_id=f"{stem}.{request_digest(der)[:32]}.0",
    )
    connector = c.policy.template("approval-required").connector
    stored, _ = await c.store.create_request(
        request_record(new_request_id(), datetime.now(UTC), request, connector=connector)
    )
    await c.store.set_pending(stored.id, PendingReason.APPROVAL)
    status, body, _ = await h.post("/approval/simpleenroll", csr(key, "legacy", password=b"B"))
    assert status == 202 and stored.id.encode() in body
    await c.service.approve(stored.id, "manager")
    status, body, _ = await h.post("/approval/simpleenroll", csr(key, "legacy", password=b"C"))
    assert status == 200, body
    assert issued_cn(body) == "legacy"
    assert [r.id for r in await h.requests()] == [stored.id]


async def test_a_keys_next_csr_is_signed_once(h: H, monkeypatch: pytest.MonkeyPatch) -> None:
    """EST reads the key's attempts and hands the service the next attempt's key, so CN=second
    is judged and signed once, stored as attempt 2 at once; it used to be judged and signed
    for attempt 1's key first, collide there, and be judged and signed again (a certificate
    signed for nobody). A third CSR goes to attempt 3 the same way."""
    signed = count_ca_signatures(monkeypatch)
    key = ec.generate_private_key(ec.SECP256R1())
    for n, cn in enumerate(("first", "second", "third"), start=1):
        status, body, _ = await h.post("/simpleenroll", csr(key, cn))
        assert status == 200 and issued_cn(body) == cn
        assert len(signed) == n
    stored = sorted(r.transaction_id for r in await h.requests())
    assert stored[1:] == [stored[0] + "#2", stored[0] + "#3"]
