"""Validate rules for subjectAltNames (RFC 5280 §4.2.1.6; ENROLLEE_SUPPLIES_SUBJECT_ALT_NAME).

A disallowed SAN denies the whole request: the plan lists exactly the SANs the CSR asked for.
DNS names were lower-cased by shaping; allow-lists compare lower-case names.
"""

from __future__ import annotations

import ipaddress
import re

from cryptography import x509

from gateway.errors import RuleCategory
from gateway.model import Identifier
from gateway.policy.context import Rule, Shaped, Stage
from gateway.policy.template import SanPolicy
from gateway.policy.vocabulary import SanType

_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")

_SAN_TYPES: dict[type, SanType] = {
    x509.DNSName: SanType.DNS,
    x509.IPAddress: SanType.IP,
    x509.RFC822Name: SanType.EMAIL,
    x509.UniformResourceIdentifier: SanType.URI,
}

_OTHER_KINDS: dict[type, str] = {
    x509.OtherName: "otherName",
    x509.DirectoryName: "directoryName",
    x509.RegisteredID: "registeredID",
}


def san_count(shaped: Shaped) -> str | None:
    """At most ``san.max_count`` SANs."""
    limit = shaped.facts.template.san.max_count
    if len(shaped.sans) > limit:
        return f"{len(shaped.sans)} subjectAltNames requested; template allows at most {limit}"
    return None


def san_required(shaped: Shaped) -> str | None:
    """With ``san.required``, at least one SAN."""
    if shaped.facts.template.san.required and not shaped.sans:
        return f"template {shaped.facts.template.name!r} requires at least one subjectAltName"
    return None


def san_type(shaped: Shaped) -> str | None:
    """Every SAN kind must be in ``san.types``; IP SANs must be single addresses."""
    allowed = shaped.facts.template.san.types
    for san in shaped.sans:
        kind = _SAN_TYPES.get(type(san))
        if kind is None:
            name = _OTHER_KINDS.get(type(san), type(san).__name__)
            return f"{name} subjectAltNames are not supported"
        if kind not in allowed:
            return (
                f"{kind.value} subjectAltName {san.value!s} is not allowed by template "
                f"{shaped.facts.template.name!r} (allowed: {', '.join(sorted(allowed)) or 'none'})"
            )
        if isinstance(san, x509.IPAddress) and not isinstance(
            san.value, ipaddress.IPv4Address | ipaddress.IPv6Address
        ):
            return f"IP subjectAltName {san.value} is a network, not an address"
    return None


def san_wildcard(shaped: Shaped) -> str | None:
    """Wildcard DNS names need ``san.allow_wildcards``."""
    if shaped.facts.template.san.allow_wildcards:
        return None
    for name in shaped.dns_names:
        if "*" in name:
            return (
                f"wildcard DNS name {name!r} is not allowed by template "
                f"{shaped.facts.template.name!r} (san.allow_wildcards)"
            )
    return None


def san_dns_syntax(shaped: Shaped) -> str | None:
    """DNS names use the preferred name syntax (RFC 5280 §4.2.1.6, RFC 1034 §3.5, A-labels);
    a wildcard is only a whole leftmost label above at least two labels."""
    for name in shaped.dns_names:
        reason = _dns_syntax_problem(name)
        if reason:
            return f"DNS name {name!r} {reason}"
    return None


def _dns_syntax_problem(name: str) -> str | None:
    if not name or len(name) > 253:
        return "must be 1..253 characters"
    labels = name.split(".")
    if labels[0] == "*":
        labels = labels[1:]
        if len(labels) < 2:
            return "has a wildcard directly above a top-level name"
    for label in labels:
        if not _LABEL.fullmatch(label):
            return f"has an invalid label {label!r}"
    return None


