"""Degenerate certificates-only CMS SignedData (RFC 5652 §5.2; RFC 7030 §4.1.3 "certs-only"),
built by pyca/cryptography's Rust PKCS#7 serializer (several times faster than assembling it
with asn1crypto, which matters on EST's enrollment path)."""

from __future__ import annotations

from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs7


def certs_only_der(certificates: Sequence[x509.Certificate]) -> bytes:
    """DER ContentInfo(SignedData) with ``certificates`` and no signers or content."""
    if not certificates:
        raise ValueError("a certs-only SignedData needs at least one certificate")
    return pkcs7.serialize_certificates(list(certificates), serialization.Encoding.DER)
