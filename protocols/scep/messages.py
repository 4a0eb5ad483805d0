"""SCEP wire codecs (RFC 8894): pkiMessage attributes, messageData bodies and CertRep.

Pure functions, no I/O. CMS itself is in :mod:`gateway.pkix.cms`; this module adds the SCEP
vocabulary on top: the VeriSign-arc signed attributes (§3.2.1), message types (§3.2.1.2),
pkiStatus (§3.2.1.3), failInfo (§3.2.1.4) and the CertPoll/GetCert/GetCRL bodies (§3.3.3,
§3.3.4). Parsers raise :class:`MessageError` carrying the failInfo a reply should use.
"""

from __future__ import annotations

import base64
import binascii
import enum
import os
import re
import urllib.parse
from dataclasses import dataclass

from asn1crypto import cms as asn1_cms
from asn1crypto import core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gateway.pkix import cms
from gateway.pkix.der import tlv

# RFC 8894 §3.2.1, Table 1: signed attributes under 2.16.840.1.113733.1.9.
OID_MESSAGE_TYPE = "2.16.840.1.113733.1.9.2"
OID_PKI_STATUS = "2.16.840.1.113733.1.9.3"
OID_FAIL_INFO = "2.16.840.1.113733.1.9.4"
OID_SENDER_NONCE = "2.16.840.1.113733.1.9.5"
OID_RECIPIENT_NONCE = "2.16.840.1.113733.1.9.6"
OID_TRANSACTION_ID = "2.16.840.1.113733.1.9.7"
#: id-scep-failInfoText (RFC 8894 §3.2.1, Table 2): id-pkix 24 1.
OID_FAIL_INFO_TEXT = "1.3.6.1.5.5.7.24.1"

NONCE_BYTES = 16
#: The store's column is 255 wide; renewals append "/renewal/<serial>" (enrollment.py, up to
#: 49 characters), generations "#g<k>" and attempts "#<n>" (transactions.py, a dozen more).
MAX_TRANSACTION_ID = 192


class MessageType(enum.IntEnum):
    """messageType values (RFC 8894 §3.2.1.2)."""

    CERT_REP = 3
    RENEWAL_REQ = 17
    PKCS_REQ = 19
    CERT_POLL = 20
    GET_CERT = 21
    GET_CRL = 22


class PKIStatus(enum.IntEnum):
    """pkiStatus values (RFC 8894 §3.2.1.3)."""

    SUCCESS = 0
    FAILURE = 2
    PENDING = 3


class FailInfo(enum.IntEnum):
    """failInfo values (RFC 8894 §3.2.1.4)."""

    BAD_ALG = 0
    BAD_MESSAGE_CHECK = 1
    BAD_REQUEST = 2
    BAD_TIME = 3
    BAD_CERT_ID = 4


class MessageError(Exception):
    """The request cannot be served; ``fail_info`` says how a CertRep FAILURE reports it."""

    def __init__(self, fail_info: FailInfo, detail: str) -> None:
        super().__init__(detail)
        self.fail_info = fail_info
        self.detail = detail


class TransportError(Exception):
    """The HTTP request is not a SCEP request at all (no CertRep can be built): HTTP 400."""


@dataclass(frozen=True)
class PKIMessage:
    """The outer layer of a request (RFC 8894 §3.2): who signed it and the routing attributes.

    The signature is verified by :func:`verify`; ``envelope`` is the still-encrypted
    pkcsPKIEnvelope (§3.2.2).
    """

    signed: cms.SignedMessage
    message_type: int
    transaction_id: str
    sender_nonce: bytes

    @property
    def signer(self) -> x509.Certificate:
        return self.signed.signer

    @property
    def digest(self) -> str:
        return self.signed.digest_algorithm

    @property
    def envelope(self) -> bytes | None:
        return self.signed.content


def _printable(der: bytes | None, name: str) -> str:
    if der is None:
        raise MessageError(FailInfo.BAD_REQUEST, f"the {name} attribute is missing")
    try:
        value = core.Asn1Value.load(der).native
    except ValueError:
        raise MessageError(FailInfo.BAD_REQUEST, f"the {name} attribute is malformed") from None
    if not isinstance(value, str):
        raise MessageError(FailInfo.BAD_REQUEST, f"the {name} attribute is not a string")
    return value


