"""EST responses: the one total mapping from :class:`gateway.errors.ErrorCode` to an HTTP status
(RFC 7030 §4.2.3, §4.1.3; status choices as protocols.md 2.2), and outcome rendering.

Errors are ``text/plain`` human-readable reasons (RFC 8951 §5). 401 always carries
``WWW-Authenticate: Basic realm=...`` (RFC 7030 §3.2.3; libest's client only answers that).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from cryptography import x509

from gateway.errors import CAUnavailable, CertgateError, ErrorCode, RuleCategory
from gateway.model import Denied, Issued, Outcome, Pending
from gateway.policy import category_of
from protocols.est.messages import CERTS_ONLY, certs_only_body

#: Every error code's EST status. Tests iterate every ErrorCode through this table.
STATUS: Mapping[ErrorCode, int] = {
    ErrorCode.BAD_REQUEST: 400,
    ErrorCode.BAD_CSR: 400,
    ErrorCode.UNKNOWN_TEMPLATE: 404,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.POLICY_DENIED: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.CONFLICT: 409,
    ErrorCode.CA_DENIED: 403,
    ErrorCode.CA_UNAVAILABLE: 503,
    ErrorCode.CONNECTOR_ERROR: 502,
    ErrorCode.INTERNAL: 500,
}


@dataclass(frozen=True)
class EstReply:
    """A rendered EST response (status, body, headers): pure data, turned into an aiohttp
    response by the routes module."""

    status: int
    body: bytes
    content_type: str = "text/plain"
    headers: Mapping[str, str] = field(default_factory=dict)


def text(status: int, reason: str, headers: Mapping[str, str] | None = None) -> EstReply:
    return EstReply(status, (reason.rstrip("\n") + "\n").encode(), "text/plain", headers or {})


def is_csr_rule(rule: str | None, category: RuleCategory | None = None) -> bool:
    """Whether a denial by ``rule`` (of ``category``, else the rule's registered category)
    judged the CSR itself (its encoding, possession proof or key: category ``csr``): a bad
    request (400), where any other policy denial is 403."""
    return (category or category_of(rule)) is RuleCategory.CSR


def error_reply(code: ErrorCode, detail: str, *, realm: str, retry_after: int = 30) -> EstReply:
    """The reply for an error code (total over :class:`ErrorCode`)."""
    status = STATUS[code]
    headers: dict[str, str] = {}
    if status == 401:
        headers["WWW-Authenticate"] = f'Basic realm="{realm}"'
    if status == 503:
        headers["Retry-After"] = str(retry_after)
    return text(status, detail, headers)


def exception_reply(exc: CertgateError, *, realm: str) -> EstReply:
    retry = exc.retry_after if isinstance(exc, CAUnavailable) else 30
    return error_reply(exc.code, exc.detail, realm=realm, retry_after=retry)


def denied_reply(denied: Denied, *, realm: str) -> EstReply:
    """A refusal: 400 for CSR problems, 403 naming the rule for policy, 403/502 for the CA."""
    try:
        code = ErrorCode(denied.code)
    except ValueError:
        code = ErrorCode.POLICY_DENIED
    reason = f"{denied.rule}: {denied.detail}" if denied.rule else denied.detail
    if code is ErrorCode.POLICY_DENIED and is_csr_rule(denied.rule):
        return text(400, f"bad CSR: {reason}")
    return error_reply(code, f"denied by {reason}", realm=realm)


def issued_reply(certificate: x509.Certificate | bytes, *, cte_header: bool) -> EstReply:
    """200 certs-only with only the issued certificate (RFC 7030 §4.2.3), given as an object
    or as its DER."""
    headers = {"Content-Transfer-Encoding": "base64"} if cte_header else {}
    return EstReply(200, certs_only_body([certificate]), CERTS_ONLY, headers)


def pending_reply(pending: Pending) -> EstReply:
    """202 + Retry-After in integer seconds (RFC 7030 §4.2.3; globalsign parses both forms)."""
    why = "certificate manager approval" if pending.reason.value == "approval" else "the CA"
    return text(
        202,
        f"request {pending.request_id} is waiting for {why}; "
        f"send the same request again after {pending.retry_after} seconds",
        {"Retry-After": str(pending.retry_after)},
    )


def outcome_reply(outcome: Outcome, *, realm: str, cte_header: bool) -> EstReply:
    if isinstance(outcome, Issued):
        # the DER the CA produced, not the certificate encoded again (~70 000 instructions)
        return issued_reply(outcome.der, cte_header=cte_header)
    if isinstance(outcome, Pending):
        return pending_reply(outcome)
    return denied_reply(outcome, realm=realm)
