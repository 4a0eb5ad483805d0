"""ACME wire codecs (RFC 8555, 8737, 8738, 9773, draft-ietf-acme-profiles): pure functions.

Problem documents (RFC 8555 §6.7, RFC 7807), base64url, Boulder-style JSON, identifiers
(§7.1.3, RFC 8738), payload parsers for newOrder/finalize/revokeCert, key authorizations
(§8.1), the dns-01 digest (§8.4), the tls-alpn-01 extension (RFC 8737 §3) and the ARI
certificate identifier (RFC 9773 §4.1). No aiohttp, no I/O.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

from protocols.acme.json_text import indented

ERROR_NS = "urn:ietf:params:acme:error:"
_B64URL = re.compile(r"^[A-Za-z0-9_-]*$")
_DNS_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_RFC3339 = "%04d-%02d-%02dT%02d:%02d:%02dZ"


def b64e(data: bytes) -> str:
    """base64url without padding (RFC 8555 §6.1, RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64d(text: str) -> bytes:
    """Strict base64url decoding: only the URL-safe alphabet, no padding; ``ValueError``."""
    if not isinstance(text, str) or not _B64URL.match(text) or len(text) % 4 == 1:
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error:
        raise ValueError("not base64url") from None


def canonical_json(obj: Any) -> bytes:
    """Compact JSON with sorted keys (RFC 7638 §3.3 thumbprint input)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def dumps(obj: Any) -> bytes:
    """JSON as Boulder writes it (Go ``MarshalIndent(v, "", "  ")``): two-space indent, one
    member per line, ``"key": "value"``. Shell clients (acme.sh, getssl) parse this with sed.

    The bytes are exactly ``json.dumps(obj, indent=2, ensure_ascii=False)``'s, written by
    :func:`protocols.acme.json_text.indented` at half the cost (see there why); anything but
    plain JSON types still goes to ``json.dumps``."""
    text = indented(obj)
    if text is None:
        return json.dumps(obj, indent=2, ensure_ascii=False).encode()
    return text.encode()


def rfc3339(when: datetime) -> str:
    """RFC 3339 timestamp in UTC with a ``Z`` suffix (RFC 8555 §7.1), to the second. Written
    with ``%`` on its fields: ``strftime`` costs twice as many instructions, and every order,
    authorization and challenge a client reads carries one."""
    t = when.astimezone(UTC)
    return _RFC3339 % (t.year, t.month, t.day, t.hour, t.minute, t.second)


def parse_rfc3339(value: Any, name: str) -> datetime:
    """Parse an RFC 3339 timestamp; ``malformed`` if it is not one or lacks a zone."""
    if not isinstance(value, str):
        raise Problem.malformed(f"{name} must be an RFC 3339 timestamp")
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise Problem.malformed(f"{name} is not an RFC 3339 timestamp") from None
    if when.tzinfo is None:
        raise Problem.malformed(f"{name} must carry a time zone")
    return when.astimezone(UTC)


# --- problems (RFC 8555 §6.7) ---------------------------------------------------------------


@dataclass
class Problem(Exception):
    """An ACME problem document that is also an exception. ``kind`` is the short error type
    (``badNonce``); ``status`` the HTTP status (protocols.md 3.8); ``links`` extra ``Link``
    header values (added beside the directory's ``rel="index"``)."""

    kind: str
    detail: str
    status: int = 400
    subproblems: Sequence[dict[str, Any]] = ()
    extra: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    links: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(f"{self.kind}: {self.detail}")

    @property
    def type(self) -> str:
        return ERROR_NS + self.kind

    def document(self) -> dict[str, Any]:
        """The RFC 7807 document (``type``, ``detail``, ``status``, optional members)."""
        doc: dict[str, Any] = {"type": self.type, "detail": self.detail, "status": self.status}
        doc.update(self.extra)
        if self.subproblems:
            doc["subproblems"] = list(self.subproblems)
        return doc

    # One constructor per problem type, each with its status (Pebble acme/problems.go).
    @classmethod
    def malformed(cls, detail: str, status: int = 400) -> Problem:
        return cls("malformed", detail, status)

    @classmethod
    def unauthorized(cls, detail: str, status: int = 403) -> Problem:
        return cls("unauthorized", detail, status)

    @classmethod
    def bad_nonce(cls, detail: str = "JWS has an invalid anti-replay nonce") -> Problem:
        return cls("badNonce", detail)

    @classmethod
    def bad_signature_algorithm(
        cls, alg: str, algorithms: Sequence[str], why: str = "is not supported"
    ) -> Problem:
        return cls(
            "badSignatureAlgorithm",
            f"JWS algorithm {alg!r} {why}",
            400,
            extra={"algorithms": list(algorithms)},
        )

    @classmethod
    def bad_public_key(cls, detail: str) -> Problem:
        return cls("badPublicKey", detail)

    @classmethod
    def account_does_not_exist(cls, detail: str = "no account exists with this key") -> Problem:
        return cls("accountDoesNotExist", detail)

    @classmethod
    def bad_csr(cls, detail: str) -> Problem:
        return cls("badCSR", detail)

    @classmethod
    def order_not_ready(cls, detail: str) -> Problem:
        return cls("orderNotReady", detail, 403)

    @classmethod
    def rejected_identifier(
        cls, detail: str, subproblems: Sequence[dict[str, Any]] = ()
    ) -> Problem:
        return cls("rejectedIdentifier", detail, 400, subproblems)

    @classmethod
    def unsupported_identifier(cls, detail: str) -> Problem:
        return cls("unsupportedIdentifier", detail)

    @classmethod
    def invalid_profile(cls, detail: str) -> Problem:
        return cls("invalidProfile", detail)

    @classmethod
    def already_revoked(cls, detail: str = "certificate is already revoked") -> Problem:
        return cls("alreadyRevoked", detail)

    @classmethod
    def already_replaced(cls, detail: str) -> Problem:
        return cls("alreadyReplaced", detail, 409)

    @classmethod
    def bad_revocation_reason(cls, allowed: Sequence[int]) -> Problem:
        codes = ", ".join(str(c) for c in allowed)
        return cls("badRevocationReason", f"revocation reason not allowed; allowed: {codes}")

    @classmethod
    def rate_limited(cls, detail: str, retry_after: int) -> Problem:
        return cls("rateLimited", detail, 429, headers={"Retry-After": str(retry_after)})

    @classmethod
    def external_account_required(cls) -> Problem:
        return cls("externalAccountRequired", "an external account binding is required", 403)

    @classmethod
    def invalid_contact(cls, detail: str) -> Problem:
        return cls("invalidContact", detail)

    @classmethod
    def unsupported_contact(cls, detail: str) -> Problem:
        return cls("unsupportedContact", detail)

    @classmethod
    def user_action_required(
        cls, detail: str, *, terms: str | None = None, instance: str | None = None
    ) -> Problem:
        """RFC 8555 §7.3.3: 403, ``Link: <terms>;rel="terms-of-service"`` and an ``instance``
        URL where a person finds out how to agree."""
        links = [f'<{terms}>;rel="terms-of-service"'] if terms else []
        extra = {"instance": instance} if instance else {}
        return cls("userActionRequired", detail, 403, extra=extra, links=links)

    @classmethod
    def caa(cls, detail: str, subproblems: Sequence[dict[str, Any]] = ()) -> Problem:
        """RFC 8555 §6.7 / RFC 8659: CAA records forbid this CA from issuing (403)."""
        return cls("caa", detail, 403, subproblems)

    @classmethod
    def server_internal(cls, detail: str, status: int = 500) -> Problem:
        return cls("serverInternal", detail, status)


# --- identifiers (RFC 8555 §7.1.3, §7.1.4; RFC 8738) -----------------------------------------


@dataclass(frozen=True, order=True)
class AcmeIdentifier:
    """A ``dns`` or ``ip`` identifier in canonical form (lower-case DNS, RFC 5952 IPv6)."""

    type: str
    value: str

    @property
    def wildcard(self) -> bool:
        return self.type == "dns" and self.value.startswith("*.")

    @property
    def authz_value(self) -> str:
        """What the authorization is for: the base domain of a wildcard (§7.1.4)."""
        return self.value[2:] if self.wildcard else self.value

    def to_json(self) -> dict[str, str]:
        return {"type": self.type, "value": self.value}


def parse_identifier(obj: Any) -> AcmeIdentifier:
    """One identifier object; ``malformed``, ``unsupportedIdentifier`` or
    ``rejectedIdentifier`` (a syntactically impossible name)."""
    if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
        raise Problem.malformed("identifier must be an object with 'type' and 'value'")
    kind, value = obj["type"], obj.get("value")
    if not isinstance(value, str) or not value:
        raise Problem.malformed("identifier value must be a non-empty string")
    if kind == "ip":
        try:
            return AcmeIdentifier("ip", str(ipaddress.ip_address(value)))
        except ValueError:
            raise Problem.malformed(f"{value!r} is not an IP address") from None
    if kind != "dns":
        raise Problem.unsupported_identifier(f"identifier type {kind!r} is not supported")
    name = value.lower()
    labels = name.split(".")
    body = labels[1:] if labels[0] == "*" else labels
    if (
        len(name) > 253
        or len(labels) < 2
        or not all(_DNS_LABEL.match(label) for label in body)
        or body[-1].isdigit()
    ):
        raise Problem.rejected_identifier(f"{value!r} is not a valid DNS name")
    return AcmeIdentifier("dns", name)


def parse_identifiers(items: Any, limit: int) -> tuple[AcmeIdentifier, ...]:
    """The ``identifiers`` array of newOrder, de-duplicated and sorted."""
    if not isinstance(items, list) or not items:
        raise Problem.malformed("identifiers must be a non-empty array")
    if len(items) > limit:
        raise Problem.rejected_identifier(f"at most {limit} identifiers per order")
    return tuple(sorted({parse_identifier(item) for item in items}))


@dataclass(frozen=True)
class NewOrder:
    """The newOrder payload (RFC 8555 §7.4, RFC 9773 §5, profiles §4)."""

    identifiers: tuple[AcmeIdentifier, ...]
    not_before: datetime | None
    not_after: datetime | None
    replaces: str | None
    profile: str | None


def parse_new_order(payload: dict[str, Any], limit: int = 100) -> NewOrder:
    """Parse newOrder; unknown members are ignored (RFC 8555 §7.4)."""
    ids = parse_identifiers(payload.get("identifiers"), limit)
    nb = payload.get("notBefore")
    na = payload.get("notAfter")
    not_before = parse_rfc3339(nb, "notBefore") if nb is not None else None
    not_after = parse_rfc3339(na, "notAfter") if na is not None else None
    if not_before and not_after and not_after <= not_before:
        raise Problem.malformed("notAfter must be after notBefore")
    replaces = payload.get("replaces")
    if replaces is not None and (not isinstance(replaces, str) or not replaces):
        raise Problem.malformed("replaces must be a certificate identifier string")
    profile = payload.get("profile")
    if profile is not None and not isinstance(profile, str):
        raise Problem.malformed("profile must be a string")
    return NewOrder(ids, not_before, not_after, replaces, profile or None)


def parse_b64_der(payload: dict[str, Any], member: str) -> bytes:
    """A base64url DER member (``csr`` §7.4, ``certificate`` §7.6)."""
    value = payload.get(member)
    if not isinstance(value, str) or not value:
        raise Problem.malformed(f"{member} must be a base64url string")
    try:
        return b64d(value)
    except ValueError:
        raise Problem.malformed(f"{member} is not base64url") from None


def csr_identifiers(csr: x509.CertificateSigningRequest) -> set[AcmeIdentifier]:
    """The dns/ip identifiers a CSR asks for: SAN dNSName and iPAddress, plus a CN (which must
    name one of them). Other SAN types raise ``badCSR`` (RFC 8555 §7.4, RFC 8738 §3)."""
    found: set[AcmeIdentifier] = set()
    san: x509.Extension[x509.SubjectAlternativeName] | None
    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        san = None
    except ValueError:
        raise Problem.bad_csr("CSR extensions are malformed") from None
    if san is not None:
        for name in san.value:
            if isinstance(name, x509.DNSName):
                found.add(AcmeIdentifier("dns", name.value.lower()))
            elif isinstance(name, x509.IPAddress):
                found.add(AcmeIdentifier("ip", str(name.value)))
            else:
                raise Problem.bad_csr("CSR may only contain DNS and IP subjectAltNames")
    for attr in csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME):
        cn = str(attr.value).lower()
        if AcmeIdentifier("dns", cn) not in found and not any(i.value == cn for i in found):
            raise Problem.bad_csr(f"CSR common name {cn!r} is not one of its subjectAltNames")
    return found


# --- ARI (RFC 9773 §4.1) ----------------------------------------------------------------------


def cert_id(aki: bytes, serial: int) -> str:
    """``base64url(AKI keyIdentifier) '.' base64url(serial INTEGER content octets)``."""
    length = serial.bit_length() // 8 + 1  # DER INTEGER: leading 0x00 when the high bit is set
    return f"{b64e(aki)}.{b64e(serial.to_bytes(length, 'big'))}"


def parse_cert_id(text: str) -> tuple[bytes, int]:
    """Decode a certID into (keyIdentifier, serial); ``malformed`` (400) if it is not one."""
    parts = text.split(".")
    if len(parts) != 2 or not parts[0] or not parts[1]:
        raise Problem.malformed("certID must be <keyIdentifier>.<serialNumber>")
    try:
        aki, serial = b64d(parts[0]), b64d(parts[1])
    except ValueError:
        raise Problem.malformed("certID parts must be base64url without padding") from None
    if not serial or len(serial) > 20 or serial[0] & 0x80:
        raise Problem.malformed("certID serial is not a positive DER INTEGER")
    return aki, int.from_bytes(serial, "big")


def certificate_cert_id(cert: x509.Certificate) -> str | None:
    """The certID of a certificate, or None without an AKI keyIdentifier (RFC 9773 §2)."""
    try:
        aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    except x509.ExtensionNotFound:
        return None
    if aki.key_identifier is None:
        return None
    return cert_id(aki.key_identifier, cert.serial_number)