def parse_pki_message(der: bytes) -> PKIMessage:
    """Parse the SignedData of a pkiMessage and its SCEP attributes (RFC 8894 §3.2, §3.2.1).

    Raises :class:`TransportError` when no CertRep could be addressed: not CMS, no signer
    certificate, no signed attributes, or no usable transactionID or senderNonce (both must be
    echoed). A missing or malformed messageType is kept as -1 and refused later with a CertRep.
    """
    try:
        signed = cms.parse_signed(der)
    except cms.CMSError as exc:
        raise TransportError(f"not a SCEP pkiMessage: {exc}") from None
    try:
        transaction_id = _printable(signed.attributes.get(OID_TRANSACTION_ID), "transactionID")
    except MessageError as exc:
        raise TransportError(exc.detail) from None
    if not transaction_id or len(transaction_id) > MAX_TRANSACTION_ID:
        raise TransportError("the transactionID is empty or too long")
    nonce_der = signed.attributes.get(OID_SENDER_NONCE)
    try:
        nonce = core.OctetString.load(nonce_der).native if nonce_der else None
    except ValueError:
        nonce = None
    if not isinstance(nonce, bytes) or not 0 < len(nonce) <= 64:
        raise TransportError("the senderNonce is missing or malformed")
    try:
        message_type = int(_printable(signed.attributes.get(OID_MESSAGE_TYPE), "messageType"))
    except (MessageError, ValueError):
        message_type = -1
    return PKIMessage(signed, message_type, transaction_id, nonce)


def verify(message: PKIMessage) -> None:
    """Verify the signature (RFC 8894 §3.2); the failInfo is badMessageCheck or badAlg."""
    if message.signed.content_type != cms.ID_DATA:
        raise MessageError(FailInfo.BAD_REQUEST, "the encapsulated content type is not id-data")
    try:
        cms.verify_signed(message.signed)
    except cms.UnsupportedAlgorithm as exc:
        raise MessageError(FailInfo.BAD_ALG, str(exc)) from None
    except cms.SignatureError as exc:
        raise MessageError(FailInfo.BAD_MESSAGE_CHECK, str(exc)) from None


class IssuerAndSubject(core.Sequence):  # type: ignore[misc]
    """RFC 8894 §3.3.3: ``SEQUENCE { issuer Name, subject Name }``."""

    _fields = [("issuer", asn1_x509.Name), ("subject", asn1_x509.Name)]


@dataclass(frozen=True)
class IssuerAndSerial:
    """GetCert/GetCRL messageData (RFC 8894 §3.3.4): an IssuerAndSerialNumber."""

    issuer_der: bytes
    serial: int


def parse_issuer_and_serial(der: bytes) -> IssuerAndSerial:
    """Decode an IssuerAndSerialNumber (RFC 5652 §10.2.4)."""
    try:
        ias = asn1_cms.IssuerAndSerialNumber.load(der, strict=True)
        return IssuerAndSerial(ias["issuer"].dump(), int(ias["serial_number"].native))
    except (ValueError, TypeError) as exc:
        raise MessageError(FailInfo.BAD_REQUEST, f"bad IssuerAndSerialNumber: {exc}") from None


def parse_issuer_and_subject(der: bytes) -> tuple[bytes, bytes]:
    """Decode CertPoll's IssuerAndSubject (RFC 8894 §3.3.3) into two DER Names. Polling is
    keyed on the transactionID; the names are only checked to be well formed."""

    try:
        value = IssuerAndSubject.load(der, strict=True)
        value.native  # noqa: B018 (parse fully)
        return value["issuer"].dump(), value["subject"].dump()
    except (ValueError, TypeError) as exc:
        raise MessageError(FailInfo.BAD_REQUEST, f"bad IssuerAndSubject: {exc}") from None


