"""Which stored attempt a SCEP message repeats (protocols.scep.transactions.same_request)."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from protocols.scep.transactions import same_request


def _csr(key: ec.EllipticCurvePrivateKey, cn: str) -> x509.CertificateSigningRequest:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    return x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())


def _der(csr: x509.CertificateSigningRequest) -> bytes:
    return csr.public_bytes(serialization.Encoding.DER)


def test_a_re_signed_csr_is_the_same_request() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    first, again = _csr(key, "dev"), _csr(key, "dev")
    assert _der(first) != _der(again)  # ECDSA: a fresh signature each time
    assert same_request(_der(first), again)


def test_other_names_or_another_key_are_another_request() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    first = _csr(key, "dev")
    assert not same_request(_der(first), _csr(key, "other"))
    assert not same_request(_der(first), _csr(ec.generate_private_key(ec.SECP256R1()), "dev"))


def test_an_unreadable_stored_csr_is_no_match() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    assert not same_request(b"\x30\x03\x02\x01\x00", _csr(key, "dev"))
