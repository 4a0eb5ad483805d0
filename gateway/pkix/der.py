"""The few DER primitives certgate frames or walks by hand (X.690 §8.1, definite lengths).

Encoding goes through cryptography or asn1crypto wherever a structure is encoded once; these
helpers are for the hot paths that assemble or slice already-encoded pieces (the local CA's
TBSCertificate, CMS replies, the SubjectPublicKeyInfo inside a CSR). The readers assume DER
that a strict parser (cryptography's) has already accepted.
"""

from __future__ import annotations

import functools
from typing import Final

from cryptography import x509

SEQUENCE: Final = 0x30
_CRITICAL = bytes((0x01, 0x01, 0xFF))  # BOOLEAN TRUE; FALSE is the DEFAULT and omitted


def tlv(tag: int, content: bytes) -> bytes:
    """One DER element: tag, definite length (X.690 §8.1.3), content."""
    n = len(content)
    if n < 0x80:
        return bytes((tag, n)) + content
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(size))) + size + content


def integer(value: int) -> bytes:
    """A DER INTEGER (X.690 §8.3): minimal two's complement (§8.3.2: the first nine bits
    never all equal; a negative value needs the bits of ``~value`` plus a sign bit, so -128
    is one octet, 0x80)."""
    magnitude = value if value >= 0 else ~value
    return tlv(0x02, value.to_bytes(magnitude.bit_length() // 8 + 1, "big", signed=True))


@functools.lru_cache(maxsize=256)
def oid(dotted: str) -> bytes:
    """A DER OBJECT IDENTIFIER (X.690 §8.19): the first two arcs as 40 * X + Y, then each
    arc in base 128, high bit set on all but the last octet. Raises ``ValueError`` for text
    that is not an OID."""
    arcs = [int(a) for a in dotted.split(".")]
    if len(arcs) < 2 or arcs[0] > 2 or (arcs[0] < 2 and arcs[1] >= 40) or min(arcs) < 0:
        raise ValueError(f"not an OID: {dotted}")
    content = bytearray()
    for arc in [arcs[0] * 40 + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        content += bytes(reversed(chunk))
    return tlv(0x06, bytes(content))


def extension(ext: x509.Extension[x509.ExtensionType]) -> bytes:
    """``Extension ::= SEQUENCE { extnID, critical BOOLEAN DEFAULT FALSE, extnValue }``
    (RFC 5280 §4.1), the value encoded by cryptography."""
    body = oid(ext.oid.dotted_string) + (_CRITICAL if ext.critical else b"")
    return tlv(SEQUENCE, body + tlv(0x04, ext.value.public_bytes()))


def header_length(der: bytes, offset: int) -> int:
    """Octets of tag and length of the element at ``offset`` (single-octet tags only)."""
    first = der[offset + 1]
    return 2 if first < 0x80 else 2 + (first & 0x7F)


def element_length(der: bytes, offset: int) -> int:
    """Octets of the whole element at ``offset``: tag, length and content."""
    first = der[offset + 1]
    if first < 0x80:
        return 2 + first
    count = first & 0x7F
    return 2 + count + int.from_bytes(der[offset + 2 : offset + 2 + count], "big")


def csr_spki(csr_der: bytes) -> bytes:
    """The SubjectPublicKeyInfo element of a DER PKCS#10 request, as its bytes:
    ``CertificationRequest ::= SEQUENCE { certificationRequestInfo SEQUENCE { version INTEGER,
    subject Name, subjectPKInfo SubjectPublicKeyInfo, attributes [0] }, ... }`` (RFC 2986 §4).
    Raises ``ValueError`` if the structure does not have that shape."""
    try:
        offset = header_length(csr_der, 0)  # into CertificationRequest
        offset += header_length(csr_der, offset)  # into certificationRequestInfo
        offset += element_length(csr_der, offset)  # past version
        offset += element_length(csr_der, offset)  # past subject
        end = offset + element_length(csr_der, offset)
    except IndexError:
        raise ValueError("truncated CertificationRequest") from None
    if csr_der[offset] != SEQUENCE or end > len(csr_der):
        raise ValueError("CertificationRequest without a SubjectPublicKeyInfo")
    return csr_der[offset:end]


#: (length, prefix) of every SubjectPublicKeyInfo that has exactly one DER encoding for its key
#: and is therefore byte-equal to what cryptography writes for the decoded key: EC keys on the
#: named curves P-256/P-384/P-521 with an uncompressed point (SEC 1 §2.3.3, RFC 5480 §2),
#: Ed25519 and Ed448 (RFC 8410 §4). RSA and compressed points are re-encoded instead.
_CANONICAL_SPKI = {
    91: bytes.fromhex("3059301306072a8648ce3d020106082a8648ce3d030107034200") + b"\x04",
    120: bytes.fromhex("3076301006072a8648ce3d020106052b81040022036200") + b"\x04",
    158: bytes.fromhex("30819b301006072a8648ce3d020106052b810400230381860004"),
    44: bytes.fromhex("302a300506032b6570032100"),
    69: bytes.fromhex("3043300506032b6571033a00"),
}


def is_canonical_spki(spki: bytes) -> bool:
    """True if ``spki`` is one of the single-encoding key forms of :data:`_CANONICAL_SPKI`."""
    prefix = _CANONICAL_SPKI.get(len(spki))
    return prefix is not None and spki.startswith(prefix)
