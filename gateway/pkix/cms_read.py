"""Fast readers for the two CMS structures of every SCEP request: the pkiMessage's
SignedData (RFC 5652 §5) and its pkcsPKIEnvelope's EnvelopedData (§6), walked as DER octets.

asn1crypto's object model cost the SCEP worker about as much as the RSA private-key operation
per request (270-400 µs to parse a pkiMessage and 85-130 µs to find its envelope's fields;
walking the octets takes about 50 and 20 µs). These readers accept only the plain DER shape
that certgate's and OpenSSL's clients send -- definite lengths, a primitive eContent and
encryptedContent, one SignerInfo by issuerAndSerialNumber, the SCEP and CMS signed attributes
with their usual types, PKCS#1 v1.5 key transport -- and answer ``None`` for anything else, so
that :mod:`gateway.pkix.cms`'s asn1crypto path (the seam's plain path) decides, value or error.
They never raise: a ``None`` costs only the walk. tests/unit/test_cms_read_paths.py holds
every answer that is not ``None`` equal to the plain path's, on valid and mutated messages.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from asn1crypto import algos, core
from asn1crypto import cms as asn1_cms

from gateway.pkix.cms_algorithms import CIPHERS
from gateway.pkix.der import oid

_ID_DATA = oid("1.2.840.113549.1.7.1")
_ID_SIGNED_DATA = oid("1.2.840.113549.1.7.2")
_ID_ENVELOPED_DATA = oid("1.2.840.113549.1.7.3")
_RSA_ENCRYPTION = oid("1.2.840.113549.1.1.1")

_PRINTABLE, _OCTETS, _OID, _UTC_TIME, _GENERALIZED_TIME = 0x13, 0x04, 0x06, 0x17, 0x18
#: Signed attributes read here, by DER OID, with the value tags accepted for each. Other
#: attributes or tags go to the plain path, which parses every value by its type.
_ATTRIBUTE_TAGS: dict[bytes, frozenset[int]] = {
    oid("1.2.840.113549.1.9.3"): frozenset({_OID}),  # contentType (only id-data, see below)
    oid("1.2.840.113549.1.9.4"): frozenset({_OCTETS}),  # messageDigest
    oid("1.2.840.113549.1.9.5"): frozenset({_UTC_TIME, _GENERALIZED_TIME}),  # signingTime
    oid("2.16.840.1.113733.1.9.2"): frozenset({_PRINTABLE}),  # messageType
    oid("2.16.840.1.113733.1.9.3"): frozenset({_PRINTABLE}),  # pkiStatus
    oid("2.16.840.1.113733.1.9.4"): frozenset({_PRINTABLE}),  # failInfo
    oid("2.16.840.1.113733.1.9.5"): frozenset({_OCTETS}),  # senderNonce
    oid("2.16.840.1.113733.1.9.6"): frozenset({_OCTETS}),  # recipientNonce
    oid("2.16.840.1.113733.1.9.7"): frozenset({_PRINTABLE}),  # transactionID
}
_CONTENT_TYPE = oid("1.2.840.113549.1.9.3")


class _Shape(Exception):
    """The input is not the plain DER shape these readers handle."""


#: What sends a reading to the plain path: a shape not handled here, or any surprise from a
#: value decoded on the way (the plain path maps these to its CMSError).
_FALL_BACK = (_Shape, IndexError, ValueError, TypeError, KeyError, OverflowError, AttributeError)


@dataclass(frozen=True)
class SignedFields:
    """What :func:`gateway.pkix.cms.parse_signed` reads from a SignedData, as DER and names;
    ``signer`` indexes ``certificates``."""

    content: bytes | None
    content_type: str
    certificates: tuple[bytes, ...]
    signer: int
    digest_algorithm: str
    attributes: dict[str, bytes]
    signed_attrs_der: bytes
    signature: bytes
    signature_algorithm: str


@dataclass(frozen=True)
class EnvelopeFields:
    """What :func:`gateway.pkix.cms.decrypt_enveloped` needs of an EnvelopedData addressed to
    its recipient: the wrapped key, how it is wrapped, and the encrypted content.
    ``oaep_params`` is the asn1crypto parameters value (the plain path only; OAEP is not read
    here), ``iv`` whatever the parameters decode to (checked by the caller)."""

    encrypted_key: bytes
    transport: str
    oaep_params: object
    cipher: str
    iv: object
    ciphertext: object


def _element(der: bytes, offset: int, end: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the element at ``offset``, inside ``end``."""
    if offset + 2 > end:
        raise _Shape
    tag, first = der[offset], der[offset + 1]
    if tag & 0x1F == 0x1F:
        raise _Shape  # multi-octet tag
    if first < 0x80:
        start, length = offset + 2, first
    else:
        count = first & 0x7F
        if count == 0 or count > 4:
            raise _Shape  # indefinite (BER) or absurd length
        start = offset + 2 + count
        length = int.from_bytes(der[offset + 2 : start], "big")
    if start + length > end:
        raise _Shape
    return tag, start, start + length


