"""Render a certificate template as EST CSR attributes (RFC 7030 §4.5.2, RFC 8951 §4, RFC 9908
"Extensions to RFC 7030 section 4.5.2"). Pure: template in, :class:`CsrAttr` items out.

Emitted (the legacy AttrOrOID form; RFC 9908's CertificationRequestInfoTemplate is not sent):

* ``challengePassword`` as a bare OID when the label requires tls-unique linking (§3.5);
* one attribute per allowed key type: ``id-ecPublicKey`` with the allowed curve OIDs,
  ``rsaEncryption`` with the minimum modulus size as an INTEGER, bare ``id-Ed25519``/``id-Ed448``;
* the matching SHA-256 signature algorithms as bare OIDs;
* exactly one ``extensionRequest`` attribute with one ``Extensions`` value carrying the template's
  extended key usages (RFC 9908: exactly one such attribute, no duplicate extnIDs);
* ``subjectAltName`` as a bare OID when the template requires a SAN.

Order: every Attribute first, then the bare OIDs, so that the sequence ends with a bare OID.
RFC 7030 leaves the order free, and libest's client (its csrattrs walker) only stops after
a bare OID: a list ending with an Attribute makes it loop forever.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurveOID
from cryptography.x509.oid import ExtensionOID

from gateway.pkix.der import extension, integer, oid, tlv
from gateway.policy import CertificateTemplate, KeyAlgorithm
from protocols.est.messages import CsrAttr

CHALLENGE_PASSWORD = "1.2.840.113549.1.9.7"  # noqa: S105 - an OID
EXTENSION_REQUEST = "1.2.840.113549.1.9.14"
EC_PUBLIC_KEY = "1.2.840.10045.2.1"
RSA_ENCRYPTION = "1.2.840.113549.1.1.1"
ED25519 = "1.3.101.112"
ED448 = "1.3.101.113"
ECDSA_WITH_SHA256 = "1.2.840.10045.4.3.2"
SHA256_WITH_RSA = "1.2.840.113549.1.1.11"


def curve_oid(name: str) -> str | None:
    """The OID of a curve by its cryptography name (``secp256r1`` -> 1.2.840.10045.3.1.7)."""
    oid = getattr(EllipticCurveOID, name.upper(), None)
    return oid.dotted_string if isinstance(oid, x509.ObjectIdentifier) else None


def template_csrattrs(template: CertificateTemplate, *, pop_link: bool) -> tuple[CsrAttr, ...]:
    """The CSR attributes a client should use for ``template``."""
    items: list[CsrAttr] = []
    if pop_link:
        items.append(CsrAttr(CHALLENGE_PASSWORD))
    algorithms = template.key_policy.algorithms
    if KeyAlgorithm.EC in algorithms:
        curves = sorted(filter(None, (curve_oid(c) for c in template.key_policy.curves)))
        items.append(CsrAttr(EC_PUBLIC_KEY, tuple(oid(c) for c in curves)))
    if KeyAlgorithm.RSA in algorithms:
        items.append(CsrAttr(RSA_ENCRYPTION, (integer(template.key_policy.min_rsa_bits),)))
    if KeyAlgorithm.ED25519 in algorithms:
        items.append(CsrAttr(ED25519))
    if KeyAlgorithm.ED448 in algorithms:
        items.append(CsrAttr(ED448))
    if KeyAlgorithm.EC in algorithms:
        items.append(CsrAttr(ECDSA_WITH_SHA256))
    if KeyAlgorithm.RSA in algorithms:
        items.append(CsrAttr(SHA256_WITH_RSA))
    if template.key_usage.ekus:
        eku = x509.Extension(
            ExtensionOID.EXTENDED_KEY_USAGE,
            False,
            x509.ExtendedKeyUsage(list(template.key_usage.ekus)),
        )
        extensions = tlv(0x30, extension(eku))
        items.append(CsrAttr(EXTENSION_REQUEST, (extensions,)))
    if template.san.required:
        items.append(CsrAttr(ExtensionOID.SUBJECT_ALTERNATIVE_NAME.dotted_string))
    attributes = [item for item in items if item.values is not None]
    return (*attributes, *(item for item in items if item.values is None))
