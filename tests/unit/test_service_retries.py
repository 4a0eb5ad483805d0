"""The request digest of the service's retry mechanism (gateway.service.retries): what makes
two CSRs the same request (moved from test_scep_transactions: SCEP and EST share it now)."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import AttributeOID, NameOID

from gateway.errors import BadCSR
from gateway.service import request_digest
from gateway.service.retries import attempt_key


def _csr(
    key: ec.EllipticCurvePrivateKey, cn: str, challenge: str | None = None
) -> x509.CertificateSigningRequest:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    builder = x509.CertificateSigningRequestBuilder().subject_name(name)
    if challenge is not None:
        builder = builder.add_attribute(AttributeOID.CHALLENGE_PASSWORD, challenge.encode())
    return builder.sign(key, hashes.SHA256())


def _digest(csr: x509.CertificateSigningRequest) -> str:
    return request_digest(csr.public_bytes(serialization.Encoding.DER))


def test_a_re_signed_csr_is_the_same_request() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    first, again = _csr(key, "dev"), _csr(key, "dev")
    assert first.public_bytes(serialization.Encoding.DER) != again.public_bytes(
        serialization.Encoding.DER
    )  # ECDSA: a fresh signature each time
    assert _digest(first) == _digest(again)


def test_a_new_challenge_password_is_the_same_request() -> None:
    # EST re-creates it with each TLS session's tls-unique; SCEP clients fetch a new one.
    key = ec.generate_private_key(ec.SECP256R1())
    assert _digest(_csr(key, "dev", "one")) == _digest(_csr(key, "dev", "two"))
    assert _digest(_csr(key, "dev", "one")) == _digest(_csr(key, "dev"))


def test_other_names_or_another_key_are_another_request() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    first = _csr(key, "dev")
    assert _digest(first) != _digest(_csr(key, "other"))
    assert _digest(first) != _digest(_csr(ec.generate_private_key(ec.SECP256R1()), "dev"))


def test_other_requested_extensions_are_another_request() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dev")])
    plain = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    with_san = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(name)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("dev.test")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    assert _digest(plain) != _digest(with_san)


def test_an_unreadable_csr_is_refused() -> None:
    try:
        request_digest(b"\x30\x03\x02\x01")
    except BadCSR:
        return
    raise AssertionError("a truncated CSR was digested")


def test_attempt_keys() -> None:
    assert [attempt_key("t", n) for n in (1, 2, 3)] == ["t", "t#2", "t#3"]
