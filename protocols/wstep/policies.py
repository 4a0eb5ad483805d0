"""certgate templates as MS-XCEP policies (the CEP ``GetPolicies`` view of the template set).

Each :class:`gateway.policy.CertificateTemplate` becomes one XCEP ``policy`` whose MS-CRTD
flag words say what the template does (MS-CRTD §2.26-2.28, the values in protocols.md 4.4):

* ``subjectNameFlags``: ENROLLEE_SUPPLIES_SUBJECT (0x1) when the subject comes from the
  request, ENROLLEE_SUPPLIES_SUBJECT_ALT_NAME (0x10000) when any SAN type is allowed,
  SUBJECT_REQUIRE_COMMON_NAME (0x40000000) when certgate builds the subject;
* ``enrollmentFlags``: PEND_ALL_REQUESTS (0x2) for manager approval,
  PREVIOUS_APPROVAL_VALIDATE_REENROLLMENT (0x40) when renewals skip approval;
* ``privateKeyFlags``: REQUIRE_SAME_KEY_RENEWAL (0x80);
* ``extensions``: the KeyUsage and EKU extensions every certificate of the template gets.
"""

from __future__ import annotations

import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from gateway.codecs.ms.xcep import (
    AUTH_CERTIFICATE,
    AUTH_USERNAME,
    EnrollmentCA,
    Policy,
    PolicyDocument,
    PolicyExtension,
)
from gateway.model import Requester
from gateway.policy import CertificateTemplate, KeyAlgorithm, SubjectSource

ENROLLEE_SUPPLIES_SUBJECT = 0x1
ENROLLEE_SUPPLIES_SUBJECT_ALT_NAME = 0x10000
SUBJECT_REQUIRE_COMMON_NAME = 0x40000000
PEND_ALL_REQUESTS = 0x2
PREVIOUS_APPROVAL_VALIDATE_REENROLLMENT = 0x40
REQUIRE_SAME_KEY_RENEWAL = 0x80
_SHA256 = hashes.SHA256()


def template_policy(template: CertificateTemplate, requester: Requester) -> Policy:
    """The XCEP policy for ``template`` as ``requester`` sees it."""
    subject_flags = 0
    if template.subject.source in {SubjectSource.REQUEST, SubjectSource.BOTH}:
        subject_flags |= ENROLLEE_SUPPLIES_SUBJECT
    else:
        subject_flags |= SUBJECT_REQUIRE_COMMON_NAME
    if template.san.types:
        subject_flags |= ENROLLEE_SUPPLIES_SUBJECT_ALT_NAME
    enrollment_flags = 0
    if template.issuance.manager_approval:
        enrollment_flags |= PEND_ALL_REQUESTS
    if template.issuance.renewal_skips_approval:
        enrollment_flags |= PREVIOUS_APPROVAL_VALIDATE_REENROLLMENT
    key_policy = template.key_policy
    min_bits = key_policy.min_rsa_bits if KeyAlgorithm.RSA in key_policy.algorithms else 256
    return Policy(
        common_name=template.name,
        template_oid=template.oid,
        display_name=template.display_name,
        schema=template.schema_version,
        validity_seconds=int(template.validity.total_seconds()),
        renewal_seconds=int(template.renewal_period.total_seconds()),
        enroll=template.permissions.permits(requester),
        auto_enroll=False,
        minimal_key_length=min_bits,
        major_revision=template.major_version,
        minor_revision=template.minor_version,
        superseded=template.supersedes,
        private_key_flags=REQUIRE_SAME_KEY_RENEWAL if key_policy.require_same_key_renewal else 0,
        subject_name_flags=subject_flags,
        enrollment_flags=enrollment_flags,
        general_flags=0,
        extensions=_extensions(template),
    )


def _extensions(template: CertificateTemplate) -> tuple[PolicyExtension, ...]:
    usages = template.key_usage
    flags = {name: name in usages.usages for name in _KU_FIELDS}
    ku = x509.KeyUsage(**flags)
    out = [PolicyExtension(x509.OID_KEY_USAGE.dotted_string, usages.critical, ku.public_bytes())]
    if usages.ekus:
        eku = x509.ExtendedKeyUsage(list(usages.ekus))
        out.append(
            PolicyExtension(x509.OID_EXTENDED_KEY_USAGE.dotted_string, False, eku.public_bytes())
        )
    return tuple(out)


_KU_FIELDS = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
    "encipher_only",
    "decipher_only",
)


def policy_document(
    templates: list[CertificateTemplate],
    requester: Requester,
    *,
    issuing_ca: x509.Certificate,
    ces_uris: list[tuple[int, str]],
    friendly_name: str,
    next_update_hours: int,
) -> PolicyDocument:
    """The ``GetPoliciesResponse`` content for ``requester``: the templates it may enroll for,
    one CA (this gateway) reachable at ``ces_uris`` ((clientAuthentication, uri) pairs)."""
    visible = sorted(
        (t for t in templates if t.permissions.permits(requester)), key=lambda t: t.name
    )
    policies = tuple(template_policy(t, requester) for t in visible)
    digest = hashlib.sha256()
    for t in visible:
        digest.update(f"{t.name}\0{t.oid}\0{t.major_version}\0{t.minor_version}\n".encode())
    digest.update(issuing_ca.fingerprint(_SHA256))
    uris = tuple(
        (auth, uri, priority, False) for priority, (auth, uri) in enumerate(ces_uris, start=1)
    )
    ca = EnrollmentCA(
        reference=0,
        uris=uris,
        certificate=issuing_ca.public_bytes(serialization.Encoding.DER),
    )
    return PolicyDocument(
        policy_id=f"{{{_uuid(digest.digest())}}}",
        friendly_name=friendly_name,
        next_update_hours=next_update_hours,
        policies=policies,
        cas=(ca,),
    )


def _uuid(raw: bytes) -> str:
    h = raw[:16].hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


__all__ = ["AUTH_CERTIFICATE", "AUTH_USERNAME", "policy_document", "template_policy"]