def _children(der: bytes, start: int, end: int) -> list[tuple[int, int, int, int]]:
    """(tag, element start, content start, content end) of each element in ``[start, end)``."""
    out = []
    offset = start
    while offset < end:
        tag, cstart, cend = _element(der, offset, end)
        out.append((tag, offset, cstart, cend))
        offset = cend
    return out


def _expect(children: list[tuple[int, int, int, int]], *tags: int) -> None:
    if tuple([c[0] for c in children]) != tags:
        raise _Shape


@functools.lru_cache(maxsize=64)
def _dotted(der_oid: bytes) -> str:
    """The dotted text of a DER OBJECT IDENTIFIER, through asn1crypto (cached per OID)."""
    return str(core.ObjectIdentifier.load(der_oid).dotted)


def _name(der_oid: bytes, names: dict[str, str]) -> str:
    """asn1crypto's name for the OID (what ``.native`` gives), or _Shape when it has none."""
    try:
        return names[_dotted(der_oid)]
    except (KeyError, ValueError):
        raise _Shape from None


def _content_info(der: bytes, content_type: bytes) -> tuple[int, int]:
    """The [0] EXPLICIT content's SEQUENCE (content start, end) of a ContentInfo spanning
    all of ``der`` (the plain path loads it strictly: no trailing octets)."""
    tag, start, end = _element(der, 0, len(der))
    if tag != 0x30 or end != len(der):
        raise _Shape
    kids = _children(der, start, end)
    _expect(kids, 0x06, 0xA0)
    if der[kids[0][1] : kids[0][3]] != content_type:
        raise _Shape
    inner = _children(der, kids[1][2], kids[1][3])
    _expect(inner, 0x30)
    return inner[0][2], inner[0][3]


def _issuer_and_serial(der: bytes, start: int, end: int) -> tuple[bytes, int]:
    kids = _children(der, start, end)
    _expect(kids, 0x30, 0x02)
    issuer = der[kids[0][1] : kids[0][3]]
    return issuer, int.from_bytes(der[kids[1][2] : kids[1][3]], "big", signed=True)


def _cert_issuer_and_serial(der: bytes) -> tuple[bytes, int]:
    """issuer (DER) and serialNumber of a Certificate (RFC 5280 §4.1)."""
    tag, start, end = _element(der, 0, len(der))
    if tag != 0x30:
        raise _Shape
    tag, start, end = _element(der, start, end)  # tbsCertificate
    if tag != 0x30:
        raise _Shape
    kids = _children(der, start, end)
    if kids and kids[0][0] == 0xA0:
        kids = kids[1:]  # [0] EXPLICIT version
    if len(kids) < 3 or (kids[0][0], kids[1][0], kids[2][0]) != (0x02, 0x30, 0x30):
        raise _Shape
    serial = int.from_bytes(der[kids[0][2] : kids[0][3]], "big", signed=True)
    return der[kids[2][1] : kids[2][3]], serial


def _attributes(der: bytes, start: int, end: int) -> dict[str, bytes]:
    """Signed attributes: dotted OID -> DER of the first value (as the plain path keeps)."""
    attributes: dict[str, bytes] = {}
    for tag, _, astart, aend in _children(der, start, end):
        if tag != 0x30:
            raise _Shape
        kids = _children(der, astart, aend)
        _expect(kids, 0x06, 0x31)
        type_der = der[kids[0][1] : kids[0][3]]
        tags = _ATTRIBUTE_TAGS.get(type_der)
        values = _children(der, kids[1][2], kids[1][3])
        if tags is None or not values:
            raise _Shape
        for vtag, vstart, _, vend in values:
            value = der[vstart:vend]
            if vtag not in tags:
                raise _Shape
            if type_der == _CONTENT_TYPE and value != _ID_DATA:
                raise _Shape
            if vtag in (_UTC_TIME, _GENERALIZED_TIME):
                asn1_cms.Time.load(value).native  # noqa: B018 (the plain path decodes it too)
        first = values[0]
        attributes.setdefault(_dotted(type_der), der[first[1] : first[3]])
    return attributes


def signed_fields(der: bytes) -> SignedFields | None:
    """The SignedData fields of a plain-DER pkiMessage, or None (see the module docstring)."""
    try:
        return _signed_fields(der)
    except _FALL_BACK:
        return None


