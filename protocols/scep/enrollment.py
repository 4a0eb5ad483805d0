"""PKCSReq and RenewalReq (RFC 8894 §3.3.1): authenticate, pick the template, enroll.

Authentication, in order:

1. a transactionID already recorded with the same public key is a client retry (RFC 8894
   §3.2.1.1): the recorded outcome of the same request is returned and nothing is issued
   twice; a different CSR after a FAILURE or an issuance is judged afresh as a new attempt of
   the transaction, and refused while an attempt is pending (the service's retry mechanism,
   :mod:`gateway.service.retries`);
2. a message signed by a valid, unrevoked certificate of this CA (RenewalReq always, PKCSReq
   too: macOS renews that way) is a renewal authenticated by that certificate when the endpoint
   allows renewal (RFC 8894 §2.4, §3.3.1.2) -- but a certificate may only renew *itself*: the
   CSR must carry the same subject and the same subjectAltName set (the rule RFC 7030 §4.2.2
   sets for EST re-enrollment). Other names need the endpoint's normal authorization;
3. otherwise the signer must be self-signed with the CSR's key (proof of possession, RFC 8894
   §2.3), or, on an endpoint with ``signer = "any"`` (NDES clients sign with a throw-away key),
   any signer: the CSR's own signature proves possession and the CertRep is encrypted to the
   signer. The challenge must then satisfy the endpoint's mode (:mod:`protocols.scep.auth`).
   A self-signed signer is never a renewal authority.
"""

from __future__ import annotations

from cryptography import x509

from gateway.errors import BadCSR, BadRequest, Conflict
from gateway.model import (
    CertificateStatus,
    EnrollmentRequest,
    Outcome,
    Requester,
    RequestKind,
    RequestState,
    serial_hex,
)
from gateway.pkix import load_csr
from gateway.pkix.csr import spki_fingerprint
from gateway.service.retries import NextAttempt
from protocols.scep import transactions
from protocols.scep.config import Endpoint
from protocols.scep.messages import FailInfo, MessageError, MessageType, PKIMessage
from protocols.scep.state import Scep


def resolve_template(endpoint: Endpoint, csr: x509.CertificateSigningRequest) -> str:
    """The endpoint's template, or NDES-style by the CSR's keyUsage (protocols.md 1.6 item 35):
    digitalSignature only -> ``signature``, keyEncipherment only -> ``encryption``, both ->
    ``both``; anything else (or no mapping) falls back to ``template``."""
    if not endpoint.key_usage_templates:
        return endpoint.template
    try:
        ku = csr.extensions.get_extension_for_class(x509.KeyUsage).value
    except (x509.ExtensionNotFound, ValueError):
        return endpoint.template
    sign, encipher = ku.digital_signature, ku.key_encipherment
    key = "both" if sign and encipher else "signature" if sign else "encryption" if encipher else ""
    return endpoint.key_usage_templates.get(key, endpoint.template)


def renewal_transaction(transaction_id: str, signer: x509.Certificate) -> str:
    """The service's idempotency key for a renewal: the client's transactionID qualified by the
    certificate being renewed. Clients such as micromdm derive the transactionID from the public
    key, so a same-key renewal repeats the transactionID of the enrollment it renews; without
    the qualifier it would get the old certificate back instead of a new one."""
    return f"{transaction_id}/renewal/{serial_hex(signer.serial_number)}"


async def issued_by_us(scep: Scep, certificate: x509.Certificate) -> bool:
    """True if ``certificate`` is in the inventory, valid now, unrevoked, and verifies under
    the issuing CA (RFC 8894 §2.4: a renewal's signer must chain to this CA)."""
    chain = scep.ra.ca_chain
    if not chain or certificate.issuer != chain[0].subject:
        return False
    try:
        certificate.verify_directly_issued_by(chain[0])
    except Exception:  # InvalidSignature, ValueError, TypeError: not ours
        return False
    record = await scep.store.get_certificate(serial_hex(certificate.serial_number))
    now = scep.clock.now()
    return (
        record is not None
        and record.status is CertificateStatus.VALID
        and record.certificate == certificate
        and certificate.not_valid_before_utc <= now < certificate.not_valid_after_utc
    )


def _sans(extensions: x509.Extensions) -> frozenset[x509.GeneralName]:
    try:
        names = extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return frozenset()
    # The policy lower-cases DNS names when it shapes a certificate.
    return frozenset(
        x509.DNSName(n.value.lower()) if isinstance(n, x509.DNSName) else n for n in names
    )


def _names_differ(
    csr: x509.CertificateSigningRequest, subject: x509.Name, extensions: x509.Extensions
) -> str | None:
    try:
        csr_subject, csr_sans = csr.subject, _sans(csr.extensions)
    except ValueError as exc:
        return f"the CSR cannot be decoded: {exc}"
    if csr_subject != subject:
        return (
            f"the CSR subject {csr_subject.rfc4514_string()!r} differs from the signing "
            f"certificate's {subject.rfc4514_string()!r}"
        )
    if csr_sans != _sans(extensions):
        return "the CSR subjectAltName differs from the signing certificate's"
    return None


