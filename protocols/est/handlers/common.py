"""Steps shared by the POST operations: media type, bounded body, CSR, proof-of-possession link,
submitting to the service with EST idempotency, and delivery bookkeeping."""

from __future__ import annotations

from aiohttp import web
from cryptography import x509
from cryptography.x509.oid import ObjectIdentifier

from gateway.errors import BadCSR, Conflict, ErrorCode, PolicyDenied, Unauthorized
from gateway.model import (
    Denied,
    EnrollmentRequest,
    Outcome,
    Pending,
    Requester,
    RequestKind,
    serial_hex,
)
from gateway.pkix.csr import csr_spki_sha256
from gateway.policy.context import Facts
from gateway.policy.rules_request import csr_signature
from protocols.est.auth import Authenticated, authenticate
from protocols.est.context import EstContext, Refusal
from protocols.est.messages import (
    PKCS10,
    challenge_password,
    media_type,
    parse_csr_body,
    request_fingerprint,
    tls_unique_matches,
)
from protocols.est.render import denied_reply, text
from protocols.est.settings import LabelSettings
from protocols.est.tls import TransportFacts
from protocols.est.transactions import Transaction, find_transaction

#: id-kp-cmcRA (RFC 6402 §2.10).
CMC_RA = ObjectIdentifier("1.3.6.1.5.5.7.3.28")


async def authenticated_csr(
    request: web.Request, est: EstContext, label: LabelSettings, transport: TransportFacts
) -> tuple[Authenticated, x509.CertificateSigningRequest]:
    """The prologue of simpleenroll and serverkeygen: authenticate the client (RFC 7030 §3.2.3),
    read the CSR, and check its proof-of-possession link (§3.5)."""
    auth = await authenticate(
        label=label,
        transport=transport,
        authorization=request.headers.get("Authorization"),
        own_chain=est.own_chain,
        state=est.state,
        lookup=est.store.get_certificate,
        now=est.now(),
    )
    csr = await read_csr(request, est)
    check_pop_link(csr, label, transport, auth)
    return auth, csr


async def read_csr(request: web.Request, est: EstContext) -> x509.CertificateSigningRequest:
    """RFC 7030 §4.2.1: ``application/pkcs10`` (case-insensitive, parameters ignored; else 415),
    a body of at most ``[est] max_body_bytes`` (else 413), base64 DER PKCS#10 (else 400)."""
    found = media_type(request.headers.get("Content-Type"))
    if found != PKCS10:
        raise Refusal(text(415, f"expected Content-Type {PKCS10}, got {found or 'none'!r}"))
    limit = est.settings.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise Refusal(text(413, f"request body larger than {limit} bytes"))
    body = bytearray()
    async for chunk in request.content.iter_chunked(16384):
        body += chunk
        if len(body) > limit:
            raise Refusal(text(413, f"request body larger than {limit} bytes"))
    return parse_csr_body(bytes(body))


def spki_of(csr: x509.CertificateSigningRequest) -> str:
    """The CSR key's fingerprint; the service reuses it for the same CSR object."""
    try:
        return csr_spki_sha256(csr)
    except (ValueError, TypeError) as exc:
        raise BadCSR(f"the CSR public key cannot be used: {str(exc)[:120]}") from None


def is_registration_authority(auth: Authenticated | None) -> bool:
    """RFC 7030 §3.7: a client certificate issued by this CA with EKU id-kp-cmcRA
    (1.3.6.1.5.5.7.3.28) denotes an RA, which enrolls for others."""
    if auth is None or auth.own_certificate is None or auth.client_certificate is None:
        return False
    try:
        ekus = auth.client_certificate.extensions.get_extension_for_class(
            x509.ExtendedKeyUsage
        ).value
    except (x509.ExtensionNotFound, ValueError):
        return False
    return CMC_RA in ekus


