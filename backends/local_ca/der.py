"""DER encoding of an end-entity certificate's TBSCertificate (RFC 5280 §4.1).

cryptography's ``CertificateBuilder.sign`` validates and encodes every field on each call and
costs more than twice the ECDSA P-256 signature itself. The issuer signs many certificates that
differ only in serial, validity, subject, key and SANs, so it assembles the TBSCertificate
from DER pieces instead: the parts that never change (version, signature algorithm, issuer,
issuer-bound extensions) are encoded once, the per-request parts by cryptography's own
encoders (``Name.public_bytes``, ``public_bytes(SubjectPublicKeyInfo)``,
``ExtensionType.public_bytes``). Only the framing (tags and lengths), INTEGER and Time are
encoded here. The result is byte-for-byte what the builder produces for the same inputs
(tests/unit/test_local_ca_der.py checks that).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime

from cryptography import x509

_SEQUENCE = 0x30
_INTEGER = 0x02
_OCTET_STRING = 0x04
_BIT_STRING = 0x03
_UTC_TIME = 0x17
_GENERALIZED_TIME = 0x18
_EXPLICIT_0 = 0xA0  # TBSCertificate.version
_EXPLICIT_3 = 0xA3  # TBSCertificate.extensions

#: ``version [0] EXPLICIT Version DEFAULT v1`` with the value v3 (2).
VERSION_3 = bytes((_EXPLICIT_0, 3, _INTEGER, 1, 2))
_CRITICAL = bytes((0x01, 0x01, 0xFF))  # BOOLEAN TRUE; FALSE is the DEFAULT and omitted


def tlv(tag: int, content: bytes) -> bytes:
    """One DER element: tag, definite length (X.690 §8.1.3), content."""
    n = len(content)
    if n < 0x80:
        return bytes((tag, n)) + content
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(size))) + size + content


def integer(value: int) -> bytes:
    """A DER INTEGER (X.690 §8.3): minimal two's complement."""
    return tlv(_INTEGER, value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True))


@functools.lru_cache(maxsize=64)  # issuances within one second share their validity
def time(moment: datetime) -> bytes:
    """RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050, always UTC ("Z")
    and whole seconds."""
    moment = moment.astimezone(UTC)
    if 1950 <= moment.year <= 2049:
        return tlv(_UTC_TIME, moment.strftime("%y%m%d%H%M%SZ").encode("ascii"))
    return tlv(_GENERALIZED_TIME, moment.strftime("%Y%m%d%H%M%SZ").encode("ascii"))


def extension(ext: x509.Extension[x509.ExtensionType]) -> bytes:
    """``Extension ::= SEQUENCE { extnID, critical BOOLEAN DEFAULT FALSE, extnValue }``."""
    body = object_identifier(ext.oid) + (_CRITICAL if ext.critical else b"")
    return tlv(_SEQUENCE, body + tlv(_OCTET_STRING, ext.value.public_bytes()))


@functools.lru_cache(maxsize=256)
def object_identifier(oid: x509.ObjectIdentifier) -> bytes:
    """A DER OBJECT IDENTIFIER (X.690 §8.19): the first two arcs as 40 * X + Y, then each
    arc in base 128, high bit set on all but the last octet."""
    arcs = [int(a) for a in oid.dotted_string.split(".")]
    body = _base128(40 * arcs[0] + arcs[1]) + b"".join(_base128(a) for a in arcs[2:])
    return tlv(0x06, body)


def _base128(value: int) -> bytes:
    groups = [value & 0x7F]
    value >>= 7
    while value:
        groups.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(groups))


_SKI_PREFIX = object_identifier(x509.ObjectIdentifier("2.5.29.14"))


def subject_key_identifier_extension(key_id: bytes) -> bytes:
    """The non-critical SubjectKeyIdentifier extension (RFC 5280 §4.2.1.2) for ``key_id``:
    ``KeyIdentifier ::= OCTET STRING`` inside the extnValue OCTET STRING."""
    return tlv(_SEQUENCE, _SKI_PREFIX + tlv(_OCTET_STRING, tlv(_OCTET_STRING, key_id)))


def key_identifier(spki_der: bytes) -> bytes:
    """RFC 5280 §4.2.1.2 method (1): SHA-1 of the subjectPublicKey BIT STRING's value
    (without tag, length and unused-bits octet) -- what ``SubjectKeyIdentifier.from_public_key``
    computes, here from the SubjectPublicKeyInfo already encoded."""
    # SPKI ::= SEQUENCE { algorithm AlgorithmIdentifier, subjectPublicKey BIT STRING }
    offset = _header_length(spki_der, 0)
    offset += _element_length(spki_der, offset)  # skip AlgorithmIdentifier
    if spki_der[offset] != _BIT_STRING:
        raise ValueError("SubjectPublicKeyInfo without a BIT STRING key")
    start = offset + _header_length(spki_der, offset) + 1  # + unused-bits octet
    return hashlib.sha1(spki_der[start:]).digest()  # noqa: S324 (identifier, not security)


def _header_length(der: bytes, offset: int) -> int:
    first = der[offset + 1]
    return 2 if first < 0x80 else 2 + (first & 0x7F)


def _element_length(der: bytes, offset: int) -> int:
    first = der[offset + 1]
    if first < 0x80:
        return 2 + first
    count = first & 0x7F
    return 2 + count + int.from_bytes(der[offset + 2 : offset + 2 + count], "big")


def algorithm_identifier(oid: x509.ObjectIdentifier, *, null_parameters: bool) -> bytes:
    """``AlgorithmIdentifier ::= SEQUENCE { algorithm, parameters ANY OPTIONAL }``: NULL
    parameters for RSA PKCS#1 v1.5 (RFC 4055 §5), absent for ECDSA (RFC 5758 §3.2)."""
    return tlv(_SEQUENCE, object_identifier(oid) + (b"\x05\x00" if null_parameters else b""))


class CertificateLayout:
    """What every certificate of one issuer shares (signature algorithm, issuer name), and
    the assembly of the per-certificate parts around it."""

    def __init__(self, signature_algorithm: bytes, issuer: x509.Name) -> None:
        self.signature_algorithm = signature_algorithm
        self._issuer = issuer.public_bytes()

    def tbs(
        self,
        *,
        serial: int,
        not_before: datetime,
        not_after: datetime,
        subject: x509.Name,
        spki_der: bytes,
        extensions: Sequence[bytes],
    ) -> bytes:
        """The TBSCertificate (RFC 5280 §4.1.2) with already encoded ``extensions``."""
        body = b"".join(
            (
                VERSION_3,
                integer(serial),
                self.signature_algorithm,
                self._issuer,
                tlv(_SEQUENCE, time(not_before) + time(not_after)),
                subject.public_bytes(),
                spki_der,
                tlv(_EXPLICIT_3, tlv(_SEQUENCE, b"".join(extensions))) if extensions else b"",
            )
        )
        return tlv(_SEQUENCE, body)

    def certificate(self, tbs: bytes, signature: bytes) -> bytes:
        """``Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }``
        (RFC 5280 §4.1.1); the signature BIT STRING has no unused bits."""
        return tlv(
            _SEQUENCE, tbs + self.signature_algorithm + tlv(_BIT_STRING, b"\x00" + signature)
        )
