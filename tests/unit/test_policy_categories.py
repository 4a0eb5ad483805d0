"""Every policy rule declares a category (gateway.errors.RuleCategory), every denial carries it,
and the protocols' error mappings are driven by it, not by rule-name prefixes (#14 item 4)."""

from __future__ import annotations

import pytest

from gateway.errors import ErrorCode, PolicyDenied, RuleCategory
from gateway.model import Denied
from gateway.policy import RULE_CATEGORIES, RULE_NAMES, RULES, category_of
from protocols.acme.errors import CSR_CATEGORIES, is_csr_rule, problem_for, problem_from
from protocols.est.render import denied_reply
from protocols.wstep.errors import (
    CATEGORY_HRESULTS,
    RULE_HRESULTS,
    denial_hresult,
    fault_for,
    fault_for_denial,
)
from tests.unit.policy_helpers import denial, engine, make_template, request, requester

#: What each category becomes in each protocol: ACME problem type, EST status.
ACME = {
    RuleCategory.CSR: "badCSR",
    RuleCategory.SUBJECT: "badCSR",
    RuleCategory.IDENTIFIERS: "rejectedIdentifier",
    RuleCategory.REQUESTER: "unauthorized",
    RuleCategory.ISSUANCE: "rejectedIdentifier",
}
EST = {
    RuleCategory.CSR: 400,
    RuleCategory.SUBJECT: 403,
    RuleCategory.IDENTIFIERS: 403,
    RuleCategory.REQUESTER: 403,
    RuleCategory.ISSUANCE: 403,
}


def test_every_registered_rule_declares_a_category() -> None:
    assert RULE_NAMES and len(RULE_CATEGORIES) == len(RULE_NAMES)
    for rule in RULES:
        assert isinstance(rule.category, RuleCategory), rule.name
        assert category_of(rule.name) is rule.category


def test_every_category_is_used_and_names_that_are_not_rules_have_none() -> None:
    assert set(RULE_CATEGORIES.values()) == set(RuleCategory)
    assert category_of(None) is None
    for name in ("ca", "manager", "est-client-certificate", "csr-made-up", "key-made-up"):
        assert category_of(name) is None


def test_an_engine_denial_carries_its_rules_category() -> None:
    policy = engine(make_template(permissions={"enroll": ["bob"]}))
    denied = denial(policy, request(who=requester("alice")))
    assert (denied.rule, denied.category) == ("enroll-permission", RuleCategory.REQUESTER)


@pytest.mark.parametrize("rule", RULE_NAMES)
def test_each_protocol_renders_a_recorded_denial_by_its_category(rule: str) -> None:
    category = RULE_CATEGORIES[rule]
    assert problem_for(ErrorCode.POLICY_DENIED, "no", rule).kind == ACME[category]
    assert is_csr_rule(rule) is (category in CSR_CATEGORIES)
    assert denied_reply(Denied("policy-denied", "no", rule), realm="r").status == EST[category]
    assert denial_hresult(rule) == RULE_HRESULTS.get(rule, CATEGORY_HRESULTS[category])


@pytest.mark.parametrize("name", ["csr-made-up", "key-made-up", "subject-made-up", "san-made-up"])
def test_a_rule_name_prefix_alone_decides_nothing(name: str) -> None:
    """An unregistered name that merely looks like a CSR rule gets the code's default."""
    assert problem_for(ErrorCode.POLICY_DENIED, "no", name).kind == "rejectedIdentifier"
    assert denied_reply(Denied("policy-denied", "no", name), realm="r").status == 403
    assert denial_hresult(name) is None
    fault = fault_for_denial(Denied("policy-denied", "no", name), None)
    assert fault.hresult == fault_for(ErrorCode.POLICY_DENIED, "no").hresult


def test_the_category_a_denial_carries_decides_for_acme() -> None:
    """A front-end's own denial (no registered rule name) is rendered by what it carries."""
    for category, kind in ACME.items():
        assert problem_from(PolicyDenied("own-check", "no", category)).kind == kind
    assert problem_from(PolicyDenied("own-check", "no")).kind == "rejectedIdentifier"


def test_wstep_refinements_name_only_registered_rules() -> None:
    assert set(RULE_HRESULTS) <= set(RULE_NAMES)
    assert set(CATEGORY_HRESULTS) == set(RuleCategory)
