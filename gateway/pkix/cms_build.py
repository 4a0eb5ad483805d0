"""CMS builders (RFC 5652): SignedData with signed attributes, EnvelopedData with key
transport (the degenerate certificates-only SignedData is :mod:`gateway.pkix.certsonly`).

The DER is assembled directly from already-encoded parts (certificates, names, OIDs) instead of
through asn1crypto's object model: a CertRep is built on every SCEP request, and building it
through asn1crypto cost several times the RSA operations themselves. The output is plain DER:
SET OF signed attributes is sorted (X.690 §11.6), certificates keep the order given (clients
read them as a list: the issued certificate first).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from datetime import UTC, datetime

from asn1crypto import core
from cryptography import x509
from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.ciphers import Cipher, modes

from gateway.pkix.cms_algorithms import CIPHERS, UnsupportedAlgorithm, cipher_for, hash_for
from gateway.pkix.der import integer, oid, tlv
from gateway.pkix.memo import IdentityMemo

_DIGEST_OIDS = {
    "md5": "1.2.840.113549.2.5",
    "sha1": "1.3.14.3.2.26",
    "sha224": "2.16.840.1.101.3.4.2.4",
    "sha256": "2.16.840.1.101.3.4.2.1",
    "sha384": "2.16.840.1.101.3.4.2.2",
    "sha512": "2.16.840.1.101.3.4.2.3",
}
_ECDSA_OIDS = {
    "sha1": "1.2.840.10045.4.1",
    "sha224": "1.2.840.10045.4.3.1",
    "sha256": "1.2.840.10045.4.3.2",
    "sha384": "1.2.840.10045.4.3.3",
    "sha512": "1.2.840.10045.4.3.4",
}
_CIPHER_OIDS = {
    "aes128_cbc": "2.16.840.1.101.3.4.1.2",
    "aes192_cbc": "2.16.840.1.101.3.4.1.22",
    "aes256_cbc": "2.16.840.1.101.3.4.1.42",
    "tripledes_3key": "1.2.840.113549.3.7",
    "des": "1.3.14.3.2.7",
}
RSA_ENCRYPTION = "1.2.840.113549.1.1.1"
RSAES_OAEP = "1.2.840.113549.1.1.7"
_ID_DATA = "1.2.840.113549.1.7.1"
_ID_SIGNED_DATA = "1.2.840.113549.1.7.2"
_ID_ENVELOPED_DATA = "1.2.840.113549.1.7.3"
_CONTENT_TYPE = "1.2.840.113549.1.9.3"
_MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
_SIGNING_TIME = "1.2.840.113549.1.9.5"
_NULL = b"\x05\x00"
_CONTENT_TYPE_DATA = tlv(0x30, oid(_CONTENT_TYPE) + tlv(0x31, oid(_ID_DATA)))


def _algorithm(dotted: str, params: bytes | None = None) -> bytes:
    return tlv(0x30, oid(dotted) + (params or b""))


@functools.lru_cache(maxsize=16)
def _digest_algorithm(name: str) -> bytes:
    try:
        return _algorithm(_DIGEST_OIDS[name], _NULL)
    except KeyError:
        raise UnsupportedAlgorithm(f"digest algorithm {name!r} is not supported") from None


def _issuer_and_serial(cert: x509.Certificate) -> bytes:
    return tlv(0x30, cert.issuer.public_bytes() + integer(cert.serial_number))


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _signer_parts(cert: x509.Certificate) -> tuple[bytes, bytes]:
    """The signer's IssuerAndSerialNumber and DER: the same RA certificate signs every CertRep,
    so they are encoded once per certificate object (:data:`_SIGNER_PARTS`)."""
    return _issuer_and_serial(cert), _der(cert)


_SIGNER_PARTS = IdentityMemo(_signer_parts, limit=16)


def _content_info(content_type: str, content: bytes) -> bytes:
    return tlv(0x30, oid(content_type) + tlv(0xA0, content))


def attribute(dotted: str, value: core.Asn1Value | bytes) -> bytes:
    """One DER Attribute (RFC 5652 §5.3) with a single value: an asn1crypto value, or the
    value's DER (what SCEP's CertRep passes: the same octets without building an object)."""
    der = value if isinstance(value, bytes) else value.dump()
    return tlv(0x30, oid(dotted) + tlv(0x31, der))


def envelope(
    content: bytes,
    recipient: x509.Certificate,
    *,
    cipher: str = "aes128_cbc",
    key_transport: str = "rsaes_pkcs1v15",
) -> bytes:
    """ContentInfo(EnvelopedData) of ``content`` for an RSA ``recipient`` (RFC 5652 §6), one
    KeyTransRecipientInfo by issuerAndSerialNumber; RSAES-OAEP with the RFC 4055 default
    parameters (SHA-1, MGF1-SHA-1) when ``key_transport`` is ``rsaes_oaep``."""
    public = recipient.public_key()
    if not isinstance(public, rsa.RSAPublicKey):
        raise UnsupportedAlgorithm("key transport needs an RSA recipient key")
    key_len, block = CIPHERS[cipher]
    cek, iv = os.urandom(key_len), os.urandom(block)
    padder = padding.PKCS7(block * 8).padder()
    padded = padder.update(content) + padder.finalize()
    encryptor = Cipher(cipher_for(cipher, cek), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(padded) + encryptor.finalize()
    if key_transport == "rsaes_oaep":
        sha1 = hashes.SHA1()  # noqa: S303 (RFC 4055 default inside OAEP, not a signature)
        pad: asym_padding.AsymmetricPadding = asym_padding.OAEP(
            mgf=asym_padding.MGF1(sha1), algorithm=sha1, label=None
        )
        kea = _algorithm(RSAES_OAEP, tlv(0x30, b""))
    else:
        pad = asym_padding.PKCS1v15()
        kea = _algorithm(RSA_ENCRYPTION, _NULL)
    ktri = tlv(
        0x30,
        integer(0) + _issuer_and_serial(recipient) + kea + tlv(0x04, public.encrypt(cek, pad)),
    )
    eci = tlv(
        0x30,
        oid(_ID_DATA) + _algorithm(_CIPHER_OIDS[cipher], tlv(0x04, iv)) + tlv(0x80, ciphertext),
    )
    enveloped = tlv(0x30, integer(0) + tlv(0x31, ktri) + eci)
    return _content_info(_ID_ENVELOPED_DATA, enveloped)


def _utc_time(when: datetime) -> bytes:
    return tlv(0x17, when.astimezone(UTC).strftime("%y%m%d%H%M%SZ").encode("ascii"))


def sign(
    content: bytes | None,
    signer: x509.Certificate,
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    *,
    digest: str = "sha256",
    attributes: Sequence[bytes] = (),
    certificates: Sequence[x509.Certificate] = (),
    signing_time: datetime | None = None,
) -> bytes:
    """ContentInfo(SignedData) over id-data ``content`` (omitted when ``None``) with the
    contentType, signingTime and messageDigest attributes plus ``attributes`` (DER Attributes
    from :func:`attribute`), signed with RSA PKCS#1 v1.5 or ECDSA (RFC 5652 §5)."""
    digest_alg = hash_for(digest)
    h = hashes.Hash(digest_alg)
    h.update(content or b"")
    when = signing_time or datetime.now(UTC)
    attrs = [
        _CONTENT_TYPE_DATA,
        tlv(0x30, oid(_SIGNING_TIME) + tlv(0x31, _utc_time(when))),
        tlv(0x30, oid(_MESSAGE_DIGEST) + tlv(0x31, tlv(0x04, h.finalize()))),
        *attributes,
    ]
    signed_attrs = b"".join(sorted(attrs))
    to_sign = tlv(0x31, signed_attrs)
    if isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(to_sign, asym_padding.PKCS1v15(), digest_alg)
        sig_alg = _algorithm(RSA_ENCRYPTION, _NULL)
    else:
        signature = key.sign(to_sign, ec.ECDSA(digest_alg))
        sig_alg = _algorithm(_ECDSA_OIDS[digest])
    signer_id, signer_der = _SIGNER_PARTS(signer)
    signer_info = tlv(
        0x30,
        integer(1)
        + signer_id
        + _digest_algorithm(digest)
        + tlv(0xA0, signed_attrs)
        + sig_alg
        + tlv(0x04, signature),
    )
    others = [_der(c) for c in certificates if c != signer]
    encap = oid(_ID_DATA) + (tlv(0xA0, tlv(0x04, content)) if content is not None else b"")
    signed = tlv(
        0x30,
        integer(1)
        + tlv(0x31, _digest_algorithm(digest))
        + tlv(0x30, encap)
        + tlv(0xA0, signer_der + b"".join(others))
        + tlv(0x31, signer_info),
    )
    return _content_info(_ID_SIGNED_DATA, signed)
