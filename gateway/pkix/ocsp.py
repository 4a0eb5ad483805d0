"""OCSP wire codec (RFC 6960 with the RFC 5019 lightweight profile): bytes in, bytes out.

Requests are parsed by ``cryptography.x509.ocsp`` where it can (one CertID of a hash it
knows: nearly every request, 60 times faster) and otherwise by asn1crypto, which reads what
cryptography refuses: several CertIDs (RFC 6960 §4.1.1) and hash algorithms it cannot name
(answered malformedRequest). :func:`parse_request` is the one entry; the fast path answers only
when its result is certain to equal the general one (the CertID it rebuilds is byte-equal to
the one sent), else the general path decides (``tests/unit/test_ocsp_codec.py`` checks both
agree). Responses are assembled from DER pieces (:mod:`gateway.pkix.der`) around a signature
made by whoever holds the responder key (a token or a software key, through one callable), so
no private key object is needed here; the CertID of each answer is the requester's CertID
echoed byte for byte (RFC 6960 §4.2.1: clients match answers to their CertIDs).

Nothing here does I/O; every malformed input raises :class:`MalformedOCSPRequest`.
"""

from __future__ import annotations

import enum
import functools
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.x509 import ocsp as x509_ocsp

from gateway.errors import BadRequest
from gateway.pkix.der import SEQUENCE, element_length, header_length, integer, oid, tlv

__all__ = [
    "CertID",
    "CertStatus",
    "Good",
    "IssuerHashes",
    "MalformedOCSPRequest",
    "OCSPRequest",
    "ResponseStatus",
    "Revoked",
    "SingleResponse",
    "Unknown",
    "error_response",
    "issuer_hashes",
    "key_hash",
    "parse_request",
    "signed_response",
]

#: id-pkix-ocsp-nonce (RFC 6960 §4.4.1), id-pkix-ocsp-basic (§4.2.1).
NONCE_OID = "1.3.6.1.5.5.7.48.1.2"
BASIC_OID = "1.3.6.1.5.5.7.48.1.1"
#: RFC 9654 §2.1 (which obsoletes RFC 8954's 32): a nonce is 1 to 128 octets.
MAX_NONCE = 128

#: CertID hash algorithms answered (RFC 6960 §4.1.1; RFC 5019 bis: SHA-256 beside SHA-1).
HASHES = {
    "1.3.14.3.2.26": "sha1",
    "2.16.840.1.101.3.4.2.1": "sha256",
    "2.16.840.1.101.3.4.2.2": "sha384",
    "2.16.840.1.101.3.4.2.3": "sha512",
}


class ResponseStatus(enum.IntEnum):
    """OCSPResponseStatus (RFC 6960 §4.2.1); 4 is unused."""

    SUCCESSFUL = 0
    MALFORMED_REQUEST = 1
    INTERNAL_ERROR = 2
    TRY_LATER = 3
    SIG_REQUIRED = 5
    UNAUTHORIZED = 6


class MalformedOCSPRequest(BadRequest):
    """The request is not an OCSPRequest this responder can answer (malformedRequest)."""


@dataclass(frozen=True)
class CertID:
    """One requested certificate (RFC 6960 §4.1.1); ``der`` is the CertID as sent."""

    hash_algorithm: str
    issuer_name_hash: bytes
    issuer_key_hash: bytes
    serial: int
    der: bytes = field(repr=False)


@dataclass(frozen=True)
class OCSPRequest:
    """A parsed request: its CertIDs in order and the nonce extension's extnValue content as
    sent (echoed verbatim, RFC 6960 §4.4.1), or ``None``."""

    cert_ids: tuple[CertID, ...]
    nonce: bytes | None = None


def parse_request(der: bytes) -> OCSPRequest:
    """Parse a DER OCSPRequest (RFC 6960 §4.1.1). An optional signature is neither checked
    nor read (RFC 5019 §2.1.2: responders may ignore it), nor are extensions other than the
    nonce. Raises :class:`MalformedOCSPRequest`."""
    if not der:
        raise MalformedOCSPRequest("empty OCSP request")
    fast = parse_single(der)
    return fast if fast is not None else parse_general(der)


