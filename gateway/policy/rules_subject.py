"""Validate rules for the subject (MS-CRTD §2.28 msPKI-Certificate-Name-Flag; RFC 5280 §4.1.2.6).

Every RDN attribute must be allowed by a ``[[subject.rdn]]`` rule; RDN types without a rule
are denied rather than silently removed, so the certificate carries what was asked for or
nothing at all.
"""

from __future__ import annotations

import ipaddress

from cryptography import x509
from cryptography.x509.oid import NameOID

from gateway.errors import RuleCategory
from gateway.policy.context import Rule, Shaped, Stage
from gateway.policy.shape import MAX_CN_LENGTH
from gateway.policy.vocabulary import SubjectSource, rdn_label


def subject_source(shaped: Shaped) -> str | None:
    """``requester``: the CSR subject must be empty (the CA builds it); ``both``: a CSR CN
    must equal the requester principal. Either way the principal must fit a CN."""
    facts = shaped.facts
    source = facts.template.subject.source
    principal = facts.request.requester.principal
    if source is SubjectSource.REQUEST:
        return None
    if source is SubjectSource.REQUESTER and len(facts.subject) > 0:
        return (
            f"template {facts.template.name!r} builds the subject from the requester; the CSR "
            f"must carry an empty subject, not {facts.subject.rfc4514_string()!r}"
        )
    if source is SubjectSource.BOTH:
        for attribute in facts.subject.get_attributes_for_oid(NameOID.COMMON_NAME):
            if attribute.value != principal:
                return f"CSR CN {attribute.value!r} differs from the requester {principal!r}"
    if not 1 <= len(principal) <= MAX_CN_LENGTH:
        return f"requester principal must be 1..{MAX_CN_LENGTH} characters to become the CN"
    return None


def subject_rdn(shaped: Shaped) -> str | None:
    """Each CSR RDN attribute needs a rule, must full-match its pattern, and occur at most
    ``max`` times; ``required`` types must occur (a forced CN is exempt)."""
    policy = shaped.facts.template.subject
    if policy.source is SubjectSource.REQUESTER:
        return None
    forced_cn = policy.source is SubjectSource.BOTH
    counts: dict[x509.ObjectIdentifier, int] = {}
    for attribute in shaped.facts.subject:
        if forced_cn and attribute.oid == NameOID.COMMON_NAME:
            continue
        label = rdn_label(attribute.oid)
        rule = policy.rule_for(attribute.oid)
        if rule is None:
            template = shaped.facts.template.name
            return f"subject attribute {label} is not allowed by template {template!r}"
        value = attribute.value
        if not isinstance(value, str) or not rule.pattern.fullmatch(value):
            return f"subject {label}={value!r} does not match {rule.pattern.pattern!r}"
        counts[attribute.oid] = counts.get(attribute.oid, 0) + 1
        if counts[attribute.oid] > rule.max:
            return f"subject has more than {rule.max} {label} attribute(s)"
    for rule in policy.rdn:
        if forced_cn and rule.type == NameOID.COMMON_NAME:
            continue
        if rule.required and not counts.get(rule.type):
            return f"subject attribute {rule.label} is required"
    return None


def subject_empty(shaped: Shaped) -> str | None:
    """An empty subject needs ``subject.allow_empty`` and at least one SAN (RFC 5280
    §4.2.1.6: then the SAN extension is critical and the only identity)."""
    if len(shaped.subject) > 0:
        return None
    if not shaped.facts.template.subject.allow_empty:
        return f"template {shaped.facts.template.name!r} requires a non-empty subject"
    if not shaped.sans:
        return "an empty subject needs at least one subjectAltName (RFC 5280 §4.2.1.6)"
    return None


def cn_in_sans(shaped: Shaped) -> str | None:
    """With ``subject.cn_must_be_san``, every CN must repeat a dNSName (case-insensitively) or
    iPAddress SAN (CA/Browser Forum Baseline Requirements §7.1.4.3)."""
    if not shaped.facts.template.subject.cn_must_be_san:
        return None
    names = set(shaped.dns_names)
    addresses = {san.value for san in shaped.sans if isinstance(san, x509.IPAddress)}
    for attribute in shaped.subject.get_attributes_for_oid(NameOID.COMMON_NAME):
        value = attribute.value
        if not isinstance(value, str):
            return "the subject CN is not a string"
        if value.lower() in names or _address(value) in addresses:
            continue
        return f"subject CN {value!r} is not one of the DNS/IP subjectAltNames"
    return None


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


SUBJECT_RULES: tuple[Rule[Shaped], ...] = (
    Rule(
        "subject-source",
        Stage.VALIDATE,
        "subject comes from where the template says",
        subject_source,
        category=RuleCategory.SUBJECT,
    ),
    Rule(
        "subject-rdn",
        Stage.VALIDATE,
        "RDNs allowed, matching, counted",
        subject_rdn,
        category=RuleCategory.SUBJECT,
    ),
    Rule(
        "subject-empty",
        Stage.VALIDATE,
        "empty subject allowed and backed by a SAN",
        subject_empty,
        category=RuleCategory.SUBJECT,
    ),
    Rule(
        "cn-in-sans", Stage.VALIDATE, "CN repeats a SAN", cn_in_sans, category=RuleCategory.SUBJECT
    ),
)
