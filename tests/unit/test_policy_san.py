"""subjectAltName rules: types, allow-lists, counts, wildcards, validated identifiers."""

from __future__ import annotations

import ipaddress

from cryptography import x509
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.errors import PolicyDenied
from gateway.model import Identifier
from gateway.policy import PolicyEngine
from tests.unit.policy_helpers import (
    build_csr,
    denial,
    dns,
    engine,
    make_template,
    plan,
    request,
)


def _req(sans: list[x509.GeneralName], **kw: object):  # type: ignore[no-untyped-def]
    return request(build_csr(sans=sans), **kw)  # type: ignore[arg-type]


def _policy(**san: object) -> PolicyEngine:
    return engine(make_template(san=san))


def _ip(text: str) -> x509.GeneralName:
    return x509.IPAddress(ipaddress.ip_address(text))


# --- san-type --------------------------------------------------------------------------------


def test_san_type_not_allowed_is_denied() -> None:
    err = denial(_policy(types=["dns"]), _req([*dns("a.example.com"), x509.RFC822Name("a@b.c")]))
    assert err.rule == "san-type" and "email" in err.reason


def test_allowed_san_types_pass() -> None:
    decision = plan(_policy(types=["dns", "ip"]), _req([*dns("a.example.com"), _ip("192.0.2.1")]))
    assert len(decision.plan.sans) == 2


def test_other_name_san_is_denied() -> None:
    upn = x509.OtherName(x509.ObjectIdentifier("1.3.6.1.4.1.311.20.2.3"), b"\x0c\x03a@b")
    assert denial(_policy(), _req([upn])).rule == "san-type"


def test_ip_network_san_is_denied() -> None:
    net = x509.IPAddress(ipaddress.ip_network("10.0.0.0/8"))
    assert denial(_policy(), _req([net])).rule == "san-type"


# --- san-dns-allow-list ----------------------------------------------------------------------


def test_dns_name_outside_the_suffix_allow_list_is_denied() -> None:
    err = denial(_policy(dns_suffixes=[".example.com"]), _req(dns("evil.example.net")))
    assert err.rule == "san-dns-allow-list" and "evil.example.net" in err.reason


def test_dot_suffix_matches_subdomains() -> None:
    assert plan(_policy(dns_suffixes=[".example.com"]), _req(dns("a.b.example.com"))).plan


def test_dot_suffix_does_not_match_the_bare_domain() -> None:
    err = denial(_policy(dns_suffixes=[".example.com"]), _req(dns("example.com")))
    assert err.rule == "san-dns-allow-list"


def test_bare_suffix_matches_the_domain_itself() -> None:
    assert plan(_policy(dns_suffixes=["example.com"]), _req(dns("example.com"))).plan


def test_bare_suffix_does_not_match_a_longer_label() -> None:
    err = denial(_policy(dns_suffixes=["example.com"]), _req(dns("badexample.com")))
    assert err.rule == "san-dns-allow-list"


def test_dns_regex_allows_a_name_outside_the_suffixes() -> None:
    policy = _policy(dns_suffixes=[".example.com"], dns_regex=[r"host-[0-9]+\.lab"])
    assert plan(policy, _req(dns("host-12.lab"))).plan


def test_dns_regex_must_match_the_whole_name() -> None:
    policy = _policy(dns_regex=[r"host-[0-9]+\.lab"])
    assert denial(policy, _req(dns("host-12.lab.evil.com"))).rule == "san-dns-allow-list"


def test_dns_names_are_lower_cased_in_the_plan() -> None:
    decision = plan(_policy(dns_suffixes=[".example.com"]), _req(dns("WWW.Example.COM")))
    assert decision.plan.sans == (x509.DNSName("www.example.com"),)


# --- san-dns-syntax / san-wildcard -----------------------------------------------------------


def test_malformed_dns_name_is_denied() -> None:
    assert denial(_policy(), _req(dns("bad_name.example.com"))).rule == "san-dns-syntax"


def test_wildcard_is_denied_by_default() -> None:
    assert denial(_policy(), _req(dns("*.example.com"))).rule == "san-wildcard"


def test_wildcard_is_allowed_when_the_template_allows_it() -> None:
    assert plan(_policy(allow_wildcards=True), _req(dns("*.example.com"))).plan


def test_wildcard_above_a_top_level_name_is_denied() -> None:
    assert denial(_policy(allow_wildcards=True), _req(dns("*.com"))).rule == "san-dns-syntax"


