"""The request digest of the service's retry mechanism (gateway.service.retries): what makes
two CSRs the same request (moved from test_scep_transactions: SCEP and EST share it now), and
how a transaction's attempts are read."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import AttributeOID, NameOID

from gateway.errors import BadCSR
from gateway.model import RequestRecord
from gateway.service import request_digest
from gateway.service.retries import MAX_ATTEMPTS, attempt_key, attempts


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


class _Keys:
    """Stored requests by (protocol, key), counting the store calls made."""

    def __init__(self, keys: Sequence[str]) -> None:
        # the records' contents do not matter here: each stands for the key it is stored under
        self.stored = {("est", key): cast(RequestRecord, key) for key in keys}
        self.calls: list[str] = []

    async def find_request(self, protocol: str, transaction_id: str) -> Any:
        self.calls.append("find_request")
        return self.stored.get((protocol, transaction_id))

    async def find_attempts(self, protocol: str, transaction_ids: Sequence[str]) -> Any:
        self.calls.append("find_attempts")
        found = ((key, self.stored.get((protocol, key))) for key in transaction_ids)
        return {key: record for key, record in found if record is not None}


async def test_attempts_are_read_in_one_store_call_up_to_the_first_absent_key() -> None:
    """Oldest first, from the client's own key to the first attempt not stored (a later one
    past a gap is not an attempt of this transaction), in one call however many there are;
    another protocol's requests under the same keys are not read."""
    every = [attempt_key("t", n) for n in range(1, MAX_ATTEMPTS + 1)]
    full = _Keys(every)
    assert [str(r) for r in await attempts(full, "est", "t")] == every
    assert full.calls == ["find_attempts"]
    gap = _Keys(["t", "t#2", "t#3", "t#5", "u"])
    assert [str(r) for r in await attempts(gap, "est", "t")] == ["t", "t#2", "t#3"]
    assert await attempts(gap, "scep", "t") == []
    assert await attempts(gap, "est", "new") == []
    assert gap.calls == ["find_attempts"] * 3
