"""The one total mapping from :class:`gateway.errors.ErrorCode` to SCEP failInfo.

RFC 8894 §3.2.1.4 has five failInfo values; everything that is "not permitted" is badRequest
(the catch-all), a lookup that finds nothing is badCertId. Detail texts go into failInfoText
(RFC 8894 §3.2.1, Table 2) only where they reveal nothing about secrets.
"""

from __future__ import annotations

from types import MappingProxyType

from gateway.errors import ErrorCode
from protocols.scep.messages import FailInfo

FAIL_INFO: MappingProxyType[ErrorCode, FailInfo] = MappingProxyType(
    {
        ErrorCode.BAD_REQUEST: FailInfo.BAD_REQUEST,
        ErrorCode.BAD_CSR: FailInfo.BAD_REQUEST,
        ErrorCode.UNKNOWN_TEMPLATE: FailInfo.BAD_REQUEST,
        ErrorCode.UNAUTHORIZED: FailInfo.BAD_REQUEST,
        ErrorCode.POLICY_DENIED: FailInfo.BAD_REQUEST,
        ErrorCode.NOT_FOUND: FailInfo.BAD_CERT_ID,
        ErrorCode.CONFLICT: FailInfo.BAD_REQUEST,
        ErrorCode.CA_DENIED: FailInfo.BAD_REQUEST,
        ErrorCode.CA_UNAVAILABLE: FailInfo.BAD_REQUEST,
        ErrorCode.CONNECTOR_ERROR: FailInfo.BAD_REQUEST,
        ErrorCode.INTERNAL: FailInfo.BAD_REQUEST,
    }
)

#: Texts for codes whose detail could help an attacker or leak internals.
_GENERIC = {
    ErrorCode.UNAUTHORIZED: "not authorized",
    ErrorCode.INTERNAL: "internal error",
    ErrorCode.CONNECTOR_ERROR: "the CA could not process the request",
}


def fail_info(code: str) -> FailInfo:
    """failInfo for an error code string (``Denied.code``); unknown codes are badRequest."""
    try:
        return FAIL_INFO[ErrorCode(code)]
    except ValueError:
        return FailInfo.BAD_REQUEST


def fail_text(code: str, detail: str) -> str:
    """failInfoText for a code: the detail, or a generic text for sensitive codes."""
    try:
        return _GENERIC.get(ErrorCode(code), detail)[:512]
    except ValueError:
        return "denied"