# --- san-uri-allow-list ----------------------------------------------------------------------

SID_TAG = r"tag:microsoft\.com,2022-09-14:sid:S-1-5-21(-[0-9]+)+"


def test_uri_matching_the_allow_list_passes() -> None:
    uri = x509.UniformResourceIdentifier("tag:microsoft.com,2022-09-14:sid:S-1-5-21-1-2-3-1001")
    assert plan(_policy(types=["uri", "dns"], uri_regex=[SID_TAG]), _req([uri])).plan


def test_uri_outside_the_allow_list_is_denied() -> None:
    uri = x509.UniformResourceIdentifier("https://evil.example/")
    err = denial(_policy(types=["uri"], uri_regex=[SID_TAG]), _req([uri]))
    assert err.rule == "san-uri-allow-list"


# --- san-count / san-required ----------------------------------------------------------------


def test_too_many_sans_are_denied() -> None:
    names = dns(*(f"h{i}.example.com" for i in range(4)))
    err = denial(_policy(max_count=3), _req(names))
    assert err.rule == "san-count" and "at most 3" in err.reason


def test_san_count_at_the_limit_passes() -> None:
    assert plan(_policy(max_count=3), _req(dns("a.x.com", "b.x.com", "c.x.com"))).plan


def test_missing_san_is_denied_when_required() -> None:
    from tests.unit.policy_helpers import cn

    req = request(build_csr(subject=cn("host")))
    assert denial(_policy(required=True), req).rule == "san-required"


# --- san-validated ---------------------------------------------------------------------------


def test_unvalidated_dns_san_is_denied() -> None:
    req = _req(
        dns("a.example.com", "b.example.com"), validated=[Identifier("dns", "a.example.com")]
    )
    err = denial(_policy(require_validated=True), req)
    assert err.rule == "san-validated" and "b.example.com" in err.reason


def test_validated_identifiers_allow_their_sans() -> None:
    req = _req(
        [*dns("A.example.com"), _ip("2001:db8::1")],
        validated=[Identifier("dns", "a.example.com"), Identifier("ip", "2001:db8:0:0::1")],
    )
    assert plan(_policy(require_validated=True), req).plan


def test_unvalidated_ip_san_is_denied() -> None:
    req = _req([_ip("192.0.2.7")], validated=[Identifier("ip", "192.0.2.8")])
    assert denial(_policy(require_validated=True), req).rule == "san-validated"


# --- extension shape -------------------------------------------------------------------------


def _san_ext(decision):  # type: ignore[no-untyped-def]
    return next(e for e in decision.plan.extensions if e.oid == x509.OID_SUBJECT_ALTERNATIVE_NAME)


def test_san_extension_is_critical_when_the_subject_is_empty() -> None:
    assert _san_ext(plan(_policy(), _req(dns("a.example.com")))).critical


def test_san_extension_is_not_critical_with_a_subject() -> None:
    from tests.unit.policy_helpers import cn

    decision = plan(
        _policy(), request(build_csr(subject=cn("a.example.com"), sans=dns("a.example.com")))
    )
    assert not _san_ext(decision).critical


def test_duplicate_sans_are_merged() -> None:
    decision = plan(_policy(), _req(dns("a.example.com", "A.example.com")))
    assert decision.plan.sans == (x509.DNSName("a.example.com"),)


# --- property: arbitrary SAN lists only ever pass or raise PolicyDenied ----------------------

_label = st.text("abcXYZ019-_*.", min_size=0, max_size=12)
_host = st.one_of(_label, _label.map(lambda s: s + ".example.com"))
_general_name = st.one_of(
    _host.map(x509.DNSName),
    st.ip_addresses().map(x509.IPAddress),
    st.text("abc019.", min_size=1, max_size=8).map(lambda s: x509.RFC822Name(f"{s}@example.com")),
    _label.map(x509.UniformResourceIdentifier),
)
_POLICY = engine(
    make_template(
        san={"types": ["dns", "ip", "uri"], "dns_suffixes": [".example.com"], "max_count": 5},
    )
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_general_name, max_size=8))
def test_random_san_lists_are_planned_or_denied_by_a_rule(sans: list[x509.GeneralName]) -> None:
    req = _req(sans)
    try:
        decision = plan(_POLICY, req)
    except PolicyDenied as denied:
        assert denied.rule and denied.reason
    else:
        assert len(decision.plan.sans) <= 5
