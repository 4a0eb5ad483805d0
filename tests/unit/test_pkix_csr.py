"""gateway.pkix.load_csr: what every front-end parses a PKCS#10 request with."""

from __future__ import annotations

import base64

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.errors import BadCSR
from gateway.pkix import load_csr

#: DER of OBJECT IDENTIFIER id-ecPublicKey (1.2.840.10045.2.1).
EC_PUBLIC_KEY_OID = bytes.fromhex("06072a8648ce3d0201")


def _csr_der() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "k.example.test")]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.DER)


def test_pem_der_and_bare_base64_parse_to_the_same_request() -> None:
    der = _csr_der()
    pem = x509.load_der_x509_csr(der).public_bytes(serialization.Encoding.PEM)
    for form in (der, pem, base64.b64encode(der), base64.encodebytes(der)):
        assert load_csr(form).public_bytes(serialization.Encoding.DER) == der


def test_unknown_public_key_algorithm_is_a_bad_csr_not_a_crash() -> None:
    der = _csr_der()
    assert der.count(EC_PUBLIC_KEY_OID) == 1
    unknown = der.replace(EC_PUBLIC_KEY_OID, EC_PUBLIC_KEY_OID[:-1] + b"\x63")  # ...2.99
    with pytest.raises(BadCSR, match="public key algorithm is not supported"):
        load_csr(unknown)


def test_undecodable_public_key_is_a_bad_csr() -> None:
    der = bytearray(_csr_der())
    point = der.index(b"\x03\x42\x00\x04")  # BIT STRING of the uncompressed P-256 point
    der[point + 4 + 10] ^= 0xFF  # the point is no longer on the curve
    with pytest.raises(BadCSR, match="public key cannot be decoded"):
        load_csr(bytes(der))


@pytest.mark.parametrize("version", [1, 2, 127])
def test_csr_with_an_invalid_version_is_a_bad_csr_not_an_exception(version: int) -> None:
    # cryptography raises InvalidVersion, which is no ValueError, for a version other than v1
    # (INTEGER 0); it escaped load_csr and every front-end answered 500.
    der = bytearray(_csr_der())
    at = der.index(b"\x02\x01\x00")  # CertificationRequestInfo.version, the first INTEGER
    der[at + 2] = version
    for data in (bytes(der), base64.b64encode(bytes(der))):
        with pytest.raises(BadCSR, match="not a valid PKCS#10"):
            load_csr(data)
