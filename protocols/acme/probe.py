"""newOrder's probe CSR: the request policy previews before any challenge (finalize.dry_run).

The preview skips rule csr-signature (``PolicyEngine.plan(check_possession=False)``), so the
probe's signature is never read, only its signature algorithm. Signing it costs an ECDSA
signature per newOrder and the builder's work around it; instead the DER is written here, the
request info byte for byte what ``x509.CertificateSigningRequestBuilder`` signs for the same
key and names (tests/unit/test_acme_probe.py), followed by a placeholder signature.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

#: AlgorithmIdentifier DER of ecdsa-with-SHA256 and sha256WithRSAEncryption (NULL parameters).
_ECDSA_SHA256 = bytes.fromhex("300a06082a8648ce3d040302")
_RSA_SHA256 = bytes.fromhex("300d06092a864886f70d01010b0500")
#: A well-formed ECDSA-Sig-Value (r = s = 1) and a zero RSA signature: never verified.
_EC_PLACEHOLDER = bytes.fromhex("3006020101020101")
#: OID 1.2.840.113549.1.9.14 (PKCS #9 extensionRequest) and 2.5.29.17 (subjectAltName).
_EXTENSION_REQUEST = bytes.fromhex("06092a864886f70d01090e")
_SAN = bytes.fromhex("0603551d11")


def _tlv(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        return bytes((tag, n)) + body
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(size))) + size + body


@lru_cache(maxsize=4)
def _spki(key: Any) -> bytes:
    return bytes(
        key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def _general_name(kind: str, value: str) -> bytes:
    if kind == "ip":
        return _tlv(0x87, ipaddress.ip_address(value).packed)  # [7] iPAddress
    return _tlv(0x82, value.encode("ascii"))  # [2] dNSName (IA5String)


def probe_csr(key: Any, identifiers: Iterable[tuple[str, str]]) -> x509.CertificateSigningRequest:
    """A CSR for ``key`` (the probe key: EC P-256 or RSA) with an empty subject and one
    subjectAltName naming ``identifiers`` (type, value), signature algorithm SHA-256, and a
    signature that is not one."""
    names = b"".join(_general_name(kind, value) for kind, value in identifiers)
    extension = _tlv(0x30, _SAN + _tlv(0x04, _tlv(0x30, names)))
    attribute = _tlv(0x30, _EXTENSION_REQUEST + _tlv(0x31, _tlv(0x30, extension)))
    info = _tlv(0x30, b"\x02\x01\x00" + b"\x30\x00" + _spki(key) + _tlv(0xA0, attribute))
    if isinstance(key, ec.EllipticCurvePrivateKey):
        algorithm, signature = _ECDSA_SHA256, _EC_PLACEHOLDER
    else:
        algorithm, signature = _RSA_SHA256, bytes(key.key_size // 8)
    der = _tlv(0x30, info + algorithm + _tlv(0x03, b"\x00" + signature))
    return x509.load_der_x509_csr(der)
