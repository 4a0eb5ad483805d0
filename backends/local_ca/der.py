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

from gateway.pkix.der import element_length, header_length, integer, oid, tlv

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


@functools.lru_cache(maxsize=64)  # issuances within one second share their validity
def time(moment: datetime) -> bytes:
    """RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050, always UTC ("Z")
    and whole seconds."""
    moment = moment.astimezone(UTC)
    if 1950 <= moment.year <= 2049:
        return tlv(_UTC_TIME, moment.strftime("%y%m%d%H%M%SZ").encode("ascii"))
    return tlv(_GENERALIZED_TIME, moment.strftime("%Y%m%d%H%M%SZ").encode("ascii"))


_SKI_PREFIX = oid("2.5.29.14")


def subject_key_identifier_extension(key_id: bytes) -> bytes:
    """The non-critical SubjectKeyIdentifier extension (RFC 5280 §4.2.1.2) for ``key_id``:
    ``KeyIdentifier ::= OCTET STRING`` inside the extnValue OCTET STRING."""
    return tlv(_SEQUENCE, _SKI_PREFIX + tlv(_OCTET_STRING, tlv(_OCTET_STRING, key_id)))


def key_identifier(spki_der: bytes) -> bytes:
    """RFC 5280 §4.2.1.2 method (1): SHA-1 of the subjectPublicKey BIT STRING's value
    (without tag, length and unused-bits octet) -- what ``SubjectKeyIdentifier.from_public_key``
    computes, here from the SubjectPublicKeyInfo already encoded."""
    # SPKI ::= SEQUENCE { algorithm AlgorithmIdentifier, subjectPublicKey BIT STRING }
    offset = header_length(spki_der, 0)
    offset += element_length(spki_der, offset)  # skip AlgorithmIdentifier
    if spki_der[offset] != _BIT_STRING:
        raise ValueError("SubjectPublicKeyInfo without a BIT STRING key")
    start = offset + header_length(spki_der, offset) + 1  # + unused-bits octet
    return hashlib.sha1(spki_der[start:]).digest()  # noqa: S324 (identifier, not security)


def algorithm_identifier(algorithm: x509.ObjectIdentifier, *, null_parameters: bool) -> bytes:
    """``AlgorithmIdentifier ::= SEQUENCE { algorithm, parameters ANY OPTIONAL }``: NULL
    parameters for RSA PKCS#1 v1.5 (RFC 4055 §5), absent for ECDSA (RFC 5758 §3.2)."""
    return tlv(_SEQUENCE, oid(algorithm.dotted_string) + (b"\x05\x00" if null_parameters else b""))


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
