"""josepy as the test oracle of the hand-written JWS verifier (protocols/acme/jws.py).

josepy is the JOSE library under certbot's ``acme`` package, so what it signs is what a large
share of ACME clients send. The property: every JWS josepy signs with an account key (RS256,
PS256, ES256/384/512; josepy has no EdDSA) verifies with ours, with the same payload and the
same RFC 7638 thumbprint; and whatever bit of the protected header, payload or signature is
flipped, both reject it.
"""

from __future__ import annotations

import json
from typing import Any

import josepy as jose
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols.acme import jws as J
from protocols.acme.messages import Problem, b64d, b64e


class _Header(jose.Header):
    """The ACME protected header members josepy's Header lacks (RFC 8555 §6.2)."""

    nonce: str | None = jose.field("nonce", omitempty=True)
    url: str | None = jose.field("url", omitempty=True)


class _Signature(jose.Signature):
    __slots__ = jose.Signature._orig_slots
    header_cls = _Header
    header: _Header = jose.field(
        "header", omitempty=True, default=_Header(), decoder=_Header.from_json
    )


class _JWS(jose.JWS):
    __slots__ = jose.JWS._orig_slots
    signature_cls = _Signature


_RSA = rsa.generate_private_key(65537, 2048)
KEYS: list[tuple[jose.JWASignature, jose.JWK]] = [
    (jose.RS256, jose.JWKRSA(key=_RSA)),
    (jose.PS256, jose.JWKRSA(key=_RSA)),
    (jose.ES256, jose.JWKEC(key=ec.generate_private_key(ec.SECP256R1()))),
    (jose.ES384, jose.JWKEC(key=ec.generate_private_key(ec.SECP384R1()))),
    (jose.ES512, jose.JWKEC(key=ec.generate_private_key(ec.SECP521R1()))),
]
URL = "https://acme.test/acme/new-order"
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
#: A payload: POST-as-GET (empty, RFC 8555 §6.3) or a JSON object.
_payloads = st.one_of(
    st.just(b""),
    st.dictionaries(st.text(max_size=10), _json_values, max_size=4).map(
        lambda d: json.dumps(d).encode()
    ),
)
_nonces = st.text(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=43
)


def _sign(index: int, payload: bytes, nonce: str) -> tuple[jose.JWK, dict[str, Any]]:
    alg, key = KEYS[index]
    signed = _JWS.sign(
        payload,
        key=key,
        alg=alg,
        include_jwk=True,
        protect=frozenset(["alg", "jwk", "nonce", "url"]),
        nonce=nonce,
        url=URL,
    )
    body: dict[str, Any] = json.loads(signed.json_dumps())
    return key, body


def _ours(body: dict[str, Any]) -> J.JWS:
    parsed = J.parse_jws(json.dumps(body))
    J.check_account_header(parsed, want_jwk=True)
    J.verify(parsed, J.load_jwk(parsed.jwk))
    return parsed


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(index=st.integers(0, len(KEYS) - 1), payload=_payloads, nonce=_nonces)
def test_what_josepy_signs_our_verifier_accepts(index: int, payload: bytes, nonce: str) -> None:
    key, body = _sign(index, payload, nonce)
    parsed = _ours(body)
    assert parsed.payload == payload
    assert parsed.alg == KEYS[index][0].name and parsed.nonce == nonce and parsed.url == URL
    assert J.thumbprint(parsed.jwk or {}) == b64e(key.thumbprint())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    index=st.integers(0, len(KEYS) - 1),
    payload=_payloads,
    nonce=_nonces,
    part=st.sampled_from(["protected", "payload", "signature"]),
    where=st.integers(0, 10_000),
    bit=st.integers(0, 7),
)
def test_a_flipped_bit_is_rejected_by_josepy_and_by_ours(
    index: int, payload: bytes, nonce: str, part: str, where: int, bit: int
) -> None:
    key, body = _sign(index, payload, nonce)
    raw = bytearray(b64d(body[part]))
    if not raw:  # POST-as-GET: nothing to flip in the payload, so add a byte instead
        raw = bytearray(b"\x00")
    else:
        raw[where % len(raw)] ^= 1 << bit
    tampered = {**body, part: b64e(bytes(raw))}
    try:
        theirs = _JWS.from_json(tampered).verify(key.public_key())
    except Exception:  # any refusal counts: a flipped bit in the protected
        # header can rename a JWK member, and josepy's parser then raises KeyError/TypeError
        theirs = False
    assert theirs is False
    with pytest.raises(Problem):
        _ours(tampered)