def _signed_fields(der: bytes) -> SignedFields:
    start, end = _content_info(der, _ID_SIGNED_DATA)
    kids = _children(der, start, end)
    tags = [k[0] for k in kids]
    if tags not in ([2, 0x31, 0x30, 0xA0, 0x31], [2, 0x31, 0x30, 0xA0, 0xA1, 0x31]):
        raise _Shape
    encap = _children(der, kids[2][2], kids[2][3])
    if (
        len(encap) not in (1, 2)
        or encap[0][0] != 0x06
        or der[encap[0][1] : encap[0][3]] != _ID_DATA
    ):
        raise _Shape
    content = None
    if len(encap) == 2:
        inner = _children(der, encap[1][2], encap[1][3])
        if encap[1][0] != 0xA0 or len(inner) != 1 or inner[0][0] != _OCTETS:
            raise _Shape
        content = der[inner[0][2] : inner[0][3]]
    certs = []
    for tag, cstart, _, cend in _children(der, kids[3][2], kids[3][3]):
        if tag != 0x30:
            raise _Shape
        certs.append(der[cstart:cend])
    infos = _children(der, kids[-1][2], kids[-1][3])
    _expect(infos, 0x30)
    info = _children(der, infos[0][2], infos[0][3])
    if len(info) == 7 and info[6][0] == 0xA1:
        info = info[:6]  # unsignedAttrs
    _expect(info, 0x02, 0x30, 0x30, 0xA0, 0x30, 0x04)
    issuer, serial = _issuer_and_serial(der, info[1][2], info[1][3])
    signer = next(
        (i for i, c in enumerate(certs) if _cert_issuer_and_serial(c) == (issuer, serial)), None
    )
    if signer is None or info[3][2] == info[3][3]:
        raise _Shape
    digest = _children(der, info[2][2], info[2][3])
    sig_alg = _children(der, info[4][2], info[4][3])
    if not 1 <= len(digest) <= 2 or not 1 <= len(sig_alg) <= 2:
        raise _Shape
    if digest[0][0] != 0x06 or sig_alg[0][0] != 0x06:
        raise _Shape
    return SignedFields(
        content=content,
        content_type="1.2.840.113549.1.7.1",
        certificates=tuple(certs),
        signer=signer,
        digest_algorithm=_name(der[digest[0][1] : digest[0][3]], algos.DigestAlgorithmId._map),
        attributes=_attributes(der, info[3][2], info[3][3]),
        signed_attrs_der=b"\x31" + der[info[3][1] + 1 : info[3][3]],
        signature=der[info[5][2] : info[5][3]],
        signature_algorithm=_name(
            der[sig_alg[0][1] : sig_alg[0][3]], algos.SignedDigestAlgorithmId._map
        ),
    )


def envelope_fields(
    der: bytes, issuer: bytes, serial: int, ski: bytes | None
) -> EnvelopeFields | None:
    """The fields of a plain-DER EnvelopedData for the KeyTransRecipientInfo with PKCS#1 v1.5
    addressed to (``issuer``, ``serial``) or ``ski``, or None (see the module docstring)."""
    try:
        return _envelope_fields(der, issuer, serial, ski)
    except _FALL_BACK:
        return None


def _envelope_fields(der: bytes, issuer: bytes, serial: int, ski: bytes | None) -> EnvelopeFields:
    start, end = _content_info(der, _ID_ENVELOPED_DATA)
    kids = _children(der, start, end)
    if len(kids) == 4 and kids[3][0] == 0xA1:
        kids = kids[:3]  # unprotectedAttrs
    _expect(kids, 0x02, 0x31, 0x30)
    found = None
    for tag, _, rstart, rend in _children(der, kids[1][2], kids[1][3]):
        if tag != 0x30:
            raise _Shape  # not a KeyTransRecipientInfo
        ktri = _children(der, rstart, rend)
        if len(ktri) != 4 or (ktri[0][0], ktri[2][0], ktri[3][0]) != (0x02, 0x30, _OCTETS):
            raise _Shape
        rid_tag, _, ridstart, ridend = ktri[1]
        if rid_tag == 0x30:
            match = _issuer_and_serial(der, ridstart, ridend) == (issuer, serial)
        elif rid_tag == 0x80:
            match = der[ridstart:ridend] == ski
        else:
            raise _Shape
        if match and found is None:
            found = ktri
    if found is None:
        raise _Shape
    kea = _children(der, found[2][2], found[2][3])
    if not 1 <= len(kea) <= 2 or kea[0][0] != 0x06 or der[kea[0][1] : kea[0][3]] != _RSA_ENCRYPTION:
        raise _Shape
    eci = _children(der, kids[2][2], kids[2][3])
    _expect(eci, 0x06, 0x30, 0x80)
    alg = _children(der, eci[1][2], eci[1][3])
    _expect(alg, 0x06, _OCTETS)
    cipher = _name(der[alg[0][1] : alg[0][3]], algos.EncryptionAlgorithmId._map)
    if cipher not in CIPHERS:
        raise _Shape
    return EnvelopeFields(
        encrypted_key=der[found[3][2] : found[3][3]],
        transport="rsaes_pkcs1v15",
        oaep_params=None,
        cipher=cipher,
        iv=der[alg[1][2] : alg[1][3]],
        ciphertext=der[eci[2][2] : eci[2][3]],
    )
