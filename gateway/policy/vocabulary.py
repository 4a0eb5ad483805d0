"""Names a template file may use, and what they mean in X.509 terms.

Key usage names are the ``x509.KeyUsage`` field names (RFC 5280 §4.2.1.3); EKU names are the
RFC 5280 §4.2.1.12 purposes plus Microsoft smart-card logon; RDN types use the RFC 4514
short names (and ``serialNumber``, ``emailAddress``, ``UID``, ``DC``) or a dotted OID.
"""

from __future__ import annotations

import enum
import re

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


class KeyAlgorithm(enum.StrEnum):
    """Public key types a template may allow (AD CS v4 ``msPKI-Asymmetric-Algorithm``)."""

    RSA = "rsa"
    EC = "ec"
    ED25519 = "ed25519"
    ED448 = "ed448"


class SanType(enum.StrEnum):
    """SubjectAltName GeneralName kinds a template may allow (RFC 5280 §4.2.1.6)."""

    DNS = "dns"
    IP = "ip"
    EMAIL = "email"
    URI = "uri"


class SubjectSource(enum.StrEnum):
    """Where the subject comes from (MS-CRTD §2.28 ENROLLEE_SUPPLIES_SUBJECT vs. built).

    ``request``: the CSR subject, filtered by the RDN rules. ``requester``: built as
    ``CN=<principal>``; the CSR must carry an empty subject. ``both``: the CSR's RDNs per the
    rules, with the CN forced to the principal.
    """

    REQUEST = "request"
    REQUESTER = "requester"
    BOTH = "both"


#: ``x509.KeyUsage`` constructor arguments, in constructor order.
KEY_USAGES: tuple[str, ...] = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
    "encipher_only",
    "decipher_only",
)

#: Usages an end-entity template may not ask for: certgate never issues CA certificates and
#: RFC 5280 §4.2.1.3 ties keyCertSign to cA=TRUE.
CA_ONLY_USAGES = frozenset({"key_cert_sign", "crl_sign"})

EKUS: dict[str, x509.ObjectIdentifier] = {
    "server_auth": ExtendedKeyUsageOID.SERVER_AUTH,
    "client_auth": ExtendedKeyUsageOID.CLIENT_AUTH,
    "code_signing": ExtendedKeyUsageOID.CODE_SIGNING,
    "email_protection": ExtendedKeyUsageOID.EMAIL_PROTECTION,
    "time_stamping": ExtendedKeyUsageOID.TIME_STAMPING,
    "ocsp_signing": ExtendedKeyUsageOID.OCSP_SIGNING,
    "smartcard_logon": ExtendedKeyUsageOID.SMARTCARD_LOGON,
}

RDN_TYPES: dict[str, x509.ObjectIdentifier] = {
    "CN": NameOID.COMMON_NAME,
    "O": NameOID.ORGANIZATION_NAME,
    "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "C": NameOID.COUNTRY_NAME,
    "ST": NameOID.STATE_OR_PROVINCE_NAME,
    "L": NameOID.LOCALITY_NAME,
    "serialNumber": NameOID.SERIAL_NUMBER,
    "emailAddress": NameOID.EMAIL_ADDRESS,
    "DC": NameOID.DOMAIN_COMPONENT,
    "UID": NameOID.USER_ID,
}

#: Curve names as ``EllipticCurve.name`` reports them.
CURVES = frozenset(
    {
        "secp256r1",
        "secp384r1",
        "secp521r1",
        "secp256k1",
        "brainpoolP256r1",
        "brainpoolP384r1",
        "brainpoolP512r1",
    }
)

_OID = re.compile(r"(0|1|2)(\.(0|[1-9][0-9]*))+")


def check_oid(text: str) -> str:
    """Validate the syntax of a dotted-decimal OID (X.660: first arc 0-2, second arc < 40
    under 0 and 1)."""
    if not _OID.fullmatch(text):
        raise ValueError(f"{text!r} is not a dotted-decimal OID")
    arcs = text.split(".")
    if arcs[0] in ("0", "1") and int(arcs[1]) >= 40:
        raise ValueError(f"{text!r} is not a valid OID: second arc must be < 40 under 0 and 1")
    return text


def parse_oid(text: str) -> x509.ObjectIdentifier:
    """Parse a dotted-decimal OID (see :func:`check_oid`) that cryptography can encode and
    parse back: arcs must fit 128 bits, enough for ``2.25.<uuid as decimal>`` (X.667)."""
    try:
        return x509.ObjectIdentifier(check_oid(text))
    except ValueError as exc:
        if str(exc).startswith(repr(text)):
            raise
        raise ValueError(f"{text!r} has an arc larger than 128 bits") from None


def rdn_label(oid: x509.ObjectIdentifier) -> str:
    """The template spelling of an RDN type, for messages (``CN``, ``O``, or the dotted OID)."""
    for label, known in RDN_TYPES.items():
        if known == oid:
            return label
    return oid.dotted_string