@dataclass(frozen=True)
class Reply:
    """What a CertRep says (RFC 8894 §3.3.2); ``content`` is the degenerate SignedData that
    SUCCESS carries, encrypted to ``recipient`` with ``cipher`` and ``key_transport``."""

    transaction_id: str
    recipient_nonce: bytes
    status: PKIStatus
    fail_info: FailInfo | None = None
    fail_text: str | None = None
    content: bytes | None = None
    recipient: x509.Certificate | None = None
    cipher: str = "aes128_cbc"
    key_transport: str = "rsaes_pkcs1v15"
    digest: str = "sha256"


def _printable_der(text: str) -> bytes:
    """A PrintableString's DER, octet for octet what asn1crypto writes (Latin-1 text):
    encoded here without building an asn1crypto object on every CertRep."""
    return tlv(0x13, text.encode("latin1"))


def cert_rep(
    reply: Reply,
    signer: x509.Certificate,
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    extra_certs: tuple[x509.Certificate, ...] = (),
) -> bytes:
    """Build a signed CertRep pkiMessage (RFC 8894 §3.3.2). SUCCESS envelopes its content;
    FAILURE and PENDING omit the pkcsPKIEnvelope (§3.3.2.2, §3.3.2.3).

    Omitting the envelope leaves the id-data eContent an *empty* OCTET STRING, not an absent
    one (§3.2 keeps the encapsulated content type id-data): OpenSSL's PKCS7_verify, which
    certmonger and sscep use, refuses a SignedData without content ("no content") before it
    reads a single attribute, and clients then report the CA as unreachable."""
    attrs = [
        cms.attribute(OID_MESSAGE_TYPE, _printable_der(str(int(MessageType.CERT_REP)))),
        cms.attribute(OID_PKI_STATUS, _printable_der(str(int(reply.status)))),
        cms.attribute(OID_TRANSACTION_ID, _printable_der(reply.transaction_id)),
        cms.attribute(OID_SENDER_NONCE, tlv(0x04, os.urandom(NONCE_BYTES))),
        cms.attribute(OID_RECIPIENT_NONCE, tlv(0x04, reply.recipient_nonce)),
    ]
    if reply.status is PKIStatus.FAILURE:
        info = reply.fail_info if reply.fail_info is not None else FailInfo.BAD_REQUEST
        attrs.append(cms.attribute(OID_FAIL_INFO, _printable_der(str(int(info)))))
        if reply.fail_text:
            attrs.append(cms.attribute(OID_FAIL_INFO_TEXT, core.UTF8String(reply.fail_text)))
    content = b""
    if reply.status is PKIStatus.SUCCESS:
        if reply.content is None or reply.recipient is None:
            raise ValueError("a SUCCESS CertRep needs content and a recipient")
        content = cms.envelope(
            reply.content,
            reply.recipient,
            cipher=reply.cipher,
            key_transport=reply.key_transport,
        )
    return cms.sign(
        content, signer, key, digest=reply.digest, attributes=attrs, certificates=extra_certs
    )


# -- HTTP encoding (RFC 8894 §4.1) ----------------------------------------------------------

_B64_JUNK = re.compile(rb"[\r\n\t ]")


def decode_get_message(raw_query: str) -> bytes:
    """The DER of a GET PKIOperation ``message`` (RFC 8894 §4.1: standard base64, percent-
    encoded). Read from the *raw* query: macOS leaves '+' unescaped (so '+' is not a space),
    Cisco IOS sends %0A line breaks."""
    for part in raw_query.split("&"):
        name, _, value = part.partition("=")
        if name == "message":
            text = urllib.parse.unquote_to_bytes(value)
            text = _B64_JUNK.sub(b"", text)
            text += b"=" * (-len(text) % 4)
            try:
                return base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError):
                raise TransportError("the message parameter is not valid base64") from None
    raise TransportError("PKIOperation by GET needs a message parameter")


def caps_text(capabilities: tuple[str, ...]) -> str:
    """GetCACaps body (RFC 8894 §3.5.1): one keyword per line, exact case."""
    return "".join(f"{cap}\n" for cap in capabilities)
