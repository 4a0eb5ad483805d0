"""The stored forms the service writes: a request record and an inventory record."""

from __future__ import annotations

from datetime import datetime

from cryptography import x509

from gateway.model import (
    CertificateRecord,
    CertificateStatus,
    EnrollmentRequest,
    IssuancePlan,
    Issued,
    Requester,
    RequestRecord,
    RequestState,
    serial_hex,
)
from gateway.pkix import san_strings
from gateway.policy import PolicyEngine, read_template_extension


def request_record(
    request_id: str,
    now: datetime,
    request: EnrollmentRequest,
    state: RequestState = RequestState.RECEIVED,
    certificate_serial: str | None = None,
    connector: str | None = None,
) -> RequestRecord:
    """The stored form of ``request``, received at ``now``; an in-process CA's issuance is
    recorded already issued (one transaction stores it with its certificate). ``connector``
    is recorded so that revocation reaches the CA that issued, whatever happens to the
    template later."""
    return RequestRecord(
        id=request_id,
        protocol=request.requester.protocol,
        transaction_id=request.transaction_id,
        template=request.template,
        kind=request.kind,
        requester=request.requester,
        csr_der=request.csr_der,
        spki_sha256=request.spki_sha256,
        state=state,
        created_at=now,
        updated_at=now,
        prior_serial=(
            serial_hex(request.prior_certificate.serial_number)
            if request.prior_certificate is not None
            else None
        ),
        not_before=request.not_before,
        not_after=request.not_after,
        certificate_serial=certificate_serial,
        connector=connector,
    )


class Inventory:
    """Builds inventory rows; caches the text of the (few) issuer names."""

    def __init__(self, policy: PolicyEngine) -> None:
        self._policy = policy
        self._issuer_names: dict[x509.Name, str] = {}

    def record(
        self,
        stored: RequestRecord,
        issued: Issued,
        template_major: int | None,
        signed_plan: IssuancePlan | None = None,
    ) -> CertificateRecord:
        """The inventory row for ``issued.certificate``. ``signed_plan`` is the plan an
        in-process CA signed as is (subject and SANs unchanged) with the first certificate of
        ``issued.chain``: its parsed names are used instead of decoding them again from the
        certificate. ``template_major`` None (a certificate from a CA poll): read what the CA
        wrote, else the template's current major version."""
        certificate = issued.certificate
        if template_major is None:
            ext = read_template_extension(certificate)
            template_major = (
                ext.major if ext else self._policy.template(stored.template).major_version
            )
        if signed_plan is not None:
            subject = signed_plan.subject.rfc4514_string()
            sans = san_strings(_plan_sans(signed_plan))
            issuer = issued.chain[0].subject if issued.chain else certificate.issuer
        else:
            subject = certificate.subject.rfc4514_string()
            sans = san_strings(certificate)
            issuer = certificate.issuer
        return CertificateRecord(
            serial=serial_hex(certificate.serial_number),
            request_id=stored.id,
            subject=subject,
            sans=sans,
            template=stored.template,
            template_major=template_major,
            requester=stored.requester.principal,
            not_before=certificate.not_valid_before_utc,
            not_after=certificate.not_valid_after_utc,
            status=CertificateStatus.VALID,
            der=issued.der,
            # the CA certifies the CSR's key, whose fingerprint the request record holds
            spki_sha256=stored.spki_sha256,
            issuer=self._issuer_name(issuer),
        )

    def _issuer_name(self, issuer: x509.Name) -> str:
        text = self._issuer_names.get(issuer)
        if text is None:
            text = self._issuer_names[issuer] = issuer.rfc4514_string()
        return text


def _plan_sans(plan: IssuancePlan) -> tuple[x509.GeneralName, ...]:
    for extension in plan.extensions:
        if isinstance(extension.value, x509.SubjectAlternativeName):
            return tuple(extension.value)
    return ()


def local_requester(principal: str) -> Requester:
    """The requester for ``certgate enroll`` run by an operator on the gateway host."""
    return Requester(protocol="cli", principal=principal, auth_method="local")
