"""ACME wire codecs: golden vectors from the RFCs and the parsing rules of RFC 8555/8738/9773."""

from __future__ import annotations

import enum
import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import ErrorCode
from protocols.acme import jws as J
from protocols.acme.challenge_values import (
    dns01_value,
    key_authorization,
    reverse_dns_name,
    tls_alpn01_expected,
)
from protocols.acme.errors import problem_for
from protocols.acme.messages import (
    AcmeIdentifier,
    Problem,
    b64d,
    b64e,
    cert_id,
    csr_identifiers,
    dumps,
    parse_cert_id,
    parse_identifier,
    parse_new_order,
    rfc3339,
)
from tests.helpers import make_csr

RFC7638_JWK = {
    "kty": "RSA",
    "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc"
    "_BJECPeb"
    "WKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMi"
    "cAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XP"
    "ksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
    "e": "AQAB",
    "alg": "RS256",
    "kid": "2011-04-29",
}


def test_jwk_thumbprint_matches_rfc7638_example() -> None:
    assert J.thumbprint(RFC7638_JWK) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_ari_cert_id_matches_rfc9773_appendix_a() -> None:
    aki = bytes.fromhex("69885B6B87464041E1B37B847BA0AE2CDE01C8D4")
    assert cert_id(aki, 0x87654321) == "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"
    assert parse_cert_id("aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE") == (aki, 0x87654321)


@pytest.mark.parametrize("bad", ["", "abc", "a.b.c", "aYhb.", ".AIdl", "aY==.AIdlQyE", "aY.gA"])
def test_malformed_cert_id_is_malformed(bad: str) -> None:
    with pytest.raises(Problem) as exc:
        parse_cert_id(bad)
    assert exc.value.kind == "malformed" and exc.value.status == 400


def test_key_authorization_and_dns01_digest() -> None:
    ka = key_authorization("tok", "thumb")
    assert ka == "tok.thumb"
    assert dns01_value(ka) == b64e(hashlib.sha256(b"tok.thumb").digest())
    assert tls_alpn01_expected(ka) == b"\x04\x20" + hashlib.sha256(b"tok.thumb").digest()


def test_ip_tls_alpn_sni_is_the_reverse_name() -> None:
    assert reverse_dns_name("192.0.2.1") == "1.2.0.192.in-addr.arpa"
    assert reverse_dns_name("2001:db8::1").endswith(".8.b.d.0.1.0.0.2.ip6.arpa")


def test_base64url_is_strict() -> None:
    assert b64d(b64e(b"\xff\xfe")) == b"\xff\xfe"
    for bad in ("a+b/", "YQ==", "a", "a b"):
        with pytest.raises(ValueError):
            b64d(bad)


def test_identifiers_are_canonical() -> None:
    assert parse_identifier({"type": "dns", "value": "WWW.Example.COM"}) == AcmeIdentifier(
        "dns", "www.example.com"
    )
    assert parse_identifier({"type": "ip", "value": "2001:DB8:0::1"}).value == "2001:db8::1"
    wild = parse_identifier({"type": "dns", "value": "*.example.com"})
    assert wild.wildcard and wild.authz_value == "example.com"


@pytest.mark.parametrize(
    ("obj", "kind"),
    [
        ({"type": "email", "value": "a@b.c"}, "unsupportedIdentifier"),
        ({"type": "dns", "value": "-bad.example"}, "rejectedIdentifier"),
        ({"type": "dns", "value": "a..example"}, "rejectedIdentifier"),
        ({"type": "dns", "value": "x.*.example"}, "rejectedIdentifier"),
        ({"type": "dns", "value": "localhost"}, "rejectedIdentifier"),
        ({"type": "dns", "value": "1.2.3.4"}, "rejectedIdentifier"),
        ({"type": "ip", "value": "999.1.1.1"}, "malformed"),
        ({"type": "dns"}, "malformed"),
        ("dns:x", "malformed"),
    ],
)
def test_bad_identifiers_are_refused_with_their_problem(obj: object, kind: str) -> None:
    with pytest.raises(Problem) as exc:
        parse_identifier(obj)
    assert exc.value.kind == kind


def test_new_order_parses_validity_replaces_and_profile() -> None:
    new = parse_new_order(
        {
            "identifiers": [{"type": "dns", "value": "a.example"}],
            "notBefore": "2030-01-01T00:00:00Z",
            "notAfter": "2030-02-01T00:00:00+00:00",
            "replaces": "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE",
            "profile": "",
            "unknown": 1,
        }
    )
    assert new.not_before == datetime(2030, 1, 1, tzinfo=UTC)
    assert new.replaces and new.profile is None  # an empty profile counts as absent
    with pytest.raises(Problem):
        parse_new_order(
            {
                "identifiers": [{"type": "dns", "value": "a.example"}],
                "notBefore": "2030-02-01T00:00:00Z",
                "notAfter": "2030-01-01T00:00:00Z",
            }
        )
    with pytest.raises(Problem):
        parse_new_order({"identifiers": []})


