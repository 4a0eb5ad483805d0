"""CMS helpers for MS-WSTEP: renewal requests signed by the old certificate (the certs-only
PKCS#7 that carries an issuer chain is :mod:`gateway.pkix.certsonly`, shared with EST and SCEP).

* MS-WSTEP §3.1.4.2.1.1 / wstep renewal example: a renewal is a CMS ``SignedData`` (RFC 5652
  §5) whose encapsulated content (type ``id-data``) is the new PKCS#10 request, signed with the
  key of the certificate being renewed, which travels in ``certificates``.
* RFC 5652 §5.4: with signed attributes the signature covers their DER ``SET OF`` encoding and
  the ``message-digest`` attribute must equal the content's digest; without them it covers the
  content itself (Windows sends both forms).
"""

from __future__ import annotations

from dataclasses import dataclass

from asn1crypto import cms
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs7

from gateway.errors import BadRequest

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


@dataclass(frozen=True)
class SignedRequest:
    """The PKCS#10 inside a verified renewal ``SignedData`` and the certificate that signed it."""

    csr_der: bytes
    signer: x509.Certificate


def is_signed_data(der: bytes) -> bool:
    """True if ``der`` looks like a CMS ContentInfo (not a bare PKCS#10)."""
    try:
        info = cms.ContentInfo.load(der)
        return bool(info["content_type"].native == "signed_data")
    except Exception:  # asn1crypto raises a zoo of types for garbage
        return False


def open_signed_request(der: bytes) -> SignedRequest:
    """Verify a renewal ``SignedData`` and return its PKCS#10 and signer certificate.

    Raises :class:`BadRequest` for anything that is not exactly one valid signature over an
    ``id-data`` content by a certificate included in the message. Whether the signer may renew
    (chains to this CA, not revoked, same requester) is the caller's decision.
    """
    try:
        info = cms.ContentInfo.load(der)
        if info["content_type"].native != "signed_data":
            raise BadRequest("the CMS message is not SignedData")
        signed = info["content"]
        encap = signed["encap_content_info"]
        if encap["content_type"].native != "data":
            raise BadRequest("only id-data content is supported (CMC requests are not)")
        content = encap["content"].native
        if not isinstance(content, bytes) or not content:
            raise BadRequest("the SignedData carries no request")
        if len(signed["signer_infos"]) != 1:
            raise BadRequest("a renewal request needs exactly one signer")
        signer_info = signed["signer_infos"][0]
        certificates = [
            x509.load_der_x509_certificate(c.chosen.dump())
            for c in signed["certificates"] or []
            if c.name == "certificate"
        ]
        signer = _find_signer(signer_info["sid"], certificates)
        digest_name = signer_info["digest_algorithm"]["algorithm"].native
        hash_type = _HASHES.get(digest_name)
        if hash_type is None:
            raise BadRequest(f"unsupported digest algorithm {digest_name}")
        signed_attrs = signer_info["signed_attrs"]
        if signed_attrs is not None and len(signed_attrs) > 0:
            _check_message_digest(signed_attrs, content, hash_type)
            data = b"\x31" + signed_attrs.dump()[1:]  # [0] IMPLICIT -> SET OF (RFC 5652 §5.4)
        else:
            data = content
        _verify(signer, signer_info["signature"].native, data, hash_type())
    except BadRequest:
        raise
    except Exception as exc:
        raise BadRequest(f"not a valid CMS SignedData request ({type(exc).__name__})") from None
    return SignedRequest(content, signer)


def _find_signer(
    sid: cms.SignerIdentifier, certificates: list[x509.Certificate]
) -> x509.Certificate:
    if sid.name == "issuer_and_serial_number":
        serial = sid.chosen["serial_number"].native
        issuer = sid.chosen["issuer"].dump()
        for cert in certificates:
            if cert.serial_number == serial and cert.issuer.public_bytes() == issuer:
                return cert
    else:
        key_id = sid.chosen.native
        for cert in certificates:
            try:
                ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
            except x509.ExtensionNotFound:
                continue
            if ski.value.digest == key_id:
                return cert
    raise BadRequest("the signer's certificate is not in the SignedData")


def _check_message_digest(
    attrs: cms.CMSAttributes, content: bytes, hash_type: type[hashes.HashAlgorithm]
) -> None:
    for attr in attrs:
        if attr["type"].native == "message_digest":
            h = hashes.Hash(hash_type())
            h.update(content)
            if attr["values"][0].native != h.finalize():
                raise BadRequest("the message-digest attribute does not match the request")
            return
    raise BadRequest("signed attributes without a message-digest")


def _verify(
    cert: x509.Certificate, signature: bytes, data: bytes, hash_alg: hashes.HashAlgorithm
) -> None:
    try:
        key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm):
        raise BadRequest("the signer's public key cannot be decoded") from None
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), hash_alg)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(hash_alg))
        else:
            raise BadRequest("unsupported signer key type")
    except InvalidSignature:
        raise BadRequest("the renewal request's signature does not verify") from None


def sign_request(
    csr_der: bytes,
    certificate: x509.Certificate,
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
) -> bytes:
    """Wrap a PKCS#10 in a SignedData signed with the certificate being renewed (SHA-256)."""
    return (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(csr_der)
        .add_signer(certificate, key, hashes.SHA256())
        .sign(
            serialization.Encoding.DER,
            [pkcs7.PKCS7Options.NoCapabilities, pkcs7.PKCS7Options.Binary],
        )
    )