_HASH_OIDS = {name: dotted for dotted, name in HASHES.items()}


def parse_single(der: bytes) -> OCSPRequest | None:
    """The fast path: a one-CertID request read by cryptography, or ``None`` when the general
    path must decide (several CertIDs, an unknown hash, anything cryptography refuses, a CertID
    or nonce it would not give back byte for byte)."""
    try:
        request = x509_ocsp.load_der_ocsp_request(der)
        name = request.hash_algorithm.name
        serial = request.serial_number
        name_hash, key_hash = request.issuer_name_hash, request.issuer_key_hash
        extensions = request.extensions
        cert_id = _single_cert_id(der)
    except (
        ValueError,
        UnsupportedAlgorithm,
        IndexError,
        NotImplementedError,
        x509.DuplicateExtension,
    ):
        return None
    dotted = _HASH_OIDS.get(name)
    if dotted is None or cert_id is None:
        return None
    body = tlv(0x04, name_hash) + tlv(0x04, key_hash) + integer(serial)
    if cert_id not in (
        tlv(SEQUENCE, tlv(SEQUENCE, oid(dotted) + b"\x05\x00") + body),
        tlv(SEQUENCE, tlv(SEQUENCE, oid(dotted)) + body),
    ):
        return None
    size = hashlib.new(name).digest_size
    if len(name_hash) != size or len(key_hash) != size:
        return None
    nonce = None
    if len(extensions) == 1 and isinstance(extensions[0].value, x509.OCSPNonce):
        inner = extensions[0].value.nonce
        if not 1 <= len(inner) <= MAX_NONCE:
            return None
        nonce = tlv(0x04, inner)
    elif len(extensions) != 0:
        return None
    # Certain only for the plain shape, byte for byte: no version, requestor, signature or
    # other extension (the general path reads those).
    if der != _plain_request(cert_id, nonce):
        return None
    return OCSPRequest((CertID(name, name_hash, key_hash, serial, cert_id),), nonce)


def _plain_request(cert_id: bytes, nonce: bytes | None) -> bytes:
    """``OCSPRequest { TBSRequest { requestList { Request { reqCert } }, [2] nonce? } }``."""
    extensions = b""
    if nonce is not None:
        extension = tlv(SEQUENCE, oid(NONCE_OID) + tlv(0x04, nonce))
        extensions = tlv(0xA2, tlv(SEQUENCE, extension))
    request_list = tlv(SEQUENCE, tlv(SEQUENCE, cert_id))
    return tlv(SEQUENCE, tlv(SEQUENCE, request_list + extensions))


def _single_cert_id(der: bytes) -> bytes | None:
    """The CertID element of a one-request OCSPRequest that cryptography accepted (so DER):
    ``OCSPRequest { TBSRequest { [0] version?, [1] requestorName?, requestList { Request {
    CertID ...`` (RFC 6960 §4.1.1); ``None`` for a version other than v1."""
    offset = header_length(der, 0)  # into OCSPRequest
    offset += header_length(der, offset)  # into TBSRequest
    if der[offset] == 0xA0:  # version: only v1 (0), which DER would omit anyway
        if der[offset : offset + element_length(der, offset)] != b"\xa0\x03\x02\x01\x00":
            return None
        offset += element_length(der, offset)
    if der[offset] == 0xA1:
        offset += element_length(der, offset)
    offset += header_length(der, offset)  # into requestList
    offset += header_length(der, offset)  # into the Request
    return der[offset : offset + element_length(der, offset)]