async def renewal_names_problem(
    scep: Scep, csr: x509.CertificateSigningRequest, certificate: x509.Certificate
) -> str | None:
    """Why ``csr`` is not a renewal of ``certificate`` (None if it is): a certificate may only
    renew itself, with the same subject and the same subjectAltName set (RFC 7030 §4.2.2's
    re-enrollment rule, applied to RFC 8894 §3.3.1.2 renewal) -- those of the certificate, or
    those of the CSR it was issued for (a template that builds the subject from the requester
    shapes a certificate whose names no CSR carries; repeating the authorized request is
    renewing itself too)."""
    problem = _names_differ(csr, certificate.subject, certificate.extensions)
    if problem is None:
        return None
    record = await scep.store.get_certificate(serial_hex(certificate.serial_number))
    original = None
    if record is not None and record.request_id is not None:
        original = await scep.store.get_request(record.request_id)
    if original is None:
        return problem
    try:
        first = x509.load_der_x509_csr(original.csr_der)
        if _names_differ(csr, first.subject, first.extensions) is None:
            return None
    except (ValueError, x509.InvalidVersion):
        pass
    return problem


async def enroll(scep: Scep, endpoint: Endpoint, message: PKIMessage, content: bytes) -> Outcome:
    """Serve a PKCSReq or RenewalReq; raises MessageError / CertgateError for FAILURE."""
    try:
        csr = load_csr(content)
    except BadCSR as exc:
        raise MessageError(FailInfo.BAD_REQUEST, exc.detail) from None
    spki = spki_fingerprint(csr.public_key())
    transactions.check_client_id(message.transaction_id)
    renewal_req = message.message_type == MessageType.RENEWAL_REQ
    template = resolve_template(endpoint, csr)
    signed_by_ours = await issued_by_us(scep, message.signer)
    if renewal_req and not endpoint.renewal:
        raise MessageError(FailInfo.BAD_REQUEST, "renewal is not enabled on this endpoint")
    if renewal_req and not signed_by_ours:
        raise MessageError(
            FailInfo.BAD_REQUEST,
            "a RenewalReq must be signed by a valid, unrevoked certificate from this CA",
        )
    names_problem = None
    if signed_by_ours:
        names_problem = await renewal_names_problem(scep, csr, message.signer)
    renewing = signed_by_ours and endpoint.renewal and names_problem is None
    if (
        not renewing
        and endpoint.signer != "any"
        and spki_fingerprint(message.signer.public_key()) != spki
    ):
        raise MessageError(
            FailInfo.BAD_MESSAGE_CHECK, "the signer's key is not the key of the request"
        )

    base = message.transaction_id
    if renewing:
        base = renewal_transaction(base, message.signer)
    try:
        # A retry of a recorded request gets its recorded outcome before any authorization
        # (its one-time challenge is spent); a changed CSR after a FAILURE (fixed subject,
        # fresh challenge) or an issuance (new names for the same key) is judged afresh by
        # the service as the transaction's next attempt, never answered with the certificate
        # or refusal of a request it is not. Another key, or a different CSR while one is
        # pending, is refused.
        # A transactionID whose attempts are used up goes on in its next generation.
        repeat, txn = await transactions.place(scep.service, scep.store, base, csr)
    except (Conflict, BadRequest) as exc:
        raise MessageError(FailInfo.BAD_REQUEST, exc.detail) from None
    if repeat is not None and not isinstance(repeat, NextAttempt):
        return repeat
    # stored at once as the transaction's next attempt, not at attempt 1 first (a collision
    # there came after the request was judged and signed: judged and signed twice)
    attempt = repeat.key if repeat is not None else None
    if renewing:
        record = await scep.store.get_certificate(serial_hex(message.signer.serial_number))
        assert record is not None
        requester = scep.authorizer.requester(endpoint, "certificate", record.requester)
        return await _submit(
            scep, csr, template, requester, txn, RequestKind.RENEWAL, message.signer, attempt
        )
    try:
        requester = await scep.authorizer.authorize(
            endpoint, csr, base, "RenewalReq" if renewal_req else "PKCSReq"
        )
    except MessageError as exc:
        if names_problem is None:
            raise
        raise MessageError(
            exc.fail_info,
            f"a certificate may only renew itself: {names_problem}; other names need the "
            f"endpoint's authorization ({exc.detail})",
        ) from None
    if endpoint.resync == "resend":
        resent = await _resend(scep, requester.principal, spki, template, csr)
        if resent is not None:
            return resent
    return await _submit(scep, csr, template, requester, txn, RequestKind.NEW, None, attempt)


async def _submit(
    scep: Scep,
    csr: x509.CertificateSigningRequest,
    template: str,
    requester: Requester,
    txn: str,
    kind: RequestKind,
    signer: x509.Certificate | None,
    attempt: str | None,
) -> Outcome:
    return await scep.service.enroll(
        EnrollmentRequest(
            csr=csr,
            template=template,
            requester=requester,
            transaction_id=txn,
            kind=kind,
            prior_certificate=signer if kind is RequestKind.RENEWAL else None,
        ),
        attempt,
    )


async def _resend(
    scep: Scep, principal: str, spki: str, template: str, csr: x509.CertificateSigningRequest
) -> Outcome | None:
    """RFC 8894 §5.2 resync with ``resync = "resend"``: a new PKCSReq for a key and subject that
    already has a valid certificate gets that certificate again instead of a second one."""
    for record in await scep.store.find_requests_by_key("scep", principal, spki, template):
        if record.state is RequestState.ISSUED and record.certificate_serial:
            cert = await scep.store.get_certificate(record.certificate_serial)
            now = scep.clock.now()
            if (
                cert is not None
                and cert.status is CertificateStatus.VALID
                and cert.not_after > now
                and cert.certificate.subject == csr.subject
            ):
                return await scep.service.outcome_of(record)
    return None
