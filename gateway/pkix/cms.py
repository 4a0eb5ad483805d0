"""CMS (RFC 5652) building blocks for SCEP and EST: SignedData with signed attributes,
EnvelopedData with key transport; the degenerate certificates-only SignedData's reader is
re-exported from :mod:`gateway.pkix.certsonly`.

Structures come from asn1crypto; the cryptography itself from ``cryptography`` (the high-level
PKCS#7 API there cannot verify signed attributes, nor decrypt 3DES or OAEP, see protocols.md
0.1). Every function is pure (bytes in, bytes or values out). Malformed input raises
:class:`CMSError` subclasses, which callers map to their protocol's failure codes; nothing here
lets a library ``ValueError`` escape.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from asn1crypto import cms, core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.exceptions import UnsupportedAlgorithm as CryptoUnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.ciphers import Cipher, modes

from gateway.pkix import cms_read

# The builders live in cms_build (raw DER assembly) and the certs-only builder and reader in
# certsonly; this module imports both (they import neither this module nor each other) and
# re-exports what SCEP uses, so a SCEP message needs one module.
from gateway.pkix.certsonly import read_certs_only
from gateway.pkix.cms_algorithms import (
    CIPHERS,
    CMSError,
    UnsupportedAlgorithm,
    cipher_for,
    hash_for,
)
from gateway.pkix.cms_ber import primitive_encrypted_content
from gateway.pkix.cms_build import attribute, envelope, sign

ID_DATA = "1.2.840.113549.1.7.1"
ID_SIGNED_DATA = "1.2.840.113549.1.7.2"
ID_ENVELOPED_DATA = "1.2.840.113549.1.7.3"


class SignatureError(CMSError):
    """The signature or the message digest does not verify (SCEP failInfo badMessageCheck)."""


class NotForUs(CMSError):
    """No RecipientInfo addresses the given certificate (wrong recipient)."""


@dataclass(frozen=True)
class SignedMessage:
    """A parsed SignedData (RFC 5652 §5) with exactly one SignerInfo.

    ``attributes`` maps the dotted OID of each signed attribute to the DER of its first value;
    ``signature_valid`` is not stored: call :func:`verify_signed` before trusting anything.
    """

    content: bytes | None
    content_type: str
    signer: x509.Certificate
    certificates: tuple[x509.Certificate, ...]
    digest_algorithm: str
    attributes: Mapping[str, bytes]
    signed_attrs_der: bytes
    signature: bytes
    signature_algorithm: str


@dataclass(frozen=True)
class Decrypted:
    """Plaintext of an EnvelopedData plus the algorithms used, so a reply can mirror them."""

    content: bytes
    cipher: str  # a key of CIPHERS
    key_transport: str  # "rsaes_pkcs1v15" | "rsaes_oaep"


def _load_content_info(der: bytes, expected: str) -> Any:
    try:
        info = cms.ContentInfo.load(der, strict=True)
        if info["content_type"].dotted != expected:
            raise CMSError(f"ContentInfo is {info['content_type'].dotted}, expected {expected}")
        return info["content"]
    except CMSError:
        raise
    except (ValueError, TypeError, KeyError, OverflowError) as exc:
        raise CMSError(f"not a CMS ContentInfo: {str(exc)[:120]}") from None


def _to_crypto_cert(cert: asn1_x509.Certificate) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(cert.dump())
    except (ValueError, x509.InvalidVersion) as exc:  # InvalidVersion is no ValueError
        raise CMSError(f"unparseable certificate in SignedData: {str(exc)[:120]}") from None


def parse_signed(der: bytes) -> SignedMessage:
    """Parse ContentInfo(SignedData) with one signer whose certificate is in ``certificates``
    and who carries signed attributes (RFC 5652 §5.3; RFC 8894 §3 requires both).

    The seam: the plain-DER shape of every usual client is read by walking the octets
    (:func:`gateway.pkix.cms_read.signed_fields`, the signer's certificate decoded once);
    anything else, and every error, comes from asn1crypto (:func:`parse_signed_plain`)."""
    fields = cms_read.signed_fields(der)
    if fields is None:
        return parse_signed_plain(der)
    try:
        certs = tuple(x509.load_der_x509_certificate(c) for c in fields.certificates)
    except (ValueError, x509.InvalidVersion):
        return parse_signed_plain(der)  # which names the unparseable certificate
    return SignedMessage(
        content=fields.content,
        content_type=fields.content_type,
        signer=certs[fields.signer],
        certificates=certs,
        digest_algorithm=fields.digest_algorithm,
        attributes=fields.attributes,
        signed_attrs_der=fields.signed_attrs_der,
        signature=fields.signature,
        signature_algorithm=fields.signature_algorithm,
    )


def parse_signed_plain(der: bytes) -> SignedMessage:
    """:func:`parse_signed` through asn1crypto's object model: any shape, every error."""
    signed = _load_content_info(der, ID_SIGNED_DATA)
    try:
        infos = signed["signer_infos"]
        if len(infos) != 1:
            raise CMSError(f"expected one SignerInfo, found {len(infos)}")
        info = infos[0]
        certs: list[asn1_x509.Certificate] = [
            c.chosen for c in signed["certificates"] or [] if c.name == "certificate"
        ]
        signer_asn1 = _find_signer(info["sid"], certs)
        if info["signed_attrs"].native is None or len(info["signed_attrs"]) == 0:
            raise SignatureError("the SignerInfo carries no signed attributes")
        attributes: dict[str, bytes] = {}
        for attr in info["signed_attrs"]:
            values = attr["values"]
            if len(values) >= 1:
                attributes.setdefault(attr["type"].dotted, values[0].dump())
        encap = signed["encap_content_info"]
        content = encap["content"].native
        if content is not None and not isinstance(content, bytes):
            raise CMSError("the encapsulated content is not an OCTET STRING")
        signed_attrs_der = b"\x31" + info["signed_attrs"].dump()[1:]
        return SignedMessage(
            content=content,
            content_type=encap["content_type"].dotted,
            signer=_to_crypto_cert(signer_asn1),
            certificates=tuple(_to_crypto_cert(c) for c in certs),
            digest_algorithm=info["digest_algorithm"]["algorithm"].native,
            attributes=attributes,
            signed_attrs_der=signed_attrs_der,
            signature=info["signature"].native,
            signature_algorithm=info["signature_algorithm"]["algorithm"].native,
        )
    except CMSError:
        raise
    except (ValueError, TypeError, KeyError, OverflowError, AttributeError) as exc:
        raise CMSError(f"malformed SignedData: {str(exc)[:120]}") from None


def _find_signer(sid: Any, certs: Sequence[asn1_x509.Certificate]) -> asn1_x509.Certificate:
    for cert in certs:
        if sid.name == "issuer_and_serial_number":
            ias = sid.chosen
            if (
                cert.serial_number == ias["serial_number"].native
                and cert.issuer.dump() == ias["issuer"].dump()
            ):
                return cert
        elif sid.name == "subject_key_identifier" and cert.key_identifier == sid.chosen.native:
            return cert
    raise CMSError("the signer's certificate is not in the SignedData")


def verify_signed(message: SignedMessage) -> None:
    """Check the messageDigest attribute against the content and the signature over the
    DER SET OF signed attributes with the signer's public key (RFC 5652 §5.4, §11.2)."""
    digest_alg = hash_for(message.digest_algorithm)
    md_der = message.attributes.get("1.2.840.113549.1.9.4")
    if md_der is None:
        raise SignatureError("the messageDigest attribute is missing")
    try:
        expected = core.OctetString.load(md_der).native
    except ValueError:
        raise SignatureError("the messageDigest attribute is malformed") from None
    h = hashes.Hash(digest_alg)
    h.update(message.content or b"")
    if not hmac.compare_digest(h.finalize(), expected):
        raise SignatureError("the messageDigest does not match the content")
    try:
        key = message.signer.public_key()
    except ValueError:  # cryptography parses the SubjectPublicKeyInfo only now
        raise SignatureError("the signer's public key cannot be parsed") from None
    except CryptoUnsupportedAlgorithm:  # an unknown key algorithm OID
        raise UnsupportedAlgorithm("the signer's key algorithm is not supported") from None
    try:
        if isinstance(key, rsa.RSAPublicKey):
            if message.signature_algorithm == "rsassa_pss":
                raise UnsupportedAlgorithm("RSASSA-PSS signatures are not supported")
            key.verify(
                message.signature, message.signed_attrs_der, asym_padding.PKCS1v15(), digest_alg
            )
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(message.signature, message.signed_attrs_der, ec.ECDSA(digest_alg))
        else:
            raise UnsupportedAlgorithm("the signer's key type is not supported")
    except InvalidSignature:
        raise SignatureError("the signature does not verify") from None


def envelope_fields(der: bytes, recipient: x509.Certificate) -> cms_read.EnvelopeFields:
    """The seam for reading an EnvelopedData addressed to ``recipient``: the plain-DER,
    PKCS#1 v1.5 shape by walking the octets (:func:`gateway.pkix.cms_read.envelope_fields`),
    anything else, and every error, through asn1crypto (:func:`envelope_fields_plain`)."""
    issuer_der, serial, ski = (
        recipient.issuer.public_bytes(),
        recipient.serial_number,
        _ski(recipient),
    )
    fields = cms_read.envelope_fields(der, issuer_der, serial, ski)
    return fields if fields is not None else envelope_fields_plain(der, recipient)


def envelope_fields_plain(der: bytes, recipient: x509.Certificate) -> cms_read.EnvelopeFields:
    """:func:`envelope_fields` through asn1crypto, BER tolerated (Go's constructed
    encryptedContent, :mod:`gateway.pkix.cms_ber`); CMSError or NotForUs when unusable."""
    try:
        enveloped = _load_content_info(der, ID_ENVELOPED_DATA)
        enveloped["encrypted_content_info"]["encrypted_content"].native  # noqa: B018 (parse)
    except (CMSError, ValueError, TypeError, KeyError):
        try:
            normalized = primitive_encrypted_content(der)
        except (ValueError, TypeError, IndexError):
            raise CMSError("not a CMS EnvelopedData") from None
        enveloped = _load_content_info(normalized, ID_ENVELOPED_DATA)
    serial = recipient.serial_number
    issuer_der = recipient.issuer.public_bytes()
    ski = _ski(recipient)
    try:
        encrypted_key: bytes | None = None
        transport, oaep_params = "", None
        for ri in enveloped["recipient_infos"]:
            if ri.name != "ktri":
                continue
            ktri = ri.chosen
            rid = ktri["rid"]
            match = (
                rid.name == "issuer_and_serial_number"
                and rid.chosen["serial_number"].native == serial
                and rid.chosen["issuer"].dump() == issuer_der
            ) or (rid.name == "subject_key_identifier" and rid.chosen.native == ski)
            if match:
                encrypted_key = ktri["encrypted_key"].native
                transport = ktri["key_encryption_algorithm"]["algorithm"].native
                if transport == "rsaes_oaep":
                    oaep_params = ktri["key_encryption_algorithm"]["parameters"]
                break
        if encrypted_key is None:
            raise NotForUs("the envelope is not addressed to this recipient")
        eci = enveloped["encrypted_content_info"]
        cipher = eci["content_encryption_algorithm"]["algorithm"].native
        params = eci["content_encryption_algorithm"]["parameters"]
        ciphertext = eci["encrypted_content"].native
    except CMSError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise CMSError(f"malformed EnvelopedData: {str(exc)[:120]}") from None
    try:
        iv = params.native
    except ValueError:
        iv = None
    return cms_read.EnvelopeFields(encrypted_key, transport, oaep_params, cipher, iv, ciphertext)


def decrypt_enveloped(
    der: bytes,
    recipient: x509.Certificate,
    key: rsa.RSAPrivateKey,
    *,
    allowed_ciphers: Iterable[str],
) -> Decrypted:
    """Decrypt ContentInfo(EnvelopedData) addressed to ``recipient`` by KeyTransRecipientInfo
    (RFC 5652 §6.2.1) with RSAES-PKCS1-v1_5 or RSAES-OAEP (RFC 8017 §7.1, RFC 4055 §4)."""
    fields = envelope_fields(der, recipient)
    cipher, transport, iv, ciphertext = (
        fields.cipher,
        fields.transport,
        fields.iv,
        fields.ciphertext,
    )
    if cipher not in CIPHERS or cipher not in set(allowed_ciphers):
        raise UnsupportedAlgorithm(f"content encryption {cipher!r} is not accepted", cipher)
    if transport == "rsaes_pkcs1v15" or transport == "rsa":
        transport = "rsaes_pkcs1v15"
        pad: asym_padding.AsymmetricPadding = asym_padding.PKCS1v15()
    elif transport == "rsaes_oaep":
        pad = _oaep_padding(fields.oaep_params)
    else:
        raise UnsupportedAlgorithm(f"key transport {transport!r} is not supported")
    key_len, block = CIPHERS[cipher]
    if not isinstance(iv, bytes) or len(iv) != block or not isinstance(ciphertext, bytes):
        raise CMSError("bad content-encryption parameters")
    try:
        cek = key.decrypt(fields.encrypted_key, pad)
    except ValueError:
        raise CMSError("the content-encryption key cannot be decrypted") from None
    if len(cek) != key_len or len(ciphertext) % block:
        raise CMSError("bad content-encryption key or ciphertext length")
    decryptor = Cipher(cipher_for(cipher, cek), modes.CBC(iv)).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    unpadder = padding.PKCS7(block * 8).unpadder()
    try:
        plain = unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        raise CMSError("bad padding after decryption") from None
    return Decrypted(plain, cipher, transport)


def _oaep_padding(params: Any) -> asym_padding.OAEP:
    """RSAES-OAEP-params (RFC 4055 §4.1); SHA-1 and MGF1-SHA-1 are the defaults."""
    try:
        native = params.native if params is not None else None
        hash_name = (native or {}).get("hash_algorithm", {}).get("algorithm", "sha1")
        mgf = (native or {}).get("mask_gen_algorithm", {}) or {}
        mgf_hash = (mgf.get("parameters") or {}).get("algorithm", "sha1")
    except (ValueError, AttributeError):
        raise CMSError("malformed RSAES-OAEP parameters") from None
    return asym_padding.OAEP(
        mgf=asym_padding.MGF1(hash_for(mgf_hash)), algorithm=hash_for(hash_name), label=None
    )


def _ski(cert: x509.Certificate) -> bytes | None:
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return None


__all__ = [
    "CIPHERS",
    "CMSError",
    "Decrypted",
    "NotForUs",
    "SignatureError",
    "SignedMessage",
    "UnsupportedAlgorithm",
    "attribute",
    "decrypt_enveloped",
    "envelope",
    "hash_for",
    "parse_signed",
    "read_certs_only",
    "sign",
    "verify_signed",
]
