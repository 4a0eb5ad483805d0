"""The IssuancePlan policy produces: fields, extensions, and the rule catalogue."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from gateway.errors import UnknownTemplate
from gateway.policy import (
    RULE_NAMES,
    RULES,
    PolicyEngine,
    decode_template_extension,
    read_template_extension,
)
from gateway.policy.context import Effect, Stage
from tests.unit.policy_helpers import (
    build_csr,
    cn,
    dns,
    ec_key,
    ed25519_key,
    engine,
    extension,
    make_template,
    plan,
    request,
    rsa_key,
)

TEMPLATE = make_template(
    "web",
    major_version=104,
    minor_version=3,
    connector="adcs",
    connector_params={"adcs_template": "WebServer"},
)


def _decision(key=None):  # type: ignore[no-untyped-def]
    csr = build_csr(key or ec_key(), cn("www.example.com"), dns("www.example.com"))
    return plan(engine(TEMPLATE), request(csr, template="web"))


def _spki(key: object) -> bytes:
    return key.public_bytes(  # type: ignore[attr-defined, no-any-return]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


# --- plan fields -----------------------------------------------------------------------------


def test_plan_names_the_template_and_its_version() -> None:
    p = _decision().plan
    assert (p.template, p.template_oid, p.template_major, p.template_minor) == (
        "web",
        TEMPLATE.oid,
        104,
        3,
    )


def test_plan_routes_to_the_templates_connector_with_its_parameters() -> None:
    p = _decision().plan
    assert (p.connector, dict(p.connector_params)) == ("adcs", {"adcs_template": "WebServer"})


def test_plan_carries_the_request_id_and_csr() -> None:
    csr = build_csr(subject=cn("a.example.com"), sans=dns("a.example.com"))
    p = plan(engine(), request(csr)).plan
    assert (p.request_id, p.csr) == ("req-1", csr)


def test_plan_public_key_is_the_csr_key() -> None:
    assert _spki(_decision(rsa_key()).plan.public_key) == _spki(rsa_key().public_key())


# --- extensions ------------------------------------------------------------------------------


def test_basic_constraints_is_critical_and_not_a_ca() -> None:
    ext = extension(_decision(), x509.OID_BASIC_CONSTRAINTS)
    assert ext is not None and ext.critical and ext.value.ca is False


def test_key_usage_follows_the_template_for_rsa_keys() -> None:
    ku = extension(_decision(rsa_key()), x509.OID_KEY_USAGE)
    assert ku is not None and ku.critical
    assert ku.value.digital_signature and ku.value.key_encipherment


def test_ec_keys_drop_key_encipherment() -> None:
    ku = extension(_decision(ec_key()), x509.OID_KEY_USAGE)
    assert ku is not None and ku.value.digital_signature and not ku.value.key_encipherment


def test_dropped_key_usage_is_explained() -> None:
    assert any("key_encipherment dropped" in r for r in _decision(ec_key()).reasons)


def test_ed25519_keys_keep_only_signing_usages() -> None:
    ku = extension(_decision(ed25519_key()), x509.OID_KEY_USAGE)
    assert ku is not None and ku.value.digital_signature and not ku.value.key_encipherment


def test_extended_key_usage_follows_the_template() -> None:
    eku = extension(_decision(), x509.OID_EXTENDED_KEY_USAGE)
    assert eku is not None and list(eku.value) == [x509.ExtendedKeyUsageOID.SERVER_AUTH]


def test_template_without_ekus_omits_the_extension() -> None:
    policy = engine(make_template(key_usage={"ekus": []}))
    assert extension(plan(policy, request()), x509.OID_EXTENDED_KEY_USAGE) is None


def test_template_extension_names_the_template_and_version() -> None:
    ext = extension(_decision(), x509.ObjectIdentifier("1.3.6.1.4.1.311.21.7"))
    assert ext is not None and not ext.critical
    assert isinstance(ext.value, x509.UnrecognizedExtension)
    assert decode_template_extension(ext.value.value) == (TEMPLATE.oid, 104, 3)


def test_plan_leaves_issuer_bound_extensions_to_the_connector() -> None:
    oids = {e.oid for e in _decision().plan.extensions}
    forbidden = {
        x509.OID_SUBJECT_KEY_IDENTIFIER,
        x509.OID_AUTHORITY_KEY_IDENTIFIER,
        x509.OID_CRL_DISTRIBUTION_POINTS,
        x509.OID_AUTHORITY_INFORMATION_ACCESS,
    }
    assert not oids & forbidden


def test_plan_extensions_are_unique() -> None:
    oids = [e.oid for e in _decision().plan.extensions]
    assert len(oids) == len(set(oids))


# --- templates and the engine ----------------------------------------------------------------


def test_unknown_template_raises_unknown_template() -> None:
    with pytest.raises(UnknownTemplate):
        plan(engine(), request(template="nope"))


def test_engine_template_lookup_raises_unknown_template() -> None:
    with pytest.raises(UnknownTemplate):
        engine().template("nope")


def test_engine_refuses_templates_superseding_unknown_ones() -> None:
    with pytest.raises(ValueError, match="ghost"):
        PolicyEngine({"a": make_template("a", supersedes=["ghost"])})


def test_engine_refuses_a_template_registered_under_another_name() -> None:
    with pytest.raises(ValueError):
        PolicyEngine({"b": make_template("a")})


# --- the rule catalogue ----------------------------------------------------------------------


def test_rule_names_are_unique_kebab_case() -> None:
    assert len(set(RULE_NAMES)) == len(RULE_NAMES)
    assert all(re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", n) for n in RULE_NAMES)


def test_rules_run_in_stage_order() -> None:
    order = list(Stage)
    positions = [order.index(rule.stage) for rule in RULES]
    assert positions == sorted(positions)


def test_every_rule_function_has_a_docstring() -> None:
    assert all(rule.check.__doc__ for rule in RULES)


def test_only_manager_approval_pends() -> None:
    assert [r.name for r in RULES if r.effect is Effect.PEND] == ["manager-approval"]


def test_every_rule_named_in_the_design_exists() -> None:
    design = {
        "enroll-permission", "superseded-template", "csr-signature", "csr-signature-hash",
        "key-algorithm", "rsa-key-size", "ec-curve", "subject-source", "subject-rdn",
        "cn-in-sans", "san-type", "san-dns-allow-list", "san-uri-allow-list", "san-count",
        "san-required", "san-validated", "san-wildcard", "renewal-prior-signature",
        "renewal-window", "renewal-same-key", "manager-approval", "validity",
    }  # fmt: skip
    assert design <= set(RULE_NAMES)


@pytest.mark.parametrize("rule", [r.name for r in RULES if r.effect is Effect.DENY])
def test_every_denying_rule_has_a_denial_test(rule: str) -> None:
    sources = "".join(p.read_text() for p in Path(__file__).parent.glob("test_policy_*.py"))
    assert f'rule == "{rule}"' in sources


def test_planned_extensions_sign_into_a_certificate_as_is() -> None:
    p = _decision().plan
    builder = (
        x509.CertificateBuilder()
        .subject_name(p.subject)
        .issuer_name(cn("Test CA"))
        .public_key(p.public_key)
        .serial_number(1)
        .not_valid_before(p.not_before)
        .not_valid_after(p.not_after)
    )
    for ext in p.extensions:
        builder = builder.add_extension(ext.value, ext.critical)
    cert = builder.sign(ec_key("secp384r1"), hashes.SHA256())
    assert read_template_extension(cert) == (TEMPLATE.oid, 104, 3)
