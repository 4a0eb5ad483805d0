"""The CMS reading seams (gateway.pkix.cms): the octet-walking readers of
:mod:`gateway.pkix.cms_read` answer exactly what the asn1crypto path answers, on the pkiMessages
real clients send and on thousands of mutations of them, and leave every other shape to it."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from asn1crypto import core
from asn1crypto.core import Asn1Value
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.pkix import cms, cms_read
from gateway.pkix.cms_build import sign
from protocols.scep import messages as m
from tests import pki_helpers as pki
from tests import scep_client as sc

Ra = tuple[x509.Certificate, rsa.RSAPrivateKey]


@pytest.fixture(scope="module")
def ra() -> Ra:
    key = sc.rsa_key()
    return sc.self_signed(key, "ra"), key


def _csr_body() -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding

    return sc.make_csr(sc.rsa_key(1024), challenge="pw").public_bytes(Encoding.DER)


def _req(client: sc.Client, body: bytes, **kw: object) -> bytes:
    return client.message(int(m.MessageType.PKCS_REQ), body, **kw)  # type: ignore[arg-type]


def _messages(ra_cert: x509.Certificate) -> list[bytes]:
    """pkiMessages as the clients certgate meets build them: digests, ciphers, a CA-issued
    signer (a renewal), an EC signer, a Windows-style signer, a signingTime."""
    ca_key, ca_cert = pki.self_signed("ca", key=sc.rsa_key(1024))
    leaf_key = sc.rsa_key(1024)
    _, leaf = pki.issue(ca_key, ca_cert, "device", key=leaf_key)
    ec_key = pki.ec_key()
    clients = [
        sc.Client(ra_cert, sc.rsa_key(1024)),
        sc.Client(ra_cert, leaf_key, leaf),
        sc.Client(ra_cert, ec_key, sc.self_signed(ec_key)),
    ]
    windows_key = sc.rsa_key(1024)
    clients.append(sc.Client(ra_cert, windows_key, sc.self_signed(windows_key, windows=True)))
    body = _csr_body()
    out = []
    for client in clients:
        for digest, cipher in (("sha256", "aes128_cbc"), ("sha1", "tripledes_3key")):
            out.append(_req(client, body, digest=digest, cipher=cipher))
    when = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    out.append(_req(clients[0], body, digest="sha512", signing_time=when))
    out.append(_req(clients[0], body, cipher="aes256_cbc", key_transport="rsaes_oaep"))
    return out


def _outcome(read: Callable[..., object], *args: object) -> object:
    """What ``read(*args)`` answers: its value, or its error's type and text."""
    try:
        value = read(*args)
    except cms.CMSError as exc:
        return type(exc), str(exc)
    if isinstance(value, cms_read.EnvelopeFields):  # asn1crypto values compare by identity
        params = value.oaep_params
        return replace(value, oaep_params=params.dump() if isinstance(params, Asn1Value) else None)
    return value


def _signed_equal(der: bytes) -> bool:
    """True if ``der`` has a fast reading; the seam's answer is checked equal to the plain
    path's (a certificate only cryptography refuses sends the seam to the plain path)."""
    if cms_read.signed_fields(der) is None:
        return False
    assert _outcome(cms.parse_signed, der) == _outcome(cms.parse_signed_plain, der)
    return True


def test_signed_data_of_every_client_shape_is_read_fast_and_equal(ra: Ra) -> None:
    for der in _messages(ra[0]):
        assert _signed_equal(der)
        assert isinstance(_outcome(cms.parse_signed, der), cms.SignedMessage)


def test_envelope_fields_fast_equal_plain_and_oaep_left_to_the_plain_path(ra: Ra) -> None:
    cert, key = ra
    for der in _messages(cert):
        envelope = cms.parse_signed(der).content
        assert envelope is not None
        fields = cms.envelope_fields(envelope, cert)
        assert _outcome(cms.envelope_fields, envelope, cert) == _outcome(
            cms.envelope_fields_plain, envelope, cert
        )
        fast = cms_read.envelope_fields(
            envelope, cert.issuer.public_bytes(), cert.serial_number, None
        )
        assert (fast is None) == (fields.transport == "rsaes_oaep")
        assert cms.decrypt_enveloped(envelope, cert, key, allowed_ciphers=cms.CIPHERS).content


def test_other_shapes_go_to_the_plain_path(ra: Ra) -> None:
    cert, _ = ra
    client = sc.Client(cert, sc.rsa_key(1024))
    envelope = cms.envelope(b"body", cert)
    unusual = cms.attribute("1.2.840.113549.1.9.7", core.PrintableString("challenge"))
    assert client.signer is not None
    with_unknown_attribute = sign(envelope, client.signer, client.key, attributes=[unusual])
    assert cms_read.signed_fields(with_unknown_attribute) is None
    assert cms.parse_signed(with_unknown_attribute).attributes["1.2.840.113549.1.9.7"]
    text = cms.attribute(m.OID_FAIL_INFO_TEXT, core.UTF8String("no"))
    assert cms_read.signed_fields(sign(b"", client.signer, client.key, attributes=[text])) is None
    not_for_us = cms.envelope(b"body", client.signer)
    assert cms_read.envelope_fields(not_for_us, cert.issuer.public_bytes(), 1, None) is None
    with pytest.raises(cms.NotForUs):
        cms.envelope_fields(not_for_us, cert)


def test_mutated_messages_fast_answers_only_where_the_plain_path_agrees(ra: Ra) -> None:
    """Flipped octets, cut lengths, truncations: wherever the fast reader answers, the plain
    path answers the same (no error); elsewhere the seam's answer is the plain path's."""
    cert, _ = ra
    rng = random.Random(8894)
    issuer, serial = cert.issuer.public_bytes(), cert.serial_number
    fast_answers = 0
    for der in _messages(cert)[:3]:
        envelope = cms.parse_signed(der).content
        assert envelope is not None
        for _ in range(700):
            for original in (der, envelope):
                data = bytearray(original)
                i = rng.randrange(len(data))
                choice = rng.random()
                if choice < 0.6:
                    data[i] = rng.randrange(256)
                elif choice < 0.8:
                    data[i] ^= 1 << rng.randrange(8)
                else:
                    del data[i:]
                mutated = bytes(data)
                if original is der:
                    fast_answers += _signed_equal(mutated)
                    continue
                fields = cms_read.envelope_fields(mutated, issuer, serial, None)
                if fields is not None:
                    fast_answers += 1
                    plain = _outcome(cms.envelope_fields_plain, mutated, cert)
                    assert _outcome(lambda f: f, fields) == plain
    assert fast_answers > 100  # mutations inside values (nonces, signatures) still read fast
