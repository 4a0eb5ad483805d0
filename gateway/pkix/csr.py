"""Values derived from a parsed CSR and from public keys, each computed once per object.

This is the seam for the issuance path's fast paths: every function here answers exactly what
its plain counterpart does (named in its docstring) and only remembers it, per object identity,
so that a front-end that looks a transaction up by key (EST), policy and the service storing
the request share one computation. tests/unit/test_model_memo.py checks each against the plain
path; test_pkix_der.py checks the single-DER-form shortcut of :data:`csr_spki_sha256`.
"""

from __future__ import annotations

import hashlib
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gateway.pkix import der
from gateway.pkix.memo import IdentityMemo

__all__ = ["csr_der", "csr_public_key", "csr_spki_sha256", "spki_der", "spki_fingerprint"]


def _encode_spki(public_key: Any) -> bytes:
    encoded: bytes = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return encoded


#: The key's DER SubjectPublicKeyInfo (plain path: ``key.public_bytes(DER,
#: SubjectPublicKeyInfo)``). The request's fingerprint and, for an in-process CA, the
#: certificate's subjectPublicKeyInfo and SKI all need it for the same key object.
spki_der: IdentityMemo[Any, bytes] = IdentityMemo(_encode_spki, 256)


def spki_fingerprint(public_key: Any) -> str:
    """Hex SHA-256 of the DER SubjectPublicKeyInfo; used to match retries (EST) and renewals."""
    return hashlib.sha256(spki_der(public_key)).hexdigest()


def _csr_der(csr: x509.CertificateSigningRequest) -> bytes:
    return csr.public_bytes(serialization.Encoding.DER)


def _csr_public_key(csr: x509.CertificateSigningRequest) -> Any:
    return csr.public_key()


def _csr_spki_sha256(csr: x509.CertificateSigningRequest) -> str:
    """The fingerprint of the CSR's key (plain path: ``spki_fingerprint(csr.public_key())``).
    When the CSR's own SubjectPublicKeyInfo has a single DER form (EC on a named curve with an
    uncompressed point, Ed25519, Ed448) its bytes are what cryptography would encode for the
    decoded key, so they are hashed as they are and remembered as that key's :data:`spki_der`
    (re-encoding costs more than the hash); otherwise the decoded key is encoded. Decoding the
    key also validates it (the point is on the curve): raises
    ``ValueError``/``UnsupportedAlgorithm`` like ``csr.public_key()``."""
    key = csr_public_key(csr)
    raw = der.csr_spki(csr_der(csr))
    if der.is_canonical_spki(raw):
        spki_der.seed(key, raw)
    else:
        raw = spki_der(key)
    return hashlib.sha256(raw).hexdigest()


#: Per CSR object: its DER (plain: ``csr.public_bytes(DER)``), its decoded key (plain:
#: ``csr.public_key()``) and its key's fingerprint (plain: ``spki_fingerprint(csr.public_key())``).
csr_der: IdentityMemo[x509.CertificateSigningRequest, bytes] = IdentityMemo(_csr_der, 256)
csr_public_key: IdentityMemo[x509.CertificateSigningRequest, Any] = IdentityMemo(
    _csr_public_key, 256
)
csr_spki_sha256: IdentityMemo[x509.CertificateSigningRequest, str] = IdentityMemo(
    _csr_spki_sha256, 256
)