def parse_general(der: bytes) -> OCSPRequest:
    """The general path (asn1crypto): every request RFC 6960 allows. Raises
    :class:`MalformedOCSPRequest`."""
    if not der:
        raise MalformedOCSPRequest("empty OCSP request")
    try:
        request = asn1_ocsp.OCSPRequest.load(der, strict=True)
        tbs = request["tbs_request"]
        if tbs["version"].native != "v1":
            raise MalformedOCSPRequest("unsupported OCSPRequest version")
        cert_ids = tuple(_cert_id(item["req_cert"]) for item in tbs["request_list"])
        nonce = _nonce(tbs["request_extensions"])
    except MalformedOCSPRequest:
        raise
    except (ValueError, TypeError, KeyError, IndexError, OverflowError, AttributeError) as exc:
        raise MalformedOCSPRequest(f"not a DER OCSPRequest: {str(exc)[:120]}") from None
    if not cert_ids:
        raise MalformedOCSPRequest("the OCSP request names no certificate")
    return OCSPRequest(cert_ids, nonce)


def _cert_id(value: asn1_ocsp.CertId) -> CertID:
    algorithm = value["hash_algorithm"]
    name = HASHES.get(algorithm["algorithm"].dotted)
    if name is None:
        raise MalformedOCSPRequest(
            f"unsupported CertID hash algorithm {algorithm['algorithm'].dotted}"
        )
    parameters = algorithm["parameters"]
    if parameters.native is not None:  # absent or NULL (RFC 5754 §2)
        raise MalformedOCSPRequest("CertID hash algorithm with parameters")
    name_hash, key_hash = value["issuer_name_hash"].native, value["issuer_key_hash"].native
    size = hashlib.new(name).digest_size
    if len(name_hash) != size or len(key_hash) != size:
        raise MalformedOCSPRequest(f"CertID hashes are not {name} digests")
    serial = value["serial_number"].native
    return CertID(name, name_hash, key_hash, serial, value.dump())


def _nonce(extensions: asn1_ocsp.TBSRequestExtensions) -> bytes | None:
    for extension in extensions:
        if extension["extn_id"].dotted != NONCE_OID:
            continue
        value: bytes = extension["extn_value"].contents
        # RFC 9654 §2.1: extnValue holds an OCTET STRING of 1..128 octets; a bare value
        # (what RFC 2560 clients sent) is measured as it is.
        inner = value
        if value[:1] == b"\x04":
            try:
                inner = asn1_ocsp.OctetString.load(value, strict=True).native
            except ValueError:
                inner = value
        if not 1 <= len(inner) <= MAX_NONCE:
            raise MalformedOCSPRequest(f"nonce of {len(inner)} octets (1 to {MAX_NONCE})")
        return value
    return None


# -- the issuer's side ------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuerHashes:
    """A CA's issuerNameHash and issuerKeyHash under every algorithm of :data:`HASHES`."""

    by_algorithm: dict[str, tuple[bytes, bytes]]

    def matches(self, cert_id: CertID) -> bool:
        pair = self.by_algorithm.get(cert_id.hash_algorithm)
        return pair == (cert_id.issuer_name_hash, cert_id.issuer_key_hash)


def _key_bits(certificate_der: bytes) -> bytes:
    """The subjectPublicKey BIT STRING's value without its unused-bits octet (RFC 6960 §4.1.1
    issuerKeyHash, §4.2.1 KeyHash)."""
    info = asn1_x509.Certificate.load(certificate_der)["tbs_certificate"]
    return bytes(info["subject_public_key_info"]["public_key"].contents[1:])


def issuer_hashes(certificate_der: bytes) -> IssuerHashes:
    """The CertID hashes that name ``certificate`` (a CA) as issuer."""
    tbs = asn1_x509.Certificate.load(certificate_der)["tbs_certificate"]
    name = tbs["subject"].dump()
    key = _key_bits(certificate_der)
    return IssuerHashes(
        {h: (hashlib.new(h, name).digest(), hashlib.new(h, key).digest()) for h in HASHES.values()}
    )


def key_hash(certificate_der: bytes) -> bytes:
    """ResponderID byKey: SHA-1 of the responder's public key bits (RFC 6960 §4.2.1)."""
    return hashlib.sha1(_key_bits(certificate_der)).digest()  # noqa: S324 (the RFC's hash)


