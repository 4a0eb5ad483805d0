"""Authorize and check stages: permissions, supersession, CSR signature and key policy."""

from __future__ import annotations

from datetime import timedelta

from cryptography.hazmat.primitives.asymmetric import dsa

from gateway.model import RequestKind
from tests.unit.policy_helpers import (
    NOW,
    broken_signature,
    build_csr,
    cn,
    csr_with_duplicate_san,
    denial,
    dns,
    ec_key,
    ed25519_key,
    engine,
    issue,
    make_template,
    plan,
    request,
    requester,
    rsa_key,
    sha1_csr,
)


def _csr(key=None):  # type: ignore[no-untyped-def]
    return build_csr(key, cn("host.example.com"), dns("host.example.com"))


# --- enroll-permission ---------------------------------------------------------------------


def test_requester_not_listed_is_denied() -> None:
    policy = engine(make_template(permissions={"enroll": ["bob", "group:web"]}))
    assert denial(policy, request(who=requester("alice"))).rule == "enroll-permission"


def test_denial_names_the_requester() -> None:
    policy = engine(make_template(permissions={"enroll": ["bob"]}))
    assert "'alice'" in denial(policy, request(who=requester("alice"))).reason


def test_listed_principal_may_enroll() -> None:
    policy = engine(make_template(permissions={"enroll": ["alice"]}))
    assert plan(policy, request(who=requester("alice"))).plan.template == "t"


def test_group_member_may_enroll() -> None:
    policy = engine(make_template(permissions={"enroll": ["group:web"]}))
    assert plan(policy, request(who=requester("carol", groups={"web"}))).plan


def test_group_entry_does_not_match_a_principal_of_that_name() -> None:
    policy = engine(make_template(permissions={"enroll": ["group:web"]}))
    assert denial(policy, request(who=requester("web"))).rule == "enroll-permission"


def test_empty_enroll_list_denies_everyone() -> None:
    policy = engine(make_template(permissions={"enroll": []}))
    assert denial(policy, request()).rule == "enroll-permission"


# --- superseded-template -------------------------------------------------------------------


def _supersession():  # type: ignore[no-untyped-def]
    old = make_template("old")
    new = make_template("new", supersedes=["old"])
    return old, new, engine(old, new)


def test_new_enrollment_on_superseded_template_names_the_successor() -> None:
    _, _, policy = _supersession()
    err = denial(policy, request(template="old"))
    assert err.rule == "superseded-template" and "'new'" in err.reason


def test_renewal_of_old_template_certificate_onto_successor_is_allowed() -> None:
    old, _, policy = _supersession()
    key = ec_key()
    prior = issue(key.public_key(), not_before=NOW - timedelta(days=10), template=old)
    req = request(_csr(key), template="new", kind=RequestKind.RENEWAL, prior=prior)
    assert plan(policy, req).plan.template == "new"


def test_new_enrollment_on_successor_is_allowed() -> None:
    _, _, policy = _supersession()
    assert plan(policy, request(template="new")).plan.template == "new"


# --- csr-format ----------------------------------------------------------------------------


def test_csr_with_undecodable_extensions_is_denied() -> None:
    assert denial(engine(), request(csr_with_duplicate_san())).rule == "csr-format"


# --- csr-signature / csr-signature-hash ----------------------------------------------------


def test_broken_csr_signature_is_denied() -> None:
    assert denial(engine(), request(broken_signature(_csr()))).rule == "csr-signature"


def test_a_preview_without_possession_check_skips_only_the_signature() -> None:
    broken = broken_signature(_csr())
    assert plan(engine(), request(broken), check_possession=False).plan.csr is broken
    # every other check still runs in a preview
    sha1 = broken_signature(sha1_csr(cn("host.example.com"), dns("host.example.com")))
    assert denial(engine(), request(sha1), check_possession=False).rule == "csr-signature-hash"


def test_sha1_csr_is_denied_by_default() -> None:
    csr = sha1_csr(cn("host.example.com"), dns("host.example.com"))
    err = denial(engine(), request(csr))
    assert err.rule == "csr-signature-hash" and "SHA-1" in err.reason


def test_sha1_csr_is_allowed_when_the_template_allows_it() -> None:
    policy = engine(make_template(key_policy={"allow_sha1_signature": True}))
    csr = sha1_csr(cn("host.example.com"), dns("host.example.com"))
    assert plan(policy, request(csr)).plan.csr is csr


def test_broken_sha1_signature_is_denied_even_when_sha1_is_allowed() -> None:
    policy = engine(make_template(key_policy={"allow_sha1_signature": True}))
    csr = broken_signature(sha1_csr(cn("host.example.com"), dns("host.example.com")))
    assert denial(policy, request(csr)).rule == "csr-signature"


# --- key-algorithm / rsa-key-size / ec-curve / key-usage -----------------------------------


def test_key_algorithm_not_allowed_is_denied() -> None:
    policy = engine(make_template(key_policy={"algorithms": ["rsa"]}))
    err = denial(policy, request(_csr(ec_key())))
    assert err.rule == "key-algorithm" and "ec keys" in err.reason


def test_ed25519_key_is_allowed_when_listed() -> None:
    decision = plan(engine(), request(_csr(ed25519_key())))
    assert (
        decision.plan.public_key.public_bytes_raw() == ed25519_key().public_key().public_bytes_raw()
    )  # type: ignore[union-attr]


def test_dsa_key_is_denied() -> None:
    key = dsa.generate_private_key(2048)
    assert denial(engine(), request(_csr(key))).rule == "key-algorithm"


def test_rsa_key_below_minimum_is_denied() -> None:
    err = denial(engine(), request(_csr(rsa_key(1024))))
    assert err.rule == "rsa-key-size" and "1024" in err.reason


def test_rsa_key_at_minimum_is_allowed() -> None:
    assert plan(engine(), request(_csr(rsa_key(2048)))).plan.public_key.key_size == 2048  # type: ignore[union-attr]


def test_raised_rsa_minimum_denies_2048_bit_keys() -> None:
    policy = engine(make_template(key_policy={"min_rsa_bits": 3072}))
    assert denial(policy, request(_csr(rsa_key(2048)))).rule == "rsa-key-size"


def test_ec_curve_not_allowed_is_denied() -> None:
    err = denial(engine(), request(_csr(ec_key("secp521r1"))))
    assert err.rule == "ec-curve" and "secp521r1" in err.reason


def test_allowed_ec_curve_passes() -> None:
    assert plan(engine(), request(_csr(ec_key("secp384r1")))).plan


def test_template_with_only_encipherment_usage_denies_ec_keys() -> None:
    policy = engine(make_template(key_usage={"usages": ["key_encipherment"]}))
    assert denial(policy, request(_csr(ec_key()))).rule == "key-usage"


def test_template_with_only_encipherment_usage_allows_rsa_keys() -> None:
    policy = engine(make_template(key_usage={"usages": ["key_encipherment"]}))
    assert plan(policy, request(_csr(rsa_key()))).plan
