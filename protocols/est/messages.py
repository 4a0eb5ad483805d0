"""EST wire codecs (RFC 7030 as updated by RFC 8951 and RFC 9908): pure bytes <-> objects.

Nothing here does I/O or knows aiohttp. Every parser raises :class:`gateway.errors.BadRequest`
or :class:`gateway.errors.BadCSR` for bad input, never anything else.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import AttributeOID

from gateway.errors import BadCSR, BadRequest
from gateway.pkix import load_csr
from gateway.pkix.certsonly import certs_only_der
from gateway.pkix.csr import csr_der
from gateway.pkix.der import oid, tlv
from gateway.service import request_digest

#: The operations of RFC 7030 §3.2.2 (a CA label must not equal one of them).
OPERATIONS = frozenset({"cacerts", "simpleenroll", "simplereenroll", "fullcmc", "serverkeygen"})
OPERATIONS_WITH_CSRATTRS = OPERATIONS | {"csrattrs"}

#: RFC 7030 §4.2.1 request media type; §4.1.3/§4.2.3 response media types.
PKCS10 = "application/pkcs10"
PKCS7_MIME = "application/pkcs7-mime"
CERTS_ONLY = "application/pkcs7-mime; smime-type=certs-only"
CSRATTRS = "application/csrattrs"
PKCS8 = "application/pkcs8"
#: libest's boundary (RFC 7030 §4.4.2 leaves it free).
MULTIPART_BOUNDARY = "est-server-boundary"

#: The bytes RFC 8951 §3 lets a base64 body carry between its characters.
WHITESPACE = b" \t\r\n"


def media_type(header: str | None) -> str:
    """The lower-cased media type of a Content-Type header, parameters dropped (RFC 7030
    §4.2.1: compared case-insensitively)."""
    return (header or "").split(";", 1)[0].strip().lower()


def decode_base64_body(body: bytes) -> bytes:
    """Decode an EST request body: base64 of DER (RFC 8951 §3), whatever a
    Content-Transfer-Encoding header says. CR, LF, space and tab are tolerated anywhere.

    Raises :class:`BadRequest` for an empty body, a raw DER body (we do not sniff binary: the
    RFC requires base64) or malformed/truncated base64.
    """
    compact = body.translate(None, WHITESPACE)  # a regex sub cost ~20x as much per body
    if not compact:
        raise BadRequest("empty request body: expected base64-encoded DER (RFC 8951 §3)")
    if body[:1] == b"\x30" and not _looks_base64(compact):
        raise BadRequest("the body looks like raw DER; EST bodies are base64 (RFC 8951 §3)")
    if len(compact) % 4:
        raise BadRequest(
            "the base64 body is truncated (length is not a multiple of 4; RFC 4648 §4)"
        )
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("the body is not valid base64 (RFC 4648 §4)") from None


def _looks_base64(data: bytes) -> bool:
    return re.fullmatch(rb"[A-Za-z0-9+/]*={0,2}", data) is not None


def parse_csr_body(body: bytes) -> x509.CertificateSigningRequest:
    """A /simpleenroll, /simplereenroll or /serverkeygen body (RFC 7030 §4.2.1, §4.4.1):
    base64 of a DER PKCS#10. :class:`BadRequest` for the transfer encoding, :class:`BadCSR`
    for the request itself."""
    der = decode_base64_body(body)
    if der[:1] != b"\x30":
        raise BadCSR("the decoded body is not a DER PKCS#10 certificate request")
    return load_csr(der)


def challenge_password(csr: x509.CertificateSigningRequest) -> bytes | None:
    """The CSR's challengePassword (RFC 2985 §5.4.1), which EST uses for the tls-unique
    proof-of-possession link (RFC 7030 §3.5); ``None`` if absent."""
    try:
        return csr.attributes.get_attribute_for_oid(AttributeOID.CHALLENGE_PASSWORD).value
    except x509.AttributeNotFound:
        return None
    except ValueError as exc:
        raise BadCSR(f"the CSR attributes cannot be decoded: {str(exc)[:120]}") from None


def request_fingerprint(csr: x509.CertificateSigningRequest) -> str:
    """What identifies an EST request across retries: the service's request digest
    (:func:`gateway.service.request_digest`, the one definition every protocol's retries
    share) -- SHA-256 of the CertificationRequestInfo (RFC 2986 §4.1: version, subject, key,
    attributes) without the challengePassword attribute. Two CSRs with the same fingerprint
    are the same EST request (RFC 7030 §4.2.3) even when the client re-signed it or re-created
    it with the tls-unique of a new TLS session in the challengePassword (§3.5, §4.2.3: "the
    CSR will need to be recreated"). Reads the DER the CSR was parsed from (no second
    decode); :class:`BadCSR` if it does not have the shape of a PKCS#10 request."""
    return request_digest(csr_der(csr))


def tls_unique_matches(password: bytes, tls_unique: bytes) -> bool:
    """RFC 7030 §3.5: the challengePassword carries base64(tls-unique) (RFC 5929 §3)."""
    expected = base64.b64encode(tls_unique)
    return password.strip() == expected


def encode_base64(der: bytes) -> bytes:
    """A response payload: base64 of DER with 64-column CRLF lines (RFC 8951 §3)."""
    text = base64.b64encode(der)
    return b"".join(text[i : i + 64] + b"\r\n" for i in range(0, len(text), 64))


def certs_only_body(certificates: Sequence[x509.Certificate | bytes]) -> bytes:
    """A certs-only PKCS#7 response body (RFC 7030 §4.1.3, §4.2.3), base64."""
    return encode_base64(certs_only_der(certificates))


def serverkeygen_body(private_key_pkcs8: bytes, certificate: x509.Certificate) -> bytes:
    """The /serverkeygen multipart/mixed body (RFC 7030 §4.4.2, RFC 8951 §3.2): the PKCS#8
    PrivateKeyInfo first, then the certs-only PKCS#7 holding only the new certificate."""
    parts = (
        (PKCS8, encode_base64(private_key_pkcs8)),
        (CERTS_ONLY, certs_only_body([certificate])),
    )
    out = b""
    for content_type, payload in parts:
        out += (
            f"--{MULTIPART_BOUNDARY}\r\nContent-Type: {content_type}\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n"
        ).encode() + payload
    return out + f"--{MULTIPART_BOUNDARY}--\r\n".encode()


# --- /csrattrs (RFC 7030 §4.5.2 as corrected by RFC 8951 §4 and RFC 9908) ------------------


@dataclass(frozen=True)
class CsrAttr:
    """One ``AttrOrOID`` (RFC 8951 §4): a bare OID ("please include this"), or an Attribute
    with DER-encoded values."""

    oid: str
    values: tuple[bytes, ...] | None = None


def encode_csrattrs(items: Iterable[CsrAttr]) -> bytes:
    """DER ``CsrAttrs ::= SEQUENCE SIZE (0..MAX) OF AttrOrOID``; an Attribute is
    ``SEQUENCE { type OBJECT IDENTIFIER, values SET OF ANY }`` (RFC 8951 §4)."""
    body = b""
    for item in items:
        encoded = oid(item.oid)
        if item.values is None:
            body += encoded
        else:
            body += tlv(0x30, encoded + tlv(0x31, b"".join(sorted(item.values))))
    return tlv(0x30, body)
