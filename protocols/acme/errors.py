"""The one total mapping from :class:`gateway.errors.ErrorCode` to ACME problems (§6.7)."""

from __future__ import annotations

from gateway.errors import (
    CAUnavailable,
    CertgateError,
    ErrorCode,
    PolicyDenied,
    RuleCategory,
    StoreUnavailable,
)
from gateway.policy import category_of
from protocols.acme.messages import Problem

#: Rule categories about the CSR itself (its encoding, key and subject): a denial is
#: ``badCSR`` and leaves the order ``ready`` (RFC 8555 §7.4), and newOrder's probe CSR ignores
#: them; any other category refuses the identifiers, the issuance or the requester.
CSR_CATEGORIES = frozenset({RuleCategory.CSR, RuleCategory.SUBJECT})


def is_csr_rule(rule: str | None, category: RuleCategory | None = None) -> bool:
    """Whether a denial by ``rule`` (of ``category``, else the rule's registered category)
    concerns the CSR itself."""
    return (category or category_of(rule)) in CSR_CATEGORIES


def problem_for(
    code: ErrorCode, detail: str, rule: str | None = None, category: RuleCategory | None = None
) -> Problem:
    """The ACME problem for a core error code; total over :class:`ErrorCode`. A policy
    denial is rendered by its rule's category (``category``, else ``rule``'s registered one):
    badCSR, unauthorized for the requester, else rejectedIdentifier."""
    match code:
        case ErrorCode.BAD_REQUEST:
            return Problem.malformed(detail)
        case ErrorCode.BAD_CSR:
            return Problem.bad_csr(detail)
        case ErrorCode.UNKNOWN_TEMPLATE:
            return Problem.invalid_profile(detail)
        case ErrorCode.UNAUTHORIZED:
            return Problem.unauthorized(detail)
        case ErrorCode.POLICY_DENIED:
            category = category or category_of(rule)
            if category in CSR_CATEGORIES:
                return Problem.bad_csr(f"{rule}: {detail}")
            if category is RuleCategory.REQUESTER:
                return Problem.unauthorized(f"{rule}: {detail}")
            return Problem.rejected_identifier(f"{rule}: {detail}" if rule else detail)
        case ErrorCode.NOT_FOUND:
            return Problem.malformed(detail, 404)
        case ErrorCode.CONFLICT:
            return Problem.malformed(detail, 409)
        case ErrorCode.CA_DENIED:
            return Problem.unauthorized(f"the CA refused the request: {detail}")
        case ErrorCode.CA_UNAVAILABLE:
            return Problem.server_internal(f"the CA is unavailable: {detail}", 503)
        case ErrorCode.CONNECTOR_ERROR:
            return Problem.server_internal(f"the CA connector failed: {detail}")
        case ErrorCode.INTERNAL:
            return Problem.server_internal(detail)
    raise AssertionError(f"unmapped error code {code!r}")  # pragma: no cover


def problem_from(exc: CertgateError) -> Problem:
    """Render a raised core error (Retry-After for CAUnavailable). The gateway's own database
    outage is serverInternal 503 + Retry-After too, worded as what it is (not "the CA")."""
    if isinstance(exc, StoreUnavailable):
        problem = Problem.server_internal(exc.detail, 503)
    else:
        denied = exc if isinstance(exc, PolicyDenied) else None
        problem = problem_for(
            exc.code,
            exc.detail,
            denied.rule if denied else None,
            denied.category if denied else None,
        )
    if isinstance(exc, CAUnavailable):
        problem.headers["Retry-After"] = str(exc.retry_after)
    return problem
