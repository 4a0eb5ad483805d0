"""Certification Authority Authorization (RFC 8659), with the ACME parameters ``accounturi``
and ``validationmethods`` (RFC 8657); a refusal is the ACME ``caa`` problem (RFC 8555 §6.7).

The decision is pure (:func:`evaluate` on parsed records). :func:`relevant_rrset` finds the
Relevant RRset (RFC 8659 §3) by asking for CAA at the name, then at each parent up to the TLD,
through the resolver dns-01 uses; the resolver follows CNAMEs inside each answer. An empty
answer or NXDOMAIN moves one label up; nothing found anywhere means no restriction. Any other
DNS outcome (SERVFAIL, REFUSED, timeout) refuses issuance: a CA cannot know what it did not
see.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.name
import dns.resolver

#: Property tags this CA understands (RFC 8659 §4.2-§4.4). ``iodef`` is understood and
#: ignored (no incident reports are sent); a *critical* property with any other tag forbids
#: issuance (RFC 8659 §4.1).
KNOWN_TAGS = frozenset({"issue", "issuewild", "iodef"})
#: RFC 8659 §4.2 ``label`` (also the parameter ``tag``): letters and digits, inner hyphens.
_LABEL = re.compile(r"^[A-Za-z0-9](?:-*[A-Za-z0-9])*$")
#: RFC 8659 §4.2 parameter ``value``: printable ASCII except ';'.
_VALUE = re.compile(r"^[\x21-\x3a\x3c-\x7e]*$")
_WSP = " \t"


class CaaRefused(Exception):
    """CAA forbids issuance for one name, or could not be checked; ``str()`` says why."""


@dataclass(frozen=True)
class CaaRecord:
    """One CAA resource record (RFC 8659 §4.1): flags, tag (lower-cased: tags match
    case-insensitively) and value."""

    flags: int
    tag: str
    value: str

    @property
    def critical(self) -> bool:
        """The Issuer Critical Flag, bit 0 (0x80) of the flags octet (RFC 8659 §4.1)."""
        return bool(self.flags & 0x80)


@dataclass(frozen=True)
class IssueValue:
    """A parsed ``issue``/``issuewild`` value (RFC 8659 §4.2): the issuer domain name
    (``None`` for an empty one, which authorizes no CA) and its parameters."""

    issuer: str | None
    parameters: dict[str, str]


def parse_issue_value(text: str) -> IssueValue | None:
    """``issue-value = *WSP [issuer-domain-name *WSP] [";" *WSP [parameters *WSP]]``; ``None``
    when malformed (such a property authorizes no CA). Parameter tags are compared
    case-insensitively; a parameter given twice makes the value malformed."""
    domain, sep, rest = text.partition(";")
    domain = domain.strip(_WSP)
    if domain and not all(_LABEL.match(label) for label in domain.split(".")):
        return None
    parameters: dict[str, str] = {}
    if sep:
        for item in rest.split(";"):
            item = item.strip(_WSP)
            if not item:
                continue
            tag, eq, value = item.partition("=")
            tag, value = tag.strip(_WSP), value.strip(_WSP)
            if not eq or not _LABEL.match(tag) or not _VALUE.match(value):
                return None
            if tag.lower() in parameters:
                return None
            parameters[tag.lower()] = value
    return IssueValue(domain.lower() or None, parameters)


def evaluate(
    records: Sequence[CaaRecord],
    identities: Sequence[str],
    *,
    wildcard: bool,
    account_uri: str,
    method: str | None,
) -> str | None:
    """Decide from the Relevant RRset: ``None`` if this CA (named by ``identities``) may
    issue, else the reason. RFC 8659 §4.1 critical unknown tags, §4.2 ``issue``, §4.3
    ``issuewild`` (for a wildcard name it replaces ``issue`` when present); RFC 8657 §3
    ``accounturi`` must equal the ACME account URL, §4 ``validationmethods`` must list the
    method that validated the name (``None``: pre-authorized, no ACME method). Unknown
    parameters are ignored."""
    for record in records:
        if record.critical and record.tag not in KNOWN_TAGS:
            return f"critical CAA property with unknown tag {record.tag!r}"
    tag = "issue"
    if wildcard and any(r.tag == "issuewild" for r in records):
        tag = "issuewild"
    properties = [r for r in records if r.tag == tag]
    if not properties:
        return None  # the domain restricts nothing this request needs
    why: list[str] = []
    for record in properties:
        parsed = parse_issue_value(record.value)
        if parsed is None:
            why.append(f"malformed {tag} value {record.value!r}")
            continue
        if parsed.issuer is None or parsed.issuer not in identities:
            continue
        uri = parsed.parameters.get("accounturi")
        if uri is not None and uri != account_uri:
            why.append("accounturi names another account")
            continue
        methods = parsed.parameters.get("validationmethods")
        if methods is not None and (method is None or method not in methods.split(",")):
            why.append(f"validationmethods {methods!r} excludes {method or 'pre-authorization'}")
            continue
        return None
    detail = f"no CAA {tag} property authorizes {', '.join(identities)}"
    return f"{detail} ({'; '.join(why)})" if why else detail


async def relevant_rrset(
    resolver: dns.asyncresolver.Resolver, name: str
) -> tuple[str, list[CaaRecord]]:
    """RFC 8659 §3: the first non-empty CAA RRset at ``name`` or a parent (TLD included,
    root excluded); ``(name, [])`` when there is none. Raises :class:`CaaRefused` when a
    lookup fails."""
    labels = name.rstrip(".").split(".")
    for i in range(len(labels)):
        candidate = ".".join(labels[i:])
        try:
            answer = await resolver.resolve(dns.name.from_text(candidate), "CAA", search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            continue
        except dns.resolver.NoNameservers:
            raise CaaRefused(f"SERVFAIL looking up CAA for {candidate}") from None
        except dns.exception.Timeout:
            raise CaaRefused(f"timeout looking up CAA for {candidate}") from None
        except dns.exception.DNSException as exc:
            raise CaaRefused(f"looking up CAA for {candidate}: {type(exc).__name__}") from None
        records = [
            CaaRecord(
                int(r.flags),
                r.tag.decode("ascii", "replace").lower(),
                r.value.decode("utf-8", "replace"),
            )
            for r in answer
        ]
        if records:
            return candidate, records
    return name, []


async def check(
    resolver: dns.asyncresolver.Resolver,
    name: str,
    *,
    wildcard: bool,
    identities: Sequence[str],
    account_uri: str,
    method: str | None,
) -> None:
    """Raise :class:`CaaRefused` unless CAA lets this CA issue for ``name`` (``*.name`` when
    ``wildcard``)."""
    owner, records = await relevant_rrset(resolver, name)
    reason = evaluate(
        records, identities, wildcard=wildcard, account_uri=account_uri, method=method
    )
    if reason is not None:
        shown = f"*.{name}" if wildcard else name
        raise CaaRefused(f"CAA records at {owner} forbid issuance for {shown}: {reason}")
