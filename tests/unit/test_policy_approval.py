"""Manager approval (PEND_ALL_REQUESTS) and the previous-approval shortcut for renewals."""

from __future__ import annotations

from datetime import timedelta

from gateway.model import RequestKind
from tests.unit.policy_helpers import (
    NOW,
    build_csr,
    cn,
    denial,
    dns,
    ec_key,
    engine,
    issue,
    make_template,
    plan,
    request,
)

APPROVAL = make_template("t", issuance={"manager_approval": True})


def _renewal(template=APPROVAL, prior_template=APPROVAL, kind=RequestKind.RENEWAL):  # type: ignore[no-untyped-def]
    key = ec_key()
    prior = issue(key.public_key(), not_before=NOW - timedelta(days=80), template=prior_template)
    csr = build_csr(key, cn("host.example.com"), dns("host.example.com"))
    return request(csr, template=template.name, kind=kind, prior=prior)


def test_template_requiring_approval_makes_the_request_pending() -> None:
    assert plan(engine(APPROVAL), request()).needs_approval


def test_pending_decision_names_the_manager_approval_rule() -> None:
    reasons = plan(engine(APPROVAL), request()).reasons
    assert any(r.startswith("manager-approval:") for r in reasons)


def test_approved_request_needs_no_further_approval() -> None:
    assert not plan(engine(APPROVAL), request(), approved=True).needs_approval


def test_template_without_approval_issues_directly() -> None:
    assert not plan(engine(), request()).needs_approval


def test_renewal_of_this_templates_certificate_skips_approval() -> None:
    assert not plan(engine(APPROVAL), _renewal()).needs_approval


def test_renewal_needs_approval_when_the_shortcut_is_disabled() -> None:
    strict = make_template(
        "t", issuance={"manager_approval": True, "renewal_skips_approval": False}
    )
    assert plan(engine(strict), _renewal(strict, strict)).needs_approval


def test_reenrollment_does_not_skip_approval() -> None:
    decision = plan(engine(APPROVAL), _renewal(kind=RequestKind.REENROLLMENT))
    assert decision.needs_approval


def test_renewal_of_a_certificate_without_template_extension_needs_approval() -> None:
    assert plan(engine(APPROVAL), _renewal(prior_template=None)).needs_approval


def test_renewal_from_another_template_cannot_launder_approval() -> None:
    other = make_template("other")
    err = denial(engine(APPROVAL, other), _renewal(prior_template=other))
    assert err.rule == "renewal-template"


def test_renewal_from_a_superseded_template_skips_approval() -> None:
    old = make_template("old", issuance={"manager_approval": True})
    new = make_template("new", supersedes=["old"], issuance={"manager_approval": True})
    assert not plan(engine(old, new), _renewal(new, old)).needs_approval