def check_pop_link(
    csr: x509.CertificateSigningRequest,
    label: LabelSettings,
    transport: TransportFacts,
    auth: Authenticated | None = None,
) -> None:
    """RFC 7030 §3.5 proof-of-possession linking. A challengePassword is checked against
    base64(tls-unique) whenever tls-unique exists (TLS <= 1.2 on our listener); the label's
    ``require_pop_link`` refuses CSRs without it, again only when tls-unique exists. TLS 1.3
    (no tls-unique, RFC 8446 App. C.5) and proxied connections are never refused for it, and
    neither is an RA (§3.7: the CSR it forwards was linked to the device's own session)."""
    binding = transport.tls_unique if transport.via == "tls" else None
    if binding is None or is_registration_authority(auth):
        return
    password = challenge_password(csr)
    if password is None:
        if label.require_pop_link:
            raise PolicyDenied(
                "est-pop-link",
                "this label requires the tls-unique value in the CSR challengePassword "
                "(RFC 7030 §3.5)",
            )
        return
    if not tls_unique_matches(password, binding):
        raise PolicyDenied(
            "est-pop-link",
            "the CSR challengePassword does not match this TLS session's tls-unique "
            "(RFC 7030 §3.5)",
        )


async def submit(
    est: EstContext,
    label: LabelSettings,
    auth: Authenticated,
    requester: Requester,
    csr: x509.CertificateSigningRequest,
    *,
    kind: RequestKind = RequestKind.NEW,
    prior: x509.Certificate | None = None,
    superseded_by: str | None = None,
) -> Outcome:
    """Enroll under the derived EST transaction (:mod:`protocols.est.transactions`; the
    service replays a repeat and judges anything else afresh), enforce one-time codes, and
    record the delivery of a final answer."""
    spki = spki_of(csr)
    try:
        txn = await find_transaction(
            est.store,
            est.state,
            label=label.label,
            template=label.template,
            principal=requester.principal,
            spki=spki,
            kind=kind,
            prior=serial_hex(prior.serial_number) if prior is not None else None,
            digest=request_fingerprint(csr),
            retry_window=est.settings.retry_window,
            now=est.now(),
        )
    except Conflict as conflict:
        await _refused(est, requester, "est-pending-request", conflict.detail)
        raise
    if superseded_by and not txn.retry:
        raise PolicyDenied(
            "est-client-certificate",
            f"the client certificate was already renewed (superseded by serial {superseded_by})",
        )
    request = EnrollmentRequest(
        csr=csr,
        template=label.template,
        requester=requester,
        transaction_id=txn.transaction_id,
        kind=kind,
        prior_certificate=prior,
    )
    if txn.retry:
        # A retry is answered with the recorded outcome only if this CSR, too, proves
        # possession of the key (issue #12: a broken signature must not fetch a certificate).
        reason = csr_signature(
            Facts(
                request,
                est.policy.template(label.template),
                est.policy.catalog,
                est.now(),
                None,
                approved=False,
            )
        )
        if reason is not None:
            await _refused(est, requester, "csr-signature", reason, txn.attempt)
            raise Refusal(
                denied_reply(
                    Denied(ErrorCode.POLICY_DENIED.value, reason, "csr-signature"),
                    realm=est.settings.realm,
                )
            )
    await _spend_code(est, auth, spki, txn)
    outcome = await est.service.enroll(request, attempt=txn.store_as)
    if isinstance(outcome, Pending):
        await est.state.mark_pending(await _attempt_of(est, txn, outcome))
    elif txn.retry and txn.attempt is not None:
        await est.state.mark_delivered(txn.attempt)
    return outcome


async def _attempt_of(est: EstContext, txn: Transaction, pending: Pending) -> str:
    """The stored key of the attempt that answered 202 (the service chooses it for a new
    request: ``<id>#<n>`` for a transaction's later attempts)."""
    if txn.retry and txn.attempt is not None:
        return txn.attempt
    stored = await est.store.get_request(pending.request_id)
    return stored.transaction_id if stored is not None else txn.transaction_id


async def _refused(
    est: EstContext,
    requester: Requester,
    rule: str,
    reason: str,
    transaction_id: str | None = None,
) -> None:
    """Audit a refusal decided here, before the service records a request."""
    detail = {"rule": rule, "reason": reason, "transaction_id": transaction_id}
    await est.store.audit("est.request.refused", requester.principal, detail=detail)


async def _spend_code(est: EstContext, auth: Authenticated, spki: str, txn: Transaction) -> None:
    code = auth.code
    if code is None:
        return
    if code.used_at is None and await est.state.bind_code(code, spki):
        return
    current = await est.state.get_code_by_hash(code.code_hash)
    if current is not None and current.spki_sha256 == spki and txn.retry:
        return  # the retry of the enrollment this code already started
    raise Unauthorized("the enrollment code has already been used")
