"""The model's fast paths equal their plain paths.

``gateway.model`` keeps no cache machinery: the per-CSR and per-key values its value objects
expose come from :mod:`gateway.pkix.csr` (identity memos) and are kept per instance with
:class:`gateway.pkix.memo.once`. Each is checked here against the plain computation it stands
for, on a memoised object and on a fresh parse of the same bytes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from gateway.model import EnrollmentRequest, Requester
from gateway.pkix import load_csr
from gateway.pkix.csr import csr_der, csr_public_key, csr_spki_sha256, spki_der, spki_fingerprint
from gateway.pkix.memo import once
from tests.unit.policy_helpers import build_csr, cn

_KEYS: dict[str, Callable[[], Any]] = {
    "p256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "ed25519": ed25519.Ed25519PrivateKey.generate,
    "rsa2048": lambda: rsa.generate_private_key(65537, 2048),
}


def _plain_spki(key: Any) -> bytes:
    encoded: bytes = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return encoded


def _requester() -> Requester:
    return Requester(
        protocol="est", principal="alice", auth_method="basic", groups=frozenset({"b", "a"})
    )


@pytest.fixture(params=sorted(_KEYS), scope="module")
def csr_bytes(request: pytest.FixtureRequest) -> bytes:
    csr = build_csr(_KEYS[request.param](), cn("memo.example.test"))
    return csr.public_bytes(serialization.Encoding.DER)


def test_memoised_csr_values_equal_a_fresh_parse(csr_bytes: bytes) -> None:
    memoised = load_csr(csr_bytes)  # load_csr already remembers the decoded key
    fresh = x509.load_der_x509_csr(csr_bytes)  # no memo has seen this object
    plain_spki = _plain_spki(fresh.public_key())
    for _ in range(2):  # the first call computes, the second answers from the memo
        assert csr_der(memoised) == fresh.public_bytes(serialization.Encoding.DER) == csr_bytes
        assert _plain_spki(csr_public_key(memoised)) == plain_spki
        assert csr_spki_sha256(memoised) == hashlib.sha256(plain_spki).hexdigest()
        assert spki_der(csr_public_key(memoised)) == plain_spki
        assert spki_fingerprint(fresh.public_key()) == hashlib.sha256(plain_spki).hexdigest()


def test_enrollment_request_values_equal_the_plain_path(csr_bytes: bytes) -> None:
    csr = load_csr(csr_bytes)
    request = EnrollmentRequest(csr=csr, template="t", requester=_requester(), transaction_id="x")
    fresh = x509.load_der_x509_csr(csr_bytes)
    plain_spki = _plain_spki(fresh.public_key())
    for _ in range(2):
        assert request.csr_der == csr_bytes
        assert _plain_spki(request.public_key) == plain_spki
        assert request.spki_sha256 == hashlib.sha256(plain_spki).hexdigest()
    # cached values are not fields: equality and repr are those of the fields alone
    twin = EnrollmentRequest(csr=csr, template="t", requester=_requester(), transaction_id="x")
    assert twin == request
    assert "spki_sha256" not in repr(request)


def test_replace_computes_afresh_for_the_new_csr() -> None:
    """A value cached on one instance never leaks into a copy made with a different CSR."""
    first = load_csr(
        build_csr(_KEYS["p256"](), cn("a.example.test")).public_bytes(serialization.Encoding.DER)
    )
    second = build_csr(_KEYS["p256"](), cn("b.example.test"))
    request = EnrollmentRequest(csr=first, template="t", requester=_requester(), transaction_id="x")
    assert request.spki_sha256 == spki_fingerprint(first.public_key())
    other = dataclasses.replace(request, csr=second)
    assert other.spki_sha256 == hashlib.sha256(_plain_spki(second.public_key())).hexdigest()
    assert other.csr_der == second.public_bytes(serialization.Encoding.DER)
    assert other.spki_sha256 != request.spki_sha256


def test_requester_json_text_equals_encoding_its_json() -> None:
    requester = _requester()
    assert requester.json_text == json.dumps(requester.to_json())
    assert requester.json_text is requester.json_text  # encoded once
    assert Requester.from_json(json.loads(requester.json_text)) == requester


def test_spki_der_past_its_limit_still_answers_the_plain_encoding() -> None:
    keys = [ec.generate_private_key(ec.SECP256R1()).public_key() for _ in range(300)]
    for key in keys + keys[:5]:  # more keys than the memo holds: it starts over
        assert spki_der(key) == _plain_spki(key)


def test_once_computes_on_first_access_only_and_per_instance() -> None:
    calls: list[int] = []

    @dataclasses.dataclass(frozen=True)
    class Box:
        n: int

        @once
        def doubled(self) -> int:
            calls.append(self.n)
            return self.n * 2

    a, b = Box(1), Box(2)
    assert (a.doubled, a.doubled, b.doubled) == (2, 2, 4)
    assert calls == [1, 2]
    assert isinstance(Box.__dict__["doubled"], once)
