"""One error tree with protocol-neutral codes.

Each protocol owns a *total* mapping from :class:`ErrorCode` to its wire output (ACME problem
document, SCEP failInfo, EST status). Parsers catch library ``ValueError`` at the edge and raise
:class:`BadRequest` or :class:`BadCSR`, so a parser never produces a 500.
"""

from __future__ import annotations

import enum


class ErrorCode(enum.StrEnum):
    BAD_REQUEST = "bad-request"
    BAD_CSR = "bad-csr"
    UNKNOWN_TEMPLATE = "unknown-template"
    UNAUTHORIZED = "unauthorized"
    POLICY_DENIED = "policy-denied"
    NOT_FOUND = "not-found"
    CONFLICT = "conflict"
    CA_DENIED = "ca-denied"
    CA_UNAVAILABLE = "ca-unavailable"
    CONNECTOR_ERROR = "connector-error"
    INTERNAL = "internal"


class CertgateError(Exception):
    """Base of every error certgate raises on purpose. ``detail`` is safe to show a client."""

    code: ErrorCode = ErrorCode.INTERNAL

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class BadRequest(CertgateError):
    code = ErrorCode.BAD_REQUEST


class BadCSR(CertgateError):
    code = ErrorCode.BAD_CSR


class UnknownTemplate(CertgateError):
    code = ErrorCode.UNKNOWN_TEMPLATE

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown certificate template {name!r}")
        self.name = name


class Unauthorized(CertgateError):
    code = ErrorCode.UNAUTHORIZED


class RuleCategory(enum.StrEnum):
    """What a policy rule judges. Every rule declares one (:class:`gateway.policy.context.Rule`)
    and each protocol maps a denial by its category, never by the rule's name.

    ``csr`` and ``subject`` are what the CSR itself says beyond the names to certify: an ACME
    client fixes them with another CSR (badCSR, the order stays ready), while EST and CES tell
    a CSR that cannot be decoded or whose key is refused (``csr``) from a subject the template
    refuses (``subject``, a policy refusal).
    """

    #: The CSR's encoding, its proof of possession and its public key.
    CSR = "csr"
    #: The subject name the CSR asks for (RDNs, an empty subject, a CN repeating a SAN).
    SUBJECT = "subject"
    #: The names to be certified (subjectAltNames: kinds, syntax, allow-lists, validation).
    IDENTIFIERS = "identifiers"
    #: Who asks (the template's Enroll permission).
    REQUESTER = "requester"
    #: What the template issues: validity, renewal, supersession, manager approval.
    ISSUANCE = "issuance"


class PolicyDenied(CertgateError):
    """A named policy rule refused the request (``rule`` e.g. ``key-algorithm``).

    ``category`` is the rule's :class:`RuleCategory`; the policy engine always sets it. A
    denial raised outside the engine may leave it ``None``: then
    :func:`gateway.policy.category_of` finds it from ``rule`` if that names a policy rule
    (as it does for a recorded :class:`gateway.model.Denied`, which stores only the name).
    """

    code = ErrorCode.POLICY_DENIED

    def __init__(self, rule: str, reason: str, category: RuleCategory | None = None) -> None:
        super().__init__(f"{rule}: {reason}")
        self.rule = rule
        self.reason = reason
        self.category = category


class NotFound(CertgateError):
    code = ErrorCode.NOT_FOUND


class Conflict(CertgateError):
    """The request contradicts recorded state (e.g. a transaction id reused with another key)."""

    code = ErrorCode.CONFLICT


class CAUnavailable(CertgateError):
    """Transient connector failure; try again after ``retry_after`` seconds."""

    code = ErrorCode.CA_UNAVAILABLE

    def __init__(self, detail: str, retry_after: int = 30) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class StoreUnavailable(CAUnavailable):
    """The gateway's own database cannot be used right now (outage, vanished file).

    A subclass of :class:`CAUnavailable` on purpose: to a client both mean "the gateway cannot
    serve this now, try again after ``retry_after`` seconds" (EST 503 + Retry-After, ACME
    serverInternal + Retry-After, SCEP HTTP 503, CES a retryable fault), never a permanent
    refusal and never a 500. ``detail`` stays generic; the cause goes to the log.
    """

    def __init__(
        self, detail: str = "the gateway's database is unavailable", retry_after: int = 10
    ) -> None:
        super().__init__(detail, retry_after)


class ConnectorError(CertgateError):
    """Permanent connector failure (misconfiguration, protocol violation by the CA)."""

    code = ErrorCode.CONNECTOR_ERROR


class InternalError(CertgateError):
    code = ErrorCode.INTERNAL


class ConfigError(Exception):
    """Invalid configuration: names the file, the key path and the reason."""

    def __init__(self, file: str, key_path: str, reason: str) -> None:
        where = f"{file}: {key_path}" if key_path else file
        super().__init__(f"{where}: {reason}")
        self.file = file
        self.key_path = key_path
        self.reason = reason
