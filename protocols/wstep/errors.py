"""The one mapping from certgate errors and denials to MS-WSTEP SOAP faults.

Every :class:`gateway.errors.ErrorCode` has exactly one fault (``tests/unit/test_wstep_errors``
iterates them all). HRESULTs are the ones AD CS returns for the same situation, so Windows
clients show their usual messages; a policy denial is refined by the category of the rule that
denied (and, where AD CS is more specific, by the rule itself), never by a rule-name prefix.
Every SOAP fault, ``Sender`` or ``Receiver``, travels with HTTP 500, as AD CS's CES (a WCF
service) sends it: SOAP 1.2 part 2 §7.5.1.2 would allow 400 for ``Sender`` faults, but CES
clients read the fault body only from a 500 (cepces raises an HTTP error for anything else, so
a wrong password would crash it instead of being reported as a rejection). The body is always a
SOAP fault, never an HTML page.
"""

from __future__ import annotations

from gateway.codecs.ms import hresults as hr
from gateway.codecs.ms.wstrust import EnrollmentFault
from gateway.errors import CertgateError, ErrorCode, RuleCategory
from gateway.model import Denied
from gateway.policy import category_of

#: ErrorCode -> (SOAP fault code, HRESULT name, InvalidRequest).
FAULTS: dict[ErrorCode, tuple[str, str, bool]] = {
    ErrorCode.BAD_REQUEST: ("Sender", "E_INVALIDARG", True),
    ErrorCode.BAD_CSR: ("Sender", "CRYPT_E_ASN1_BADTAG", True),
    ErrorCode.UNKNOWN_TEMPLATE: ("Sender", "CERTSRV_E_UNSUPPORTED_CERT_TYPE", True),
    ErrorCode.UNAUTHORIZED: ("Sender", "E_ACCESSDENIED", False),
    ErrorCode.POLICY_DENIED: ("Receiver", "CERTSRV_E_ENROLL_DENIED", True),
    ErrorCode.NOT_FOUND: ("Sender", "CERTSRV_E_NO_REQUEST", False),
    ErrorCode.CONFLICT: ("Sender", "CERTSRV_E_BAD_REQUESTSTATUS", True),
    ErrorCode.CA_DENIED: ("Receiver", "CERTSRV_E_ENROLL_DENIED", True),
    ErrorCode.CA_UNAVAILABLE: ("Receiver", "RPC_S_SERVER_UNAVAILABLE", False),
    ErrorCode.CONNECTOR_ERROR: ("Receiver", "E_FAIL", False),
    ErrorCode.INTERNAL: ("Receiver", "E_UNEXPECTED", False),
}

#: A policy denial's HRESULT by the denying rule's category (:class:`RuleCategory`): the one
#: AD CS returns for the same kind of refusal.
CATEGORY_HRESULTS: dict[RuleCategory, str] = {
    RuleCategory.CSR: "CRYPT_E_ASN1_BADTAG",
    RuleCategory.SUBJECT: "CERTSRV_E_BAD_REQUESTSUBJECT",
    RuleCategory.IDENTIFIERS: "CERTSRV_E_BAD_REQUESTSUBJECT",
    RuleCategory.REQUESTER: "CERTSRV_E_TEMPLATE_DENIED",
    RuleCategory.ISSUANCE: "CERTSRV_E_ENROLL_DENIED",
}

#: Where AD CS has a more specific HRESULT than the category's, the rule named exactly (every
#: name is a registered policy rule: tests/unit/test_policy_categories checks).
RULE_HRESULTS: dict[str, str] = {
    "key-algorithm": "CERTSRV_E_KEY_LENGTH",
    "rsa-key-size": "CERTSRV_E_KEY_LENGTH",
    "key-weak": "CERTSRV_E_KEY_LENGTH",
    "ec-curve": "CERTSRV_E_KEY_LENGTH",
    "key-usage": "CERTSRV_E_KEY_LENGTH",
    "san-required": "CERTSRV_E_SUBJECT_ALT_NAME_REQUIRED",
    "superseded-template": "CERTSRV_E_UNSUPPORTED_CERT_TYPE",
    "renewal-prior-signature": "CERTSRV_E_BAD_RENEWAL_CERT_ATTRIBUTE",
    "renewal-template": "CERTSRV_E_BAD_RENEWAL_CERT_ATTRIBUTE",
    "renewal-window": "CERTSRV_E_BAD_RENEWAL_CERT_ATTRIBUTE",
    "renewal-same-key": "CERTSRV_E_BAD_RENEWAL_CERT_ATTRIBUTE",
}


def denial_hresult(rule: str | None) -> str | None:
    """The HRESULT name for a policy denial by ``rule``: the rule's own refinement, else its
    category's; ``None`` when ``rule`` is not a policy rule (the error code's HRESULT)."""
    category = category_of(rule)
    if rule is None or category is None:
        return None
    return RULE_HRESULTS.get(rule, CATEGORY_HRESULTS[category])


#: Faults whose cause is the caller's credentials carry this WS-Security subcode.
FAILED_AUTHENTICATION = "o:FailedAuthentication"


def fault_for(code: ErrorCode, detail: str, *, request_id: str | None = None) -> EnrollmentFault:
    """The fault for an error code (total over :class:`ErrorCode`)."""
    soap_code, name, invalid = FAULTS[code]
    return EnrollmentFault(
        code=soap_code,
        reason=detail,
        hresult=hr.code(name),
        request_id=request_id,
        invalid_request=invalid,
        subcode=FAILED_AUTHENTICATION if code is ErrorCode.UNAUTHORIZED else None,
    )


def fault_for_exception(exc: CertgateError) -> EnrollmentFault:
    return fault_for(exc.code, exc.detail)


def fault_for_denial(denied: Denied, request_id: str | None) -> EnrollmentFault:
    """A denial: the error code's fault, with the HRESULT refined by the denying rule."""
    try:
        code = ErrorCode(denied.code)
    except ValueError:
        code = ErrorCode.POLICY_DENIED
    detail = f"{denied.rule}: {denied.detail}" if denied.rule else denied.detail
    fault = fault_for(code, detail, request_id=request_id)
    name = denial_hresult(denied.rule) if code is ErrorCode.POLICY_DENIED else None
    if name is not None:
        return EnrollmentFault(
            code=fault.code,
            reason=fault.reason,
            hresult=hr.code(name),
            request_id=request_id,
            invalid_request=True,
        )
    return fault


def http_status(fault: EnrollmentFault) -> int:
    """500 for every fault (WCF's SOAP 1.2 binding, as AD CS CES answers)."""
    del fault
    return 500
