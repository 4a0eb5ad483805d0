"""BER tolerance for CMS input: asn1crypto accepts a constructed OCTET STRING only in the
indefinite-length form, but Go's pkcs7 package (micromdm scepclient, many MDM servers) writes
the EnvelopedData encryptedContent as a definite-length constructed one (X.690 §8.7.3).
"""

from __future__ import annotations

from asn1crypto import parser


def _tlvs(data: bytes) -> list[tuple[int, int, int, bytes]]:
    """The (class, method, tag, contents) of each BER element in ``data``."""
    out: list[tuple[int, int, int, bytes]] = []
    pointer = 0
    while pointer < len(data):
        class_, method, tag, header, contents, trailer = parser.parse(data[pointer:])
        out.append((class_, method, tag, contents))
        pointer += len(header) + len(contents) + len(trailer)
    return out


def _octets(method: int, contents: bytes) -> bytes:
    """The value of a (possibly constructed, chunked) BER OCTET STRING."""
    if method == 0:
        return contents
    return b"".join(_octets(m, c) for _, m, _, c in _tlvs(contents))


def primitive_encrypted_content(der: bytes) -> bytes:
    """Re-encode ContentInfo(EnvelopedData) whose encryptedContent is a *definite-length
    constructed* OCTET STRING (BER, as Go's pkcs7 package writes it; asn1crypto accepts only the
    indefinite-length form) with a primitive one (X.690 §8.7)."""
    ((_, _, _, outer),) = _tlvs(der)
    oid, explicit = _tlvs(outer)
    ((_, _, _, env_contents),) = _tlvs(explicit[3])
    items = _tlvs(env_contents)
    rebuilt: list[bytes] = []
    seen_set = False
    for class_, method, tag, contents in items:
        if class_ == 0 and tag == 17:
            seen_set = True
        if seen_set and class_ == 0 and tag == 16:
            eci = _tlvs(contents)
            parts = [parser.emit(c, m, t, v) for c, m, t, v in eci[:-1]]
            last_class, last_method, last_tag, last = eci[-1]
            if last_class == 2 and last_tag == 0:
                parts.append(parser.emit(2, 0, 0, _octets(last_method, last)))
            else:
                parts.append(parser.emit(last_class, last_method, last_tag, last))
            rebuilt.append(parser.emit(0, 1, 16, b"".join(parts)))
            seen_set = False
        else:
            rebuilt.append(parser.emit(class_, method, tag, contents))
    env = parser.emit(0, 1, 16, b"".join(rebuilt))
    info = parser.emit(oid[0], oid[1], oid[2], oid[3]) + parser.emit(2, 1, 0, env)
    result: bytes = parser.emit(0, 1, 16, info)
    return result
