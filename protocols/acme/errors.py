"""The one total mapping from :class:`gateway.errors.ErrorCode` to ACME problems (§6.7)."""

from __future__ import annotations

from gateway.errors import CAUnavailable, CertgateError, ErrorCode, PolicyDenied, StoreUnavailable
from protocols.acme.messages import Problem

#: Policy rules about the CSR itself: a denial by one of them is ``badCSR`` and leaves the
#: order ``ready`` (RFC 8555 §7.4); any other rule refuses the identifiers or the requester.
CSR_RULE_PREFIXES = ("csr-", "key-", "subject-", "cn-")
CSR_RULES = ("rsa-key-size", "ec-curve")


def is_csr_rule(rule: str | None) -> bool:
    return rule is not None and (rule.startswith(CSR_RULE_PREFIXES) or rule in CSR_RULES)


def problem_for(code: ErrorCode, detail: str, rule: str | None = None) -> Problem:
    """The ACME problem for a core error code; total over :class:`ErrorCode`."""
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
            if is_csr_rule(rule):
                return Problem.bad_csr(f"{rule}: {detail}")
            if rule == "enroll-permission":
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
        problem = problem_for(
            exc.code, exc.detail, exc.rule if isinstance(exc, PolicyDenied) else None
        )
    if isinstance(exc, CAUnavailable):
        problem.headers["Retry-After"] = str(exc.retry_after)
    return problem