def test_csr_identifiers_require_cn_among_sans_and_only_dns_ip() -> None:
    csr = make_csr(cn="a.example", dns=("a.example",), ips=("192.0.2.1",))
    assert csr_identifiers(csr) == {
        AcmeIdentifier("dns", "a.example"),
        AcmeIdentifier("ip", "192.0.2.1"),
    }
    with pytest.raises(Problem) as exc:
        csr_identifiers(make_csr(cn="other.example", dns=("a.example",)))
    assert exc.value.kind == "badCSR"


def test_json_is_formatted_like_boulder() -> None:
    text = dumps({"status": "valid", "a": [1]}).decode()
    assert text == '{\n  "status": "valid",\n  "a": [\n    1\n  ]\n}'


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(_JSON)
def test_json_bytes_are_exactly_the_standard_librarys(obj: Any) -> None:
    assert dumps(obj) == json.dumps(obj, indent=2, ensure_ascii=False).encode()


class _Kind(enum.StrEnum):
    VALID = "valid"


class _Count(enum.IntEnum):
    ONE = 1


@pytest.mark.parametrize(
    "obj",
    [
        {1: "int key", None: "null key", 2.5: "float key", False: "bool key"},
        {"status": _Kind.VALID, "n": _Count.ONE},
        {"nested": [{"deep": (_Kind.VALID,)}]},
    ],
    ids=["non-string keys", "enum values", "nested enum"],
)
def test_json_of_other_types_is_still_the_standard_librarys(obj: Any) -> None:
    assert dumps(obj) == json.dumps(obj, indent=2, ensure_ascii=False).encode()


def test_json_refuses_what_the_standard_library_refuses() -> None:
    cycle: list[Any] = []
    cycle.append(cycle)
    with pytest.raises(ValueError, match="Circular"):
        dumps(cycle)
    with pytest.raises(TypeError):
        dumps({"when": datetime(2026, 1, 1, tzinfo=UTC)})


@pytest.mark.parametrize("code", list(ErrorCode))
def test_every_core_error_code_maps_to_an_acme_problem(code: ErrorCode) -> None:
    problem = problem_for(code, "detail", "some-rule")
    doc = problem.document()
    assert doc["type"].startswith("urn:ietf:params:acme:error:")
    assert 400 <= doc["status"] <= 599 and doc["status"] == problem.status
    assert "detail" in doc


def test_csr_policy_rules_are_bad_csr_and_others_rejected_identifier() -> None:
    assert problem_for(ErrorCode.POLICY_DENIED, "x", "rsa-key-size").kind == "badCSR"
    assert problem_for(ErrorCode.POLICY_DENIED, "x", "csr-signature").kind == "badCSR"
    r = problem_for(ErrorCode.POLICY_DENIED, "not allowed", "san-dns-allow-list")
    assert r.kind == "rejectedIdentifier" and "san-dns-allow-list" in r.detail
    assert problem_for(ErrorCode.POLICY_DENIED, "x", "enroll-permission").kind == "unauthorized"


def test_weak_and_invalid_keys_are_bad_public_key() -> None:
    small = {"kty": "RSA", "n": b64e((2**1023 + 1).to_bytes(128, "big")), "e": "AQAB"}
    off_curve = {"kty": "EC", "crv": "P-256", "x": b64e(b"\x01" * 32), "y": b64e(b"\x02" * 32)}
    for jwk in (
        small,
        off_curve,
        {"kty": "oct", "k": "AAAA"},
        {"kty": "EC", "crv": "P-192", "x": "AA", "y": "AA"},
    ):
        with pytest.raises(Problem) as exc:
            J.load_jwk(jwk)
        assert exc.value.kind == "badPublicKey"


def test_ec_key_round_trips() -> None:
    from tests.acme_helpers import jwk_of

    key = ec.generate_private_key(ec.SECP384R1())
    assert J.load_jwk(jwk_of(key)).public_numbers() == key.public_key().public_numbers()  # type: ignore[union-attr]


@settings(max_examples=300, deadline=None)
@given(
    st.datetimes(min_value=datetime(1000, 1, 2), max_value=datetime(9999, 12, 30)),
    st.integers(min_value=-23 * 60, max_value=23 * 60),
)
def test_rfc3339_is_strftimes(when: datetime, offset_minutes: int) -> None:
    """The %-formatted timestamp equals strftime's (the plain way, at twice the cost)."""
    aware = when.replace(tzinfo=timezone(timedelta(minutes=offset_minutes)))
    assert rfc3339(aware) == aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
