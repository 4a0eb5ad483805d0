"""The policy engine: EnrollmentRequest -> IssuancePlan, or a named denial.

Pure and synchronous: no I/O, no clock (``now`` is a parameter), no asyncio. The pipeline is
authorize -> check -> shape -> validate -> enforce (see :mod:`gateway.policy.rules`); the first
denying rule raises :class:`gateway.errors.PolicyDenied` naming itself. Manager approval
(PEND_ALL_REQUESTS, MS-CRTD §2.26) is not a denial: the decision says ``needs_approval`` and
the service records the request as pending.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from cryptography import x509

from gateway.errors import PolicyDenied, UnknownTemplate
from gateway.model import EnrollmentRequest, IssuancePlan
from gateway.policy.catalog import TemplateCatalog
from gateway.policy.context import Effect, Facts, Rule, Shaped
from gateway.policy.extensions import read_template_extension
from gateway.policy.renewal import certificate_is_due
from gateway.policy.rules import PLAN_RULES, REQUEST_RULES
from gateway.policy.shape import as_utc, shape
from gateway.policy.template import CertificateTemplate
from gateway.policy.weak_keys import warm_up

_C = TypeVar("_C", Facts, Shaped)

#: REQUEST_RULES without rule csr-signature, for :meth:`PolicyEngine.plan`'s previews.
_REQUEST_RULES_UNSIGNED = tuple(rule for rule in REQUEST_RULES if rule.name != "csr-signature")


@dataclass(frozen=True)
class PolicyDecision:
    """What policy decided for an allowed request: the plan the CA signs, whether a certificate
    manager must approve it first, and notes on every adjustment (clipping, dropped usages)
    and on the approval requirement."""

    plan: IssuancePlan
    needs_approval: bool
    reasons: tuple[str, ...]


class PolicyEngine:
    """Evaluates enrollment requests against a consistent set of certificate templates."""

    def __init__(
        self,
        templates: Mapping[str, CertificateTemplate],
        *,
        weak_key_checks: bool = True,
    ) -> None:
        """Raises ``ValueError`` if ``templates`` is inconsistent (see
        :func:`gateway.policy.catalog.catalog_problems`).

        ``weak_key_checks=False`` leaves out rule key-weak: only for measuring what the rule
        costs (bench/issue_local.py). Neither configuration nor a template can reach it.
        """
        self._catalog = TemplateCatalog.of(templates)
        self._request_rules = _without(REQUEST_RULES, weak_key_checks)
        self._preview_rules = _without(_REQUEST_RULES_UNSIGNED, weak_key_checks)
        if weak_key_checks:
            warm_up()

    @property
    def catalog(self) -> TemplateCatalog:
        """The templates with their name, OID and successor indexes."""
        return self._catalog

    def template(self, name: str) -> CertificateTemplate:
        """The template called ``name``; raises :class:`gateway.errors.UnknownTemplate`."""
        return self._catalog.get(name)

    @property
    def templates(self) -> Mapping[str, CertificateTemplate]:
        """All templates by name."""
        return self._catalog.templates

    def superseded_by(self, name: str) -> str | None:
        """The template that supersedes ``name`` (first by name), or None."""
        successors = self._catalog.successors.get(name, ())
        return successors[0] if successors else None

    def plan(
        self,
        request: EnrollmentRequest,
        *,
        request_id: str,
        now: datetime,
        issuer_not_after: datetime | None,
        approved: bool = False,
        check_possession: bool = True,
    ) -> PolicyDecision:
        """Judge ``request`` at ``now`` (timezone-aware) for an issuer valid until
        ``issuer_not_after``. ``approved`` is true when a certificate manager already approved
        the request (re-evaluation after approval). ``check_possession=False`` skips rule
        csr-signature: only for a preview whose probe CSR the caller signed itself (ACME's
        newOrder dry run), never for a request that may be issued.

        Raises :class:`gateway.errors.PolicyDenied` (``rule``, ``reason``) or
        :class:`gateway.errors.UnknownTemplate`.
        """
        if now.tzinfo is None:
            raise ValueError("PolicyEngine.plan: now must be timezone-aware")
        facts = Facts(
            request=request,
            template=self.template(request.template),
            catalog=self._catalog,
            now=as_utc(now),
            issuer_not_after=None if issuer_not_after is None else as_utc(issuer_not_after),
            approved=approved,
        )
        pending: list[str] = []
        _apply(self._request_rules if check_possession else self._preview_rules, facts, pending)
        shaped = shape(facts)
        _apply(PLAN_RULES, shaped, pending)
        template = facts.template
        plan = IssuancePlan(
            request_id=request_id,
            template=template.name,
            template_oid=template.oid,
            template_major=template.major_version,
            template_minor=template.minor_version,
            connector=template.connector,
            subject=shaped.subject,
            public_key=shaped.public_key,
            not_before=shaped.not_before,
            not_after=shaped.not_after,
            extensions=shaped.extensions,
            csr=request.csr,
            connector_params=template.connector_params,
        )
        return PolicyDecision(
            plan=plan, needs_approval=bool(pending), reasons=(*shaped.notes, *pending)
        )

    def is_due(
        self, certificate: x509.Certificate, now: datetime, template: str | None = None
    ) -> bool:
        """Whether ``certificate`` should be renewed at ``now`` (:mod:`gateway.policy.renewal`),
        judged against ``template`` or else the template its template extension names.
        Certificates of a superseded template are due at once. Raises ``UnknownTemplate`` if
        no template applies and ``ValueError`` for a malformed template extension."""
        if template is None:
            ext = read_template_extension(certificate)
            found = None if ext is None else self._catalog.by_template_oid(ext.oid)
            if found is None:
                raise UnknownTemplate(ext.oid if ext is not None else "(no template extension)")
            template = found.name
        return certificate_is_due(
            certificate,
            self.template(template),
            as_utc(now),
            superseded=self._catalog.is_superseded(template),
        )


def _without(rules: tuple[Rule[Facts], ...], weak_key_checks: bool) -> tuple[Rule[Facts], ...]:
    return rules if weak_key_checks else tuple(r for r in rules if r.name != "key-weak")


def _apply(rules: tuple[Rule[_C], ...], context: _C, pending: list[str]) -> None:
    for rule in rules:
        reason = rule.check(context)
        if reason is None:
            continue
        if rule.effect is Effect.DENY:
            raise PolicyDenied(rule.name, reason, rule.category)
        pending.append(f"{rule.name}: {reason}")
