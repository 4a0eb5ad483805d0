"""Validate rules for renewals, and the enforce rules (validity invariants, manager approval).

A RENEWAL is signed with the prior certificate's key (EST simplereenroll, SCEP RenewalReq);
the front-end verified that signature and passes the certificate as ``prior_certificate``.
A RE-ENROLLMENT (ACME ``replaces``) is authenticated otherwise: the renewal window and the
previous-approval shortcut apply to renewals only, because only they prove possession of the
approved certificate's key (MS-CRTD §2.26 PREVIOUS_APPROVAL_VALIDATE_REENROLLMENT).
"""

from __future__ import annotations

from datetime import timedelta

from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

from gateway.durations import format_duration
from gateway.errors import RuleCategory
from gateway.model import RequestKind
from gateway.pkix.csr import spki_fingerprint
from gateway.policy.context import Effect, Rule, Shaped, Stage
from gateway.policy.extensions import read_template_extension
from gateway.policy.renewal import is_due, renewal_window
from gateway.policy.shape import CLOCK_SKEW


def renewal_prior_signature(shaped: Shaped) -> str | None:
    """With ``issuance.renewal_requires_prior_signature``, a renewal must carry the prior
    certificate whose key signed it."""
    facts = shaped.facts
    if (
        facts.is_renewal
        and facts.template.issuance.renewal_requires_prior_signature
        and facts.request.prior_certificate is None
    ):
        return "a renewal must be signed with the prior certificate's key; none was presented"
    return None


def renewal_template(shaped: Shaped) -> str | None:
    """A renewal or re-enrollment's prior certificate, if it carries a template extension,
    must come from this template or one it supersedes (else renewing would launder a
    certificate of one template into another, skipping its approval)."""
    facts = shaped.facts
    prior = facts.request.prior_certificate
    if facts.request.kind is RequestKind.NEW or prior is None:
        return None
    try:
        ext = read_template_extension(prior)
    except ValueError as exc:
        return f"prior certificate: {exc}"
    if ext is None or facts.prior_from_lineage():
        return None
    old = facts.catalog.by_template_oid(ext.oid)
    origin = repr(old.name) if old is not None else f"with OID {ext.oid}"
    return (
        f"the prior certificate was issued under template {origin}, which template "
        f"{facts.template.name!r} does not supersede"
    )


def renewal_window_open(shaped: Shaped) -> str | None:
    """Unless ``issuance.early_renewal``, a renewal is refused before the prior certificate is
    due (:func:`gateway.policy.renewal.is_due`: window, major-version bump, supersession)."""
    facts = shaped.facts
    prior = facts.request.prior_certificate
    if not facts.is_renewal or prior is None or facts.template.issuance.early_renewal:
        return None
    ext = facts.prior_template()
    same_template = ext is not None and ext.oid == facts.template.oid
    major = ext.major if ext is not None and same_template else None
    # A certificate of a template this one supersedes is due at once (renewal-template has
    # already refused certificates of unrelated templates).
    superseded = ext is not None and not same_template
    not_before, not_after = prior.not_valid_before_utc, prior.not_valid_after_utc
    if is_due(not_before, not_after, major, facts.template, facts.now, superseded):
        return None
    start, _ = renewal_window(not_before, not_after, facts.template)
    return (
        f"the prior certificate is not due for renewal before {start.isoformat()} "
        f"(template {facts.template.name!r}: renewal period "
        f"{format_duration(facts.template.renewal_period)}, never before 80 % of the lifetime)"
    )


def renewal_same_key(shaped: Shaped) -> str | None:
    """With ``key_policy.require_same_key_renewal`` (REQUIRE_SAME_KEY_RENEWAL, MS-CRTD §2.27
    0x80) a renewal must keep the prior certificate's public key."""
    facts = shaped.facts
    if not facts.is_renewal or not facts.template.key_policy.require_same_key_renewal:
        return None
    prior = facts.request.prior_certificate
    if prior is None:
        return "same-key renewal cannot be checked without the prior certificate"
    prior_key: CertificatePublicKeyTypes = prior.public_key()
    if spki_fingerprint(prior_key) != facts.request.spki_sha256:
        return f"template {facts.template.name!r} requires renewal with the same key"
    return None


def validity(shaped: Shaped) -> str | None:
    """The window is non-empty and within the template validity and the issuer's lifetime
    (RFC 5280 §4.1.2.5); clipping happened in shape, this guards the invariants."""
    facts = shaped.facts
    if shaped.not_after <= shaped.not_before:
        return (
            f"no validity is possible: notBefore {shaped.not_before.isoformat()} is not before "
            f"notAfter {shaped.not_after.isoformat()} (requested times or issuer expiry)"
        )
    if shaped.not_after > facts.now + facts.template.validity:
        return "notAfter exceeds the template validity"
    if facts.issuer_not_after is not None and shaped.not_after > facts.issuer_not_after:
        return "notAfter exceeds the issuing CA's notAfter"
    if shaped.not_before < facts.now - CLOCK_SKEW - _ONE_SECOND:
        return "notBefore is backdated more than the clock-skew allowance"
    return None


def manager_approval(shaped: Shaped) -> str | None:
    """``issuance.manager_approval`` (PEND_ALL_REQUESTS) holds the request for a certificate
    manager unless already ``approved``, or it is a renewal of a certificate of this template
    (lineage) and ``issuance.renewal_skips_approval``."""
    facts = shaped.facts
    issuance = facts.template.issuance
    if not issuance.manager_approval or facts.approved:
        return None
    if facts.is_renewal and issuance.renewal_skips_approval and facts.prior_from_lineage():
        return None
    return f"template {facts.template.name!r} requires certificate manager approval"


_ONE_SECOND = timedelta(seconds=1)

RENEWAL_RULES: tuple[Rule[Shaped], ...] = (
    Rule(
        "renewal-prior-signature",
        Stage.VALIDATE,
        "renewal signed by the prior key",
        renewal_prior_signature,
        category=RuleCategory.ISSUANCE,
    ),
    Rule(
        "renewal-template",
        Stage.VALIDATE,
        "renewal stays in the template lineage",
        renewal_template,
        category=RuleCategory.ISSUANCE,
    ),
    Rule(
        "renewal-window",
        Stage.VALIDATE,
        "renewal not before it is due",
        renewal_window_open,
        category=RuleCategory.ISSUANCE,
    ),
    Rule(
        "renewal-same-key",
        Stage.VALIDATE,
        "renewal keeps the key if required",
        renewal_same_key,
        category=RuleCategory.ISSUANCE,
    ),
)

ENFORCE_RULES: tuple[Rule[Shaped], ...] = (
    Rule(
        "validity",
        Stage.ENFORCE,
        "validity window invariants",
        validity,
        category=RuleCategory.ISSUANCE,
    ),
    Rule(
        "manager-approval",
        Stage.ENFORCE,
        "pending until a manager approves",
        manager_approval,
        Effect.PEND,
        category=RuleCategory.ISSUANCE,
    ),
)