# -- responses ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Good:
    """certStatus good (RFC 6960 §2.2)."""


@dataclass(frozen=True)
class Revoked:
    """certStatus revoked: when, and the CRLReason code (RFC 5280 §5.3.1) or ``None``."""

    at: datetime
    reason: int | None = None


@dataclass(frozen=True)
class Unknown:
    """certStatus unknown: this responder does not know the certificate."""


CertStatus = Good | Revoked | Unknown


@dataclass(frozen=True)
class SingleResponse:
    """One answer (RFC 6960 §4.2.1 SingleResponse)."""

    cert_id: CertID
    status: CertStatus
    this_update: datetime
    next_update: datetime | None


@functools.lru_cache(maxsize=16)
def _time(when: datetime) -> bytes:
    """GeneralizedTime in UTC, whole seconds (RFC 5280 §4.1.2.5.2); remembered, as a response
    repeats one producedAt/thisUpdate and one nextUpdate, and so do the responses of a second."""
    return tlv(0x18, when.astimezone(UTC).strftime("%Y%m%d%H%M%SZ").encode("ascii"))


_GOOD = bytes((0x80, 0x00))
_UNKNOWN = bytes((0x82, 0x00))


def _status(status: CertStatus) -> bytes:
    if isinstance(status, Good):
        return _GOOD
    if isinstance(status, Unknown):
        return _UNKNOWN
    body = _time(status.at)
    if status.reason is not None:
        body += tlv(0xA0, tlv(0x0A, bytes((status.reason,))))
    return tlv(0xA1, body)


def _single(response: SingleResponse) -> bytes:
    body = response.cert_id.der + _status(response.status) + _time(response.this_update)
    if response.next_update is not None:
        body += tlv(0xA0, _time(response.next_update))
    return tlv(SEQUENCE, body)


def response_data(
    responder_key_hash: bytes,
    produced_at: datetime,
    responses: Sequence[SingleResponse],
    nonce: bytes | None,
) -> bytes:
    """The DER ResponseData (tbsResponseData, RFC 6960 §4.2.1): version v1 (the DEFAULT,
    omitted), responderID byKey, producedAt, the answers, and the nonce echoed when given."""
    body = tlv(0xA2, tlv(0x04, responder_key_hash)) + _time(produced_at)
    body += tlv(SEQUENCE, b"".join(_single(r) for r in responses))
    if nonce is not None:
        extension = tlv(SEQUENCE, oid(NONCE_OID) + tlv(0x04, nonce))
        body += tlv(0xA1, tlv(SEQUENCE, extension))
    return tlv(SEQUENCE, body)


def signed_response(
    tbs: bytes,
    signature_algorithm: bytes,
    sign: Callable[[bytes], bytes],
    certs: Sequence[bytes] = (),
) -> bytes:
    """A successful OCSPResponse with a BasicOCSPResponse over ``tbs`` (RFC 6960 §4.2.1):
    ``sign`` signs the ResponseData, ``signature_algorithm`` is its DER AlgorithmIdentifier,
    ``certs`` the DER certificates that help verify it (a delegated responder's)."""
    body = tbs + signature_algorithm + tlv(0x03, b"\x00" + sign(tbs))
    if certs:
        body += tlv(0xA0, tlv(SEQUENCE, b"".join(certs)))
    basic = tlv(SEQUENCE, body)
    response_bytes = tlv(SEQUENCE, oid(BASIC_OID) + tlv(0x04, basic))
    return tlv(SEQUENCE, b"\x0a\x01\x00" + tlv(0xA0, response_bytes))


def error_response(status: ResponseStatus) -> bytes:
    """An unsuccessful OCSPResponse: the status alone, unsigned (RFC 6960 §2.3)."""
    if status is ResponseStatus.SUCCESSFUL:
        raise ValueError("a successful response carries a signed BasicOCSPResponse")
    return tlv(SEQUENCE, tlv(0x0A, bytes((int(status),))))
