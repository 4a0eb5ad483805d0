"""Degenerate certificates-only CMS SignedData: the one builder and the one reader.

The same structure answers EST (RFC 7030 §4.1.3 ``/cacerts``, §4.2.3 the issued certificate),
SCEP (RFC 8894 §3.4 degenerate certs-only: GetCACert, a CertRep's inner content, GetCRL),
ACME's ``application/pkcs7-mime`` chain (RFC 8555 §7.4.2) and the MS-WSTEP issuer chain
(MS-WSTEP §3.1.4.1.3.2): ContentInfo(SignedData) version 1, no digest algorithms, ``id-data``
without content, no signers (RFC 5652 §5.1, §5.2).

**Certificate order: the order given, which callers make the chain order** -- the certificate
the answer is about first (the issued certificate, or SCEP's RA certificate), then its
issuers toward the root, as TLS (RFC 8446 §4.4.2) and ACME's PEM chain (RFC 8555 §9.1) order
them. ``certificates`` is a SET OF, so none of these RFCs gives the order a meaning, but
readers keep the encoded order (OpenSSL, asn1crypto, Go's pkcs7, CryptoAPI) and clients that
number the certificates see the RA or issued certificate first; the SCEP GetCACert tests
assert RA, issuing CA, root. CMS is BER (RFC 5652 §1; only signed attributes must be DER,
§5.4), so a SET OF in chain order rather than X.690 §11.6 sort order is well-formed. The cost:
cryptography's strict DER reader (``pkcs7.load_der_pkcs7_certificates``) warns about the
unsorted SET before falling back to BER, which is why certgate reads with
:func:`read_certs_only` (asn1crypto, which keeps the encoded order).

The DER is assembled from the certificates' own encodings: about 9 µs for one certificate,
within 10% of cryptography's PKCS#7 serializer (which sorts the SET instead), and the same
bytes as it for one certificate.
"""

from __future__ import annotations

from collections.abc import Sequence

from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gateway.pkix.cms_algorithms import CMSError
from gateway.pkix.der import integer, oid, tlv

_ID_DATA = "1.2.840.113549.1.7.1"
_ID_SIGNED_DATA = "1.2.840.113549.1.7.2"


def certs_only_der(
    certificates: Sequence[x509.Certificate | bytes], crls: Sequence[bytes] = ()
) -> bytes:
    """DER ContentInfo(SignedData) holding ``certificates`` in the order given (see the module
    docstring: the chain order, subject certificate first) and the DER ``crls`` (SCEP GetCRL,
    RFC 8894 §3.3.2: no certificate, one CRL); no signers, no content. ``ValueError`` when
    both are empty: an empty certs-only answers nothing. A certificate may be given as its DER
    (a CA's fresh issuance has it at hand: encoding the object again costs more than the rest
    of this function)."""
    if not certificates and not crls:
        raise ValueError("a certs-only SignedData needs at least one certificate or CRL")
    body = integer(1) + tlv(0x31, b"") + tlv(0x30, oid(_ID_DATA))
    if certificates:
        der = serialization.Encoding.DER
        body += tlv(
            0xA0,
            b"".join(c if isinstance(c, bytes) else c.public_bytes(der) for c in certificates),
        )
    if crls:
        body += tlv(0xA1, b"".join(crls))
    body += tlv(0x31, b"")
    return tlv(0x30, oid(_ID_SIGNED_DATA) + tlv(0xA0, tlv(0x30, body)))


def read_certs_only(der: bytes) -> tuple[tuple[x509.Certificate, ...], tuple[bytes, ...]]:
    """The certificates, in their encoded order, and the DER CRLs of a certs-only (or any)
    ContentInfo(SignedData), DER or BER; signatures, if any, are not looked at. Anything
    else, or a certificate cryptography cannot load, raises :class:`CMSError`."""
    try:
        info = cms.ContentInfo.load(der, strict=True)
        if info["content_type"].dotted != _ID_SIGNED_DATA:
            raise CMSError(f"ContentInfo is {info['content_type'].dotted}, not SignedData")
        signed = info["content"]
        chosen = [c.chosen.dump() for c in signed["certificates"] or [] if c.name == "certificate"]
        crls = tuple(c.chosen.dump() for c in signed["crls"] or [])
    except CMSError:
        raise
    except (ValueError, TypeError, KeyError, OverflowError) as exc:
        raise CMSError(f"not a certs-only SignedData: {str(exc)[:120]}") from None
    try:
        certs = tuple(x509.load_der_x509_certificate(c) for c in chosen)
    except (ValueError, x509.InvalidVersion) as exc:  # InvalidVersion is no ValueError
        raise CMSError(f"unparseable certificate in SignedData: {str(exc)[:120]}") from None
    return certs, crls