def dns_name_allowed(name: str, policy: SanPolicy) -> bool:
    """True if ``name`` (lower-case) passes the DNS allow-lists: a suffix ``.example.com``
    matches names below it, ``example.com`` matches itself and names below it, a regex must
    match the whole name. Empty lists allow every name."""
    if not policy.dns_suffixes and not policy.dns_regex:
        return True
    for suffix in policy.dns_suffixes:
        if suffix.startswith("."):
            if name.endswith(suffix) and len(name) > len(suffix):
                return True
        elif name == suffix or name.endswith("." + suffix):
            return True
    return any(pattern.fullmatch(name) for pattern in policy.dns_regex)


def san_dns_allow_list(shaped: Shaped) -> str | None:
    """Every DNS name must match ``san.dns_suffixes`` or ``san.dns_regex``."""
    policy = shaped.facts.template.san
    for name in shaped.dns_names:
        if not dns_name_allowed(name, policy):
            return (
                f"DNS name {name!r} is outside template {shaped.facts.template.name!r}'s allow-list"
            )
    return None


def san_uri_allow_list(shaped: Shaped) -> str | None:
    """Every URI must full-match one of ``san.uri_regex`` when that list is non-empty (e.g. the
    KB5014754 strong-mapping tag ``tag:microsoft.com,2022-09-14:sid:<SID>``)."""
    patterns = shaped.facts.template.san.uri_regex
    if not patterns:
        return None
    for san in shaped.sans:
        if isinstance(san, x509.UniformResourceIdentifier) and not any(
            pattern.fullmatch(san.value) for pattern in patterns
        ):
            return (
                f"URI {san.value!r} is outside template {shaped.facts.template.name!r}'s allow-list"
            )
    return None


def san_validated(shaped: Shaped) -> str | None:
    """With ``san.require_validated``, every dns/ip SAN must be a validated identifier (ACME
    authorizations, RFC 8555 §7.4: the CSR names exactly what the order proved)."""
    if not shaped.facts.template.san.require_validated:
        return None
    proven = {_normalize(i) for i in shaped.facts.request.validated_identifiers}
    for san in shaped.sans:
        if isinstance(san, x509.DNSName):
            wanted = Identifier("dns", san.value)
        elif isinstance(san, x509.IPAddress):
            wanted = Identifier("ip", str(san.value))
        else:
            continue
        if wanted not in proven:
            return f"{wanted.type} identifier {wanted.value!r} has not been validated"
    return None


def _normalize(identifier: Identifier) -> Identifier:
    if identifier.type == "dns":
        return Identifier("dns", identifier.value.lower().rstrip("."))
    if identifier.type == "ip":
        try:
            return Identifier("ip", str(ipaddress.ip_address(identifier.value)))
        except ValueError:
            return identifier
    return identifier


SAN_RULES: tuple[Rule[Shaped], ...] = (
    Rule(
        "san-count",
        Stage.VALIDATE,
        "not too many SANs",
        san_count,
        category=RuleCategory.IDENTIFIERS,
    ),
    Rule(
        "san-required",
        Stage.VALIDATE,
        "a SAN when required",
        san_required,
        category=RuleCategory.IDENTIFIERS,
    ),
    Rule(
        "san-type", Stage.VALIDATE, "SAN kinds allowed", san_type, category=RuleCategory.IDENTIFIERS
    ),
    Rule(
        "san-wildcard",
        Stage.VALIDATE,
        "wildcards only if allowed",
        san_wildcard,
        category=RuleCategory.IDENTIFIERS,
    ),
    Rule(
        "san-dns-syntax",
        Stage.VALIDATE,
        "DNS names well formed",
        san_dns_syntax,
        category=RuleCategory.IDENTIFIERS,
    ),
    Rule(
        "san-dns-allow-list",
        Stage.VALIDATE,
        "DNS names in the allow-list",
        san_dns_allow_list,
        category=RuleCategory.IDENTIFIERS,
    ),
    Rule(
        "san-uri-allow-list",
        Stage.VALIDATE,
        "URIs in the allow-list",
        san_uri_allow_list,
        category=RuleCategory.IDENTIFIERS,
    ),
    Rule(
        "san-validated",
        Stage.VALIDATE,
        "dns/ip SANs validated (ACME)",
        san_validated,
        category=RuleCategory.IDENTIFIERS,
    ),
)
