"""JWS parsing and verification (RFC 8555 §6.2) and random input never escaping as non-problems."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols.acme import jws as J
from protocols.acme.messages import Problem, b64e, parse_new_order
from tests.acme_helpers import jwk_of, jws

KEYS: list[tuple[str, Any]] = [
    ("ES256", ec.generate_private_key(ec.SECP256R1())),
    ("ES384", ec.generate_private_key(ec.SECP384R1())),
    ("ES512", ec.generate_private_key(ec.SECP521R1())),
    ("RS256", rsa.generate_private_key(65537, 2048)),
    ("PS256", rsa.generate_private_key(65537, 2048)),
    ("EdDSA", ed25519.Ed25519PrivateKey.generate()),
]
HDR = {"nonce": "n", "url": "https://acme.test/acme/new-order"}


@pytest.mark.parametrize(("alg", "key"), KEYS, ids=[k[0] for k in KEYS])
def test_each_supported_algorithm_verifies(alg: str, key: Any) -> None:
    parsed = J.parse_jws(json.dumps(jws(key, {"a": 1}, {**HDR, "jwk": jwk_of(key)}, alg=alg)))
    J.check_account_header(parsed, want_jwk=True)
    J.verify(parsed, J.load_jwk(parsed.jwk))
    assert parsed.payload_json() == {"a": 1}


@pytest.mark.parametrize(("alg", "key"), KEYS, ids=[k[0] for k in KEYS])
def test_a_tampered_payload_fails_verification(alg: str, key: Any) -> None:
    body = jws(key, {"a": 1}, {**HDR, "jwk": jwk_of(key)}, alg=alg)
    body["payload"] = b64e(b'{"a":2}')
    parsed = J.parse_jws(json.dumps(body))
    with pytest.raises(Problem) as exc:
        J.verify(parsed, J.load_jwk(parsed.jwk))
    assert exc.value.kind == "malformed"


def test_an_algorithm_that_does_not_fit_the_key_is_refused() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    body = jws(key, {}, {**HDR, "jwk": jwk_of(key)})
    header = json.loads(J.b64d(body["protected"]))
    header["alg"] = "ES384"
    body["protected"] = b64e(json.dumps(header).encode())
    parsed = J.parse_jws(json.dumps(body))
    with pytest.raises(Problem) as exc:
        J.verify(parsed, J.load_jwk(parsed.jwk))
    assert exc.value.kind == "badSignatureAlgorithm"


@pytest.mark.parametrize("alg", ["none", "HS256", "RS1", "ES256K"])
def test_unsupported_algorithms_list_the_supported_ones(alg: str) -> None:
    parsed = J.parse_jws(
        {
            "protected": b64e(json.dumps({"alg": alg, **HDR, "kid": "k"}).encode()),
            "payload": "",
            "signature": "",
        }
    )
    with pytest.raises(Problem) as exc:
        J.check_account_header(parsed, want_jwk=False)
    assert exc.value.kind == "badSignatureAlgorithm"
    assert exc.value.document()["algorithms"] == list(J.ALGORITHMS)


@pytest.mark.parametrize(
    "body",
    [
        {"signatures": [], "payload": ""},
        {"protected": "e30", "header": {"alg": "ES256"}, "payload": "", "signature": ""},
        {"protected": b64e(b'{"alg":"ES256","b64":false}'), "payload": "", "signature": ""},
        {"protected": "e30", "payload": "", "signature": ""},  # no alg
        {"protected": "!!", "payload": "", "signature": ""},
        {"payload": "", "signature": ""},
        [1, 2],
    ],
)
def test_non_flattened_or_incomplete_jws_is_malformed(body: Any) -> None:
    with pytest.raises(Problem) as exc:
        J.parse_jws(json.dumps(body))
    assert exc.value.kind == "malformed"


def test_exactly_one_of_jwk_and_kid() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    both = J.parse_jws(json.dumps(jws(key, {}, {**HDR, "jwk": jwk_of(key), "kid": "x"})))
    neither = J.parse_jws(json.dumps(jws(key, {}, dict(HDR))))
    for parsed in (both, neither):
        with pytest.raises(Problem):
            J.check_account_header(parsed, want_jwk=False)
    kid_only = J.parse_jws(json.dumps(jws(key, {}, {**HDR, "kid": "x"})))
    with pytest.raises(Problem):
        J.check_account_header(kid_only, want_jwk=True)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_are_a_problem_never_another_exception(data: bytes) -> None:
    try:
        parsed = J.parse_jws(data)
        J.check_account_header(parsed, want_jwk=True)
        J.verify(parsed, J.load_jwk(parsed.jwk))
    except Problem:
        pass


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(st.sampled_from(["protected", "payload", "signature", "header"]), json_values)
)
def test_random_jws_json_is_a_problem_never_another_exception(obj: dict[str, Any]) -> None:
    try:
        parsed = J.parse_jws(json.dumps(obj))
        J.check_account_header(parsed, want_jwk=True)
        J.load_jwk(parsed.jwk)
    except Problem:
        pass


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["identifiers", "notBefore", "notAfter", "replaces", "profile"]),
        json_values,
    )
)
def test_random_new_order_payload_is_a_problem_never_another_exception(obj: dict[str, Any]) -> None:
    try:
        parse_new_order(obj)
    except Problem:
        pass


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["kty", "crv", "x", "y", "n", "e"]), st.text(max_size=90)))
def test_random_jwk_is_a_problem_never_another_exception(jwk: dict[str, Any]) -> None:
    try:
        J.load_jwk(jwk)
        J.thumbprint(jwk)
    except Problem:
        pass


def test_the_key_of_a_jwk_is_built_once_and_reused() -> None:
    jwk = jwk_of(ec.generate_private_key(ec.SECP256R1()))
    first = J.load_jwk(jwk)
    assert J.load_jwk(dict(jwk)) is first
    assert J.load_jwk({**jwk, "kid": "ignored", "use": "sig"}) is first


def test_a_refused_jwk_is_refused_every_time() -> None:
    off_curve = {"kty": "EC", "crv": "P-256", "x": b64e(b"\x01" * 32), "y": b64e(b"\x02" * 32)}
    for _ in range(2):
        with pytest.raises(Problem) as exc:
            J.load_jwk(off_curve)
        assert exc.value.kind == "badPublicKey"


def test_private_members_are_refused_even_for_a_known_public_key() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = jwk_of(key)
    J.load_jwk(jwk)
    d = b64e(key.private_numbers().private_value.to_bytes(32, "big"))
    with pytest.raises(Problem) as exc:
        J.load_jwk({**jwk, "d": d})
    assert exc.value.kind == "badPublicKey"


@pytest.mark.parametrize(
    ("jwk", "kind"),
    [
        ({"kty": "EC", "crv": "P-256", "x": 1, "y": "AA"}, "malformed"),
        ({"kty": "EC", "crv": ["P-256"], "x": "AA", "y": "AA"}, "malformed"),
        ({"kty": "RSA", "n": None, "e": "AQAB"}, "malformed"),
        ({"kty": ["EC"]}, "badPublicKey"),
    ],
)
def test_non_string_members_are_judged_like_before(jwk: dict[str, Any], kind: str) -> None:
    with pytest.raises(Problem) as exc:
        J.load_jwk(jwk)
    assert exc.value.kind == kind


_NESTED = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='ab{[]}"\\', max_size=4),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=60,
)


def _plain_loads(text: str) -> Any:
    """loads without the bracket count: the parse, then always the walk."""
    value = json.loads(text)
    if not J._within_depth(value):
        raise Problem.malformed("too deep")
    return value


@settings(max_examples=300, deadline=None)
@given(st.one_of(_NESTED, st.integers(1, 40).map(lambda d: json.loads("[" * d + "]" * d))))
def test_loads_counting_brackets_answers_as_the_walk(value: Any) -> None:
    """A text with few opening brackets skips the depth walk: it must accept and refuse as
    the walk does, strings holding brackets included."""
    text = json.dumps(value)
    for form in (text, text.encode()):
        try:
            plain: Any = _plain_loads(text)
        except Problem:
            with pytest.raises(Problem):
                J.loads(form, "not JSON")
        else:
            assert J.loads(form, "not JSON") == plain
