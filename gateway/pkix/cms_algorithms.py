"""What CMS parsing (:mod:`gateway.pkix.cms`) and building (:mod:`gateway.pkix.cms_build`)
share: the error tree, the content-encryption algorithms (RFC 5652 §10.1.4 / RFC 3565 AES,
RFC 8018 des-ede3-cbc) and the digest algorithms (RFC 5652 §10.1.1).

Its own module so that neither of the two imports the other for them: ``cms`` re-exports the
builders, and ``cms_build`` importing ``cms`` back made ``import gateway.pkix.cms_build`` on its
own fail with a circular ImportError.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import algorithms

#: Content-encryption algorithms by asn1crypto name -> (key bytes, block bytes).
CIPHERS: Mapping[str, tuple[int, int]] = {
    "aes128_cbc": (16, 16),
    "aes192_cbc": (24, 16),
    "aes256_cbc": (32, 16),
    "tripledes_3key": (24, 8),  # 1.2.840.113549.3.7 des-ede3-cbc
    "des": (8, 8),  # 1.3.14.3.2.7 desCBC: legacy only, callers decide
}
_HASHES: Mapping[str, type[hashes.HashAlgorithm]] = {
    "md5": hashes.MD5,
    "sha1": hashes.SHA1,
    "sha224": hashes.SHA224,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


class CMSError(Exception):
    """The CMS structure is malformed or unusable."""


class UnsupportedAlgorithm(CMSError):
    """An algorithm the caller does not (or may not) implement (SCEP failInfo badAlg).
    ``algorithm``: the refused content-encryption algorithm's asn1crypto name, where that is
    what was refused (``des``, ``rc2``...), else None."""

    def __init__(self, message: str, algorithm: str | None = None) -> None:
        super().__init__(message)
        self.algorithm = algorithm


def hash_for(name: str) -> hashes.HashAlgorithm:
    """The ``cryptography`` hash for an asn1crypto digest name; UnsupportedAlgorithm else."""
    try:
        return _HASHES[name]()
    except KeyError:
        raise UnsupportedAlgorithm(f"digest algorithm {name!r} is not supported") from None


def cipher_for(name: str, cek: bytes) -> Any:
    """The ``cryptography`` block cipher for a content-encryption algorithm name."""
    if name.startswith("aes"):
        return algorithms.AES(cek)
    if len(cek) == 8:  # single DES (legacy mode only) is 3DES with K1 = K2 = K3
        cek = cek * 3
    return TripleDES(cek)
