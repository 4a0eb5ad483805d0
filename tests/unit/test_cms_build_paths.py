"""The CertRep builder's shortcuts equal the plain encodings: SCEP attribute values written as
DER octets equal asn1crypto's encoding of them, and a SignedData signed by a certificate
whose parts were remembered (:data:`gateway.pkix.cms_build._SIGNER_PARTS`) equals one
signed by a fresh, equal certificate object (PKCS#1 v1.5 signatures are deterministic)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from asn1crypto import core
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gateway.pkix import cms
from protocols.scep import messages as m
from tests import scep_client as sc


@pytest.mark.parametrize("text", ["3", "0", "a" * 200, "tx-é\xff", ""])
def test_printable_der_is_asn1cryptos_printable_string(text: str) -> None:
    assert m._printable_der(text) == core.PrintableString(text).dump()
    value = core.PrintableString(text)
    assert cms.attribute(m.OID_TRANSACTION_ID, value) == cms.attribute(
        m.OID_TRANSACTION_ID, m._printable_der(text)
    )


def test_printable_der_refuses_what_asn1crypto_refuses() -> None:
    with pytest.raises(UnicodeEncodeError):
        core.PrintableString("\u20ac").dump()
    with pytest.raises(UnicodeEncodeError):
        m._printable_der("\u20ac")


def test_remembered_signer_signs_the_same_octets_as_a_fresh_one() -> None:
    key = sc.rsa_key(1024)
    signer = sc.self_signed(key, "ra")
    other = sc.self_signed(sc.rsa_key(1024), "ca")
    when = datetime(2030, 1, 1, tzinfo=UTC)
    attrs = [cms.attribute(m.OID_PKI_STATUS, m._printable_der("0"))]
    first = cms.sign(
        b"x", signer, key, attributes=attrs, certificates=[other, signer], signing_time=when
    )
    fresh = x509.load_der_x509_certificate(signer.public_bytes(serialization.Encoding.DER))
    again = cms.sign(b"x", fresh, key, attributes=attrs, certificates=[other], signing_time=when)
    assert first == again
    parsed = cms.parse_signed_plain(first)
    assert parsed.signer == signer and parsed.certificates == (signer, other)
    cms.verify_signed(parsed)
