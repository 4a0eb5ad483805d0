"""Subject rules: source, RDN allow rules, empty subjects, CN repeated as a SAN."""

from __future__ import annotations

from cryptography import x509
from cryptography.x509.oid import NameOID

from tests.unit.policy_helpers import (
    build_csr,
    cn,
    denial,
    dns,
    engine,
    make_template,
    name,
    plan,
    request,
    requester,
)

DEVICE_RDN = [
    {"type": "CN", "pattern": "[a-z0-9-]{1,32}", "required": True},
    {"type": "O", "required": False},
    {"type": "OU", "max": 2},
]


def _device(**subject: object):  # type: ignore[no-untyped-def]
    return engine(make_template(subject={"rdn": DEVICE_RDN, **subject}, san={"types": ["dns"]}))


def _req(subject: x509.Name, sans: list[x509.GeneralName] | None = None, **kw: object):  # type: ignore[no-untyped-def]
    return request(build_csr(subject=subject, sans=sans), **kw)  # type: ignore[arg-type]


# --- subject-rdn -----------------------------------------------------------------------------


def test_rdn_type_without_a_rule_is_denied() -> None:
    err = denial(
        _device(), _req(name((NameOID.COMMON_NAME, "dev-1"), (NameOID.LOCALITY_NAME, "X")))
    )
    assert err.rule == "subject-rdn" and "L is not allowed" in err.reason


def test_rdn_value_not_matching_the_pattern_is_denied() -> None:
    err = denial(_device(), _req(cn("Device One")))
    assert err.rule == "subject-rdn" and "does not match" in err.reason


def test_required_rdn_missing_is_denied() -> None:
    err = denial(_device(), _req(name((NameOID.ORGANIZATION_NAME, "Example"))))
    assert err.rule == "subject-rdn" and "CN is required" in err.reason


def test_rdn_occurring_more_than_max_is_denied() -> None:
    subject = name(
        *[(NameOID.COMMON_NAME, "dev-1")] + [(NameOID.ORGANIZATIONAL_UNIT_NAME, u) for u in "abc"]
    )
    assert denial(_device(), _req(subject)).rule == "subject-rdn"


def test_subject_matching_every_rule_is_kept_verbatim() -> None:
    subject = name(
        (NameOID.ORGANIZATION_NAME, "Example"),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, "a"),
        (NameOID.COMMON_NAME, "dev-1"),
    )
    assert plan(_device(), _req(subject)).plan.subject == subject


def test_dotted_oid_rdn_rule_allows_that_attribute() -> None:
    policy = engine(make_template(subject={"rdn": [{"type": "CN"}, {"type": "2.5.4.5"}]}))
    subject = name((NameOID.SERIAL_NUMBER, "42"), (NameOID.COMMON_NAME, "host.example.com"))
    assert plan(policy, _req(subject, dns("host.example.com"))).plan.subject == subject


# --- subject-source --------------------------------------------------------------------------


def _built(source: str, **kw: object):  # type: ignore[no-untyped-def]
    return engine(make_template(subject={"source": source, **kw}, san={"types": ["dns"]}))


def test_requester_source_denies_a_supplied_subject() -> None:
    err = denial(_built("requester"), _req(cn("alice"), dns("a.example.com")))
    assert err.rule == "subject-source" and "empty subject" in err.reason


def test_requester_source_builds_cn_from_the_principal() -> None:
    decision = plan(_built("requester"), _req(x509.Name([]), who=requester("device-7")))
    assert decision.plan.subject == cn("device-7")


def test_requester_source_denies_a_principal_too_long_for_a_cn() -> None:
    err = denial(_built("requester"), _req(x509.Name([]), who=requester("x" * 65)))
    assert err.rule == "subject-source"


def test_both_source_denies_a_cn_other_than_the_principal() -> None:
    err = denial(_built("both"), _req(cn("mallory"), who=requester("alice")))
    assert err.rule == "subject-source" and "'mallory'" in err.reason


def test_both_source_keeps_allowed_rdns_and_forces_the_cn() -> None:
    policy = engine(
        make_template(subject={"source": "both", "rdn": [{"type": "CN"}, {"type": "O"}]})
    )
    csr_subject = name((NameOID.ORGANIZATION_NAME, "Example"))
    decision = plan(policy, _req(csr_subject, dns("a.example.com"), who=requester("alice")))
    assert decision.plan.subject == name(
        (NameOID.ORGANIZATION_NAME, "Example"), (NameOID.COMMON_NAME, "alice")
    )


def test_both_source_still_applies_rdn_rules_to_other_attributes() -> None:
    policy = engine(make_template(subject={"source": "both", "rdn": [{"type": "CN"}]}))
    csr_subject = name((NameOID.ORGANIZATION_NAME, "Example"))
    assert denial(policy, _req(csr_subject, who=requester("alice"))).rule == "subject-rdn"


def test_both_source_accepts_a_cn_equal_to_the_principal() -> None:
    assert plan(_built("both"), _req(cn("alice"), who=requester("alice"))).plan.subject == cn(
        "alice"
    )


# --- subject-empty ---------------------------------------------------------------------------


def test_empty_subject_is_denied_when_the_template_requires_one() -> None:
    policy = engine(make_template(subject={"allow_empty": False}))
    err = denial(policy, _req(x509.Name([]), dns("a.example.com")))
    assert err.rule == "subject-empty"


def test_empty_subject_without_sans_is_denied() -> None:
    assert denial(engine(), _req(x509.Name([]))).rule == "subject-empty"


def test_empty_subject_with_a_san_is_allowed() -> None:
    assert plan(engine(), _req(x509.Name([]), dns("a.example.com"))).plan.subject == x509.Name([])


# --- cn-in-sans ------------------------------------------------------------------------------


def _tls():  # type: ignore[no-untyped-def]
    return engine(make_template(subject={"cn_must_be_san": True}))


def test_cn_not_among_the_sans_is_denied() -> None:
    err = denial(_tls(), _req(cn("www.example.com"), dns("api.example.com")))
    assert err.rule == "cn-in-sans"


def test_cn_among_the_dns_sans_case_insensitively_is_allowed() -> None:
    assert plan(_tls(), _req(cn("WWW.Example.com"), dns("www.example.com"))).plan


def test_cn_equal_to_an_ip_san_is_allowed() -> None:
    import ipaddress

    sans: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address("2001:db8::1"))]
    assert plan(_tls(), _req(cn("2001:DB8:0::1"), sans)).plan
