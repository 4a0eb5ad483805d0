"""Shape: turn the checked facts into the certificate policy would issue.

Shaping never denies and never drops a requested name: it builds the subject per the template's
subject source, lists the CSR's SANs (DNS names lower-cased, exact duplicates merged), computes
the validity window and the extensions. Validate rules then judge the result.

Validity (documented behaviour):

* ``not_before = now - 5 minutes`` (clock-skew backdate); a client-requested ``not_before``
  (ACME newOrder, RFC 8555 §7.4) later than that is honoured, an earlier one is raised to it.
* ``not_after = min(now + template.validity, request.not_after, issuer_not_after)``: requests
  beyond the template's validity are clipped, not denied; a shorter requested ``not_after`` is
  honoured. If clipping leaves an empty window, rule ``validity`` denies.
* Both ends are truncated to whole seconds, the precision of X.509 Time (RFC 5280 §4.1.2.5).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPublicKeyTypes,
    CertificatePublicKeyTypes,
)
from cryptography.x509.oid import NameOID

from gateway.durations import format_duration
from gateway.policy.context import Facts, Shaped, key_algorithm
from gateway.policy.extensions import UNSUPPORTED_USAGES, end_entity_extensions
from gateway.policy.vocabulary import SubjectSource

#: Backdate of not_before so that clients with slightly slow clocks accept new certificates.
CLOCK_SKEW = timedelta(minutes=5)

#: RFC 5280 Appendix A ub-common-name.
MAX_CN_LENGTH = 64


def shape(facts: Facts) -> Shaped:
    """Build the planned certificate from ``facts`` (which passed the check stage)."""
    public_key = issuable_key(facts.public_key)
    algorithm = key_algorithm(public_key)
    if algorithm is None:  # pragma: no cover
        raise AssertionError("shape() called before rule key-algorithm passed")
    subject = build_subject(facts)
    san, san_notes = requested_sans(facts.extensions)
    not_before, not_after, validity_notes = validity_window(facts)
    dropped = facts.template.key_usage.usages & UNSUPPORTED_USAGES[algorithm]
    usage_notes = [
        f"key usage {name} dropped: not applicable to {algorithm.value} keys"
        for name in sorted(dropped)
    ]
    return Shaped(
        facts=facts,
        algorithm=algorithm,
        public_key=public_key,
        subject=subject,
        sans=() if san is None else tuple(san),
        not_before=not_before,
        not_after=not_after,
        extensions=end_entity_extensions(facts.template, algorithm, san, not subject.rdns),
        notes=(*validity_notes, *san_notes, *usage_notes),
    )


def issuable_key(key: CertificatePublicKeyTypes) -> CertificateIssuerPublicKeyTypes:
    """Narrow a CSR key to the types a certificate can carry (rule key-algorithm ran first)."""
    if isinstance(
        key,
        rsa.RSAPublicKey
        | ec.EllipticCurvePublicKey
        | ed25519.Ed25519PublicKey
        | ed448.Ed448PublicKey,
    ):
        return key
    raise AssertionError(f"{type(key).__name__} keys are refused by rule key-algorithm")


def build_subject(facts: Facts) -> x509.Name:
    """The subject per ``subject.source``: the CSR's, ``CN=<principal>``, or the CSR's RDNs
    with every CN replaced by ``CN=<principal>`` (appended last, the most specific RDN)."""
    source = facts.template.subject.source
    if source is SubjectSource.REQUEST:
        return facts.subject
    principal = facts.request.requester.principal
    cn = (
        [x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.COMMON_NAME, principal)])]
        if 1 <= len(principal) <= MAX_CN_LENGTH
        else []  # rule subject-source denies such a principal
    )
    if source is SubjectSource.REQUESTER:
        return x509.Name(cn)
    kept: list[x509.RelativeDistinguishedName] = []
    for rdn in facts.subject.rdns:
        attributes = [a for a in rdn if a.oid != NameOID.COMMON_NAME]
        if attributes:
            kept.append(x509.RelativeDistinguishedName(attributes))
    return x509.Name(kept + cn)


def requested_sans(
    extensions: x509.Extensions,
) -> tuple[x509.SubjectAlternativeName | None, list[str]]:
    """The CSR's SubjectAltName entries (extensionRequest, RFC 2985 §5.4.2), DNS names
    lower-cased (RFC 4343), exact duplicates merged; ``None`` without any. When nothing
    changes, the CSR's own parsed extension value is returned (the certificate carries it)."""
    try:
        requested = extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None, []
    sans: list[x509.GeneralName] = []
    changed = False
    for name in requested:
        if isinstance(name, x509.DNSName) and name.value != (lowered := name.value.lower()):
            name = x509.DNSName(lowered)
            changed = True
        if name in sans:
            changed = True
            continue
        sans.append(name)
    if not changed:
        return (requested if sans else None), []
    merged = len(requested) - len(sans)
    notes = [f"{merged} duplicate SAN(s) merged"] if merged else []
    return (x509.SubjectAlternativeName(sans) if sans else None), notes


def validity_window(facts: Facts) -> tuple[datetime, datetime, list[str]]:
    """``(not_before, not_after, notes)`` per the module docstring."""
    now = facts.now
    notes: list[str] = []
    not_before = now - CLOCK_SKEW
    if facts.request.not_before is not None:
        requested = as_utc(facts.request.not_before)
        if requested >= not_before:
            not_before = requested
        else:
            notes.append("requested notBefore raised to now - 5 minutes")
    limit = now + facts.template.validity
    not_after = limit
    if facts.request.not_after is not None:
        requested = as_utc(facts.request.not_after)
        if requested <= limit:
            not_after = requested
        else:
            notes.append(
                f"requested notAfter clipped to the template validity "
                f"({format_duration(facts.template.validity)})"
            )
    if facts.issuer_not_after is not None and facts.issuer_not_after < not_after:
        not_after = facts.issuer_not_after
        notes.append("notAfter clipped to the issuing CA's notAfter")
    return not_before.replace(microsecond=0), not_after.replace(microsecond=0), notes


def as_utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive datetime is taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
