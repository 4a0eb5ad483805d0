"""Rule key-weak: known-weak keys are refused on every template (CA/B Forum BR §6.1.1.3,
§6.1.6), each denial naming the weakness; only the non-security exponent bound is relaxable.
EdDSA keys of small order (RFC 8032 cofactors) are refused too."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed448, ed25519, rsa

from gateway.policy import RULE_NAMES, PolicyEngine, load_templates
from gateway.policy.edwards import ED448, ED25519, EdwardsCurve
from gateway.policy.weak_keys import (
    RSA_VERDICTS,
    _known_rsa_problems,
    rsa_problems,
    weak_key_problems,
)
from tests import weak_keys
from tests.unit.policy_helpers import (
    build_csr,
    cn,
    denial,
    dns,
    ec_key,
    engine,
    make_template,
    plan,
    request,
    requester,
    rsa_key,
)

SHIPPED = Path(__file__).resolve().parents[2] / "conf" / "templates"


def _csr(key: Any) -> Any:
    return build_csr(key, cn("host.example.com"), dns("host.example.com"))


WEAK = {
    "exponent-3": (weak_keys.small_exponent_key, "RSA public exponent 3 is below 65537"),
    "fermat": (weak_keys.fermat_key, "modulus factorable by Fermat's method"),
    "roca": (weak_keys.roca_key, "ROCA-vulnerable modulus"),
}


def test_rule_sits_in_the_check_stage_after_the_key_size_rule() -> None:
    assert RULE_NAMES.index("key-weak") == RULE_NAMES.index("rsa-key-size") + 1


@pytest.mark.parametrize("kind", sorted(WEAK))
def test_weak_key_is_refused_naming_the_check(kind: str) -> None:
    make, reason = WEAK[kind]
    err = denial(engine(), request(_csr(make())))
    assert err.rule == "key-weak"
    assert reason in err.reason


@pytest.mark.parametrize("kind", sorted(WEAK))
def test_every_shipped_template_refuses_weak_keys(kind: str) -> None:
    templates = load_templates(SHIPPED)
    policy = PolicyEngine(templates)
    make, reason = WEAK[kind]
    assert {t.name for t in templates.values() if "rsa" in t.key_policy.algorithms} == set(
        templates
    )
    for name, template in templates.items():
        allowed = template.permissions.enroll[0]
        who = requester("alice" if allowed == "*" else allowed)
        err = denial(policy, request(_csr(make()), template=name, who=who))
        assert (err.rule, reason in err.reason) == ("key-weak", True), name


def test_relax_key_hygiene_does_not_relax_any_weakness() -> None:
    policy = engine(make_template(key_policy={"relax_key_hygiene": True}))
    for make, reason in WEAK.values():
        err = denial(policy, request(_csr(make())))
        assert err.rule == "key-weak" and reason in err.reason


def test_exponent_above_2_256_is_refused_unless_hygiene_is_relaxed() -> None:
    csr = _csr(weak_keys.large_exponent_key())
    err = denial(engine(), request(csr))
    assert err.rule == "key-weak" and "above 2^256 - 1" in err.reason
    relaxed = engine(make_template(key_policy={"relax_key_hygiene": True}))
    assert plan(relaxed, request(csr)).plan.public_key.public_numbers().e > 2**256  # type: ignore[union-attr]


def test_sound_keys_pass() -> None:
    for key in (rsa_key(2048), rsa_key(3072), ec_key()):
        assert plan(engine(), request(_csr(key))).plan is not None


def test_preview_without_possession_check_still_refuses_weak_keys() -> None:
    err = denial(engine(), request(_csr(weak_keys.roca_key())), check_possession=False)
    assert err.rule == "key-weak"


def test_engine_built_without_the_rule_issues_weak_keys() -> None:
    # the seam bench/issue_local.py measures the rule's cost through
    policy = PolicyEngine({"t": make_template()}, weak_key_checks=False)
    assert plan(policy, request(_csr(weak_keys.fermat_key()))).plan is not None


# --- the verdict kept per key (weak_keys._known_rsa_problems) equals the plain path ---------


def test_kept_verdicts_equal_the_plain_path_first_and_again() -> None:
    keys = [make().public_key() for make, _ in WEAK.values()]
    keys += [weak_keys.large_exponent_key().public_key(), rsa_key(2048).public_key()]
    for key in keys:
        numbers = key.public_numbers()
        for relax in (False, True):
            plain = rsa_problems(numbers.n, numbers.e, relax_key_hygiene=relax)
            first = weak_key_problems(key, relax_key_hygiene=relax)
            again = weak_key_problems(key, relax_key_hygiene=relax)
            assert first == again == plain
    assert rsa_problems(keys[-1].public_numbers().n, 65537) == ()  # the sound key
    assert all(rsa_problems(k.public_numbers().n, k.public_numbers().e) for k in keys[:-1])


def test_a_weak_key_sent_again_is_refused_again() -> None:
    csr = _csr(weak_keys.fermat_key())
    policy = engine()
    before = _known_rsa_problems.cache_info().hits
    for _ in range(3):
        err = denial(policy, request(csr))
        assert err.rule == "key-weak" and "Fermat" in err.reason
    assert _known_rsa_problems.cache_info().hits >= before + 2  # answered from the kept verdict


def test_kept_verdicts_are_bounded() -> None:
    assert _known_rsa_problems.cache_info().maxsize == RSA_VERDICTS


# --- the checks on public numbers no CSR can carry (no private key exists) -----------------


def _public(e: int, n: int) -> rsa.RSAPublicKey:
    return rsa.RSAPublicNumbers(e, n).public_key()


def test_small_odd_exponent_is_named() -> None:
    n = rsa_key(2048).public_key().public_numbers().n
    assert weak_key_problems(_public(65535, n)) == ("RSA public exponent 65535 is below 65537",)
    assert weak_key_problems(_public(65537, n)) == ()
    assert weak_key_problems(_public(65539, n)) == ()


def test_modulus_with_a_small_prime_factor_is_named() -> None:
    n = rsa_key(2048).public_key().public_numbers().n
    problems = weak_key_problems(_public(65537, 65521 * n))
    assert "modulus has a prime factor of at most 65537" in problems


def test_even_modulus_is_named() -> None:
    n = rsa_key(2048).public_key().public_numbers().n
    assert "modulus has a prime factor of at most 65537" in weak_key_problems(_public(65537, 2 * n))


def test_ec_keys_have_no_rsa_findings() -> None:
    assert weak_key_problems(ec_key().public_key()) == ()


# --- EdDSA keys of small order ---------------------------------------------------------------


def test_small_order_ed25519_csr_verifies_but_is_refused() -> None:
    csr = weak_keys.small_order_eddsa_csr("ed25519")
    assert csr.is_signature_valid  # OpenSSL accepts the forged proof of possession
    err = denial(engine(), request(csr))
    assert err.rule == "key-weak" and "Ed25519 public key is a point of small order" in err.reason


@pytest.mark.parametrize("curve", [ED25519, ED448], ids=lambda c: c.name)
def test_torsion_y_values_are_exactly_the_small_order_points(curve: EdwardsCurve) -> None:
    points = set()
    for y in curve.torsion_y:
        point = curve.point(y)
        assert point is not None
        points |= {point, ((-point[0]) % curve.p, y)}
    assert len(points) == curve.cofactor  # the whole torsion subgroup, nothing else
    for point in points:
        multiple = point
        for _ in range(curve.cofactor.bit_length() - 1):
            multiple = curve.add(multiple, multiple)
        assert multiple == (0, 1)


def test_published_ed25519_order_8_point_is_refused() -> None:
    # an order-8 point as listed by libsodium's blocklist and in "Taming the many EdDSAs"
    order_8 = bytes.fromhex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05")
    for encoding in (order_8, order_8[:-1] + bytes([order_8[-1] | 0x80])):
        key = ed25519.Ed25519PublicKey.from_public_bytes(encoding)
        assert "point of small order" in weak_key_problems(key)[0]


def test_small_order_ed448_and_non_canonical_ed25519_keys_are_named() -> None:
    neutral = ed448.Ed448PublicKey.from_public_bytes((1).to_bytes(57, "little"))
    assert weak_key_problems(neutral) == (
        "Ed448 public key is a point of small order (anyone can sign for it)",
    )
    y_equal_p_plus_1 = ed25519.Ed25519PublicKey.from_public_bytes(
        (2**255 - 19 + 1).to_bytes(32, "little")
    )
    assert "not canonically encoded" in weak_key_problems(y_equal_p_plus_1)[0]


def test_generated_eddsa_keys_pass() -> None:
    for key in (ed25519.Ed25519PrivateKey.generate(), ed448.Ed448PrivateKey.generate()):
        assert weak_key_problems(key.public_key()) == ()
