"""HRESULTs that AD CS and CES put into enrollment faults, by name (winerror.h values).

The CES connector decodes a fault's ``ErrorCode`` into ``NAME (0x8009....): message`` for
the denial it records; the CES front-end picks the code Windows clients understand for each
certgate error. Names and values are those of the Windows SDK's ``shared/winerror.h``
(checked against the 10.0.22621 header: the ``CERTSRV_E_*`` codes 0x80094001..0x80094821 of
FACILITY_SECURITY (9), ``CRYPT_E_ASN1_*`` 0x8009310x, the generic ``E_*`` codes, and
``RPC_S_SERVER_UNAVAILABLE`` = HRESULT_FROM_WIN32(1722)); the messages are certgate's short
paraphrases. MS-WSTEP §3.1.4.1.2.x carries them as signed 32-bit decimals (``ErrorCode``).
"""

from __future__ import annotations

from typing import NamedTuple


class HResult(NamedTuple):
    value: int
    name: str
    message: str


_TABLE = (
    HResult(0x80004005, "E_FAIL", "unspecified failure"),
    HResult(0x8000FFFF, "E_UNEXPECTED", "unexpected failure"),
    HResult(0x80070005, "E_ACCESSDENIED", "access denied"),
    HResult(0x80070057, "E_INVALIDARG", "the request is invalid"),
    HResult(0x800706BA, "RPC_S_SERVER_UNAVAILABLE", "the certification authority is unavailable"),
    HResult(0x80093102, "CRYPT_E_ASN1_EOD", "ASN.1 unexpected end of data"),
    HResult(0x8009310B, "CRYPT_E_ASN1_BADTAG", "ASN.1 bad tag value met"),
    HResult(0x80094001, "CERTSRV_E_BAD_REQUESTSUBJECT", "the request subject name is invalid"),
    HResult(0x80094002, "CERTSRV_E_NO_REQUEST", "the request does not exist"),
    HResult(0x80094003, "CERTSRV_E_BAD_REQUESTSTATUS", "the request's status forbids this"),
    HResult(0x80094006, "CERTSRV_E_SERVER_SUSPENDED", "the server is suspended"),
    HResult(0x80094009, "CERTSRV_E_RESTRICTEDOFFICER", "the requester is a restricted officer"),
    HResult(0x8009400E, "CERTSRV_E_BAD_RENEWAL_CERT_ATTRIBUTE", "bad renewal certificate"),
    HResult(0x80094011, "CERTSRV_E_ENROLL_DENIED", "the enrollment was denied"),
    HResult(0x80094012, "CERTSRV_E_TEMPLATE_DENIED", "no enroll permission on the template"),
    HResult(0x80094800, "CERTSRV_E_UNSUPPORTED_CERT_TYPE", "the template is not supported"),
    HResult(0x80094801, "CERTSRV_E_NO_CERT_TYPE", "the request names no template"),
    HResult(0x80094802, "CERTSRV_E_TEMPLATE_CONFLICT", "conflicting template information"),
    HResult(0x80094803, "CERTSRV_E_SUBJECT_ALT_NAME_REQUIRED", "a subject alt name is required"),
    HResult(0x80094806, "CERTSRV_E_BAD_RENEWAL_SUBJECT", "the renewal subject differs"),
    HResult(0x80094807, "CERTSRV_E_BAD_TEMPLATE_VERSION", "the template version is out of date"),
    HResult(0x80094811, "CERTSRV_E_KEY_LENGTH", "the key does not meet the template's policy"),
    HResult(0x8009481E, "CERTSRV_E_INVALID_REQUESTID", "the request ID is not valid"),
)

BY_VALUE: dict[int, HResult] = {h.value: h for h in _TABLE}
BY_NAME: dict[str, HResult] = {h.name: h for h in _TABLE}


def code(name: str) -> int:
    """The value of a named HRESULT (``KeyError`` for a name not in the table)."""
    return BY_NAME[name].value


def describe(value: int) -> str:
    """``NAME (0x80094011): message`` for known codes, ``HRESULT 0x........`` otherwise."""
    value &= 0xFFFFFFFF
    known = BY_VALUE.get(value)
    if known is None:
        return f"HRESULT 0x{value:08X}"
    return f"{known.name} (0x{value:08X}): {known.message}"
