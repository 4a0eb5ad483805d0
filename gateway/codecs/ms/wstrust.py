"""MS-WSTEP wire codec: SOAP 1.2 envelopes carrying WS-Trust RequestSecurityToken messages.

Pure bytes -> objects -> bytes, no I/O. Both the CES front-end (``protocols.wstep``) and the CES
connector (``backends.ms_ces``) use it, so neither imports the other.

* MS-WSTEP §3.1.4.1: one operation, ``RequestSecurityToken2`` (input ``wst:RequestSecurityToken``,
  output ``wst:RequestSecurityTokenResponseCollection``), SOAP action :data:`ACTION_RST`.
* MS-WSTEP §3.1.4.2.1.1: request type ``Issue`` carries a new request or a renewal (a CMS
  SignedData wrapping the PKCS#10); ``QueryTokenStatus`` asks about a pending ``RequestID``.
* MS-WSTEP §3.1.4.1.3.2 (``wst:RequestedSecurityTokenType``, as clarified by the 2021-09-21
  errata) and §4: an issued response carries the end-entity certificate in
  ``RequestedSecurityToken/BinarySecurityToken`` and the issuer chain as a PKCS#7 in the outer
  ``BinarySecurityToken``; a pending response carries, in the same place, a
  ``wsse:SecurityTokenReference/wsse:Reference`` whose ``URI`` is where the client polls, with
  the ``RequestID`` and the disposition message (``Taken Under Submission``).
* MS-WSTEP §3.1.4.1.2.4 / §3.1.4.2.1.2: the ``RequestID`` is the CA's request identifier; AD CS
  sends its database row id, a positive 32-bit number, and clients (cepces) parse it as one.
  The codec keeps it a string (a number, or another CA's opaque id) so either side decides.
* MS-WSTEP §3.1.4.1.3.x: errors are SOAP 1.2 faults (SOAP 1.2 part 1 §5.4) whose
  ``Detail/CertificateEnrollmentWSDetail`` holds the HRESULT as a signed 32-bit decimal.

Envelopes, WS-Addressing, the UsernameToken and safe XML parsing are in
:mod:`gateway.codecs.ms.soap` (re-exported here).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from xml.etree.ElementTree import Element
from xml.sax.saxutils import escape, quoteattr

from gateway.codecs.ms.soap import (
    ANONYMOUS,
    PASSWORD_TEXT,
    SOAP,
    SOAP_CONTENT_TYPE,
    WSA,
    WSSE,
    WSU,
    XSI,
    Envelope,
    build_envelope,
    is_nil,
    parse_envelope,
    parse_xml,
    q,
    text_of,
)
from gateway.errors import BadRequest

WST = "http://docs.oasis-open.org/ws-sx/ws-trust/200512"
WSTEP = "http://schemas.microsoft.com/windows/pki/2009/01/enrollment"
AUTH = "http://schemas.xmlsoap.org/ws/2006/12/authorization"

ACTION_RST = f"{WSTEP}/RST/wstep"
ACTION_RSTRC = f"{WSTEP}/RSTRC/wstep"
ACTION_FAULT = f"{WSTEP}/RequestSecurityTokenCertificateEnrollmentWSDetailFault"
#: WCF's own faults (no enrollment detail) and WS-Addressing faults.
ACTION_WCF_FAULT = (
    "http://schemas.microsoft.com/net/2005/12/windowscommunicationfoundation/dispatcher/fault"
)
ACTION_ADDRESSING_FAULT = f"{WSA}/soap/fault"

TOKEN_X509 = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3"  # noqa: S105 (a URI, not a secret)
REQUEST_ISSUE = f"{WST}/Issue"
REQUEST_QUERY = f"{WSTEP}/QueryTokenStatus"
VALUE_PKCS10 = f"{WSTEP}#PKCS10"
VALUE_PKCS7 = f"{WSTEP}#PKCS7"
VALUE_CMC = f"{WSTEP}#CMC"
#: The ValueType Microsoft's own samples use for the outer PKCS#7 (and, mislabelled, for PKCS#10).
VALUE_PKCS7_SECEXT = f"{WSSE}#PKCS7"
ENCODING_BASE64 = f"{WSSE}#base64binary"


#: Largest base64 token accepted (a CSR or CMS renewal request is a few KiB).
MAX_TOKEN_CHARS = 64 * 1024


# -- RequestSecurityToken (MS-WSTEP §3.1.4.1.2.1) -------------------------------------------


@dataclass(frozen=True)
class TokenRequest:
    """A ``wst:RequestSecurityToken``: ``Issue`` with a token, or ``QueryTokenStatus`` with a
    ``RequestID``. ``context`` is ``auth:AdditionalContext`` (name -> value), e.g.
    ``CertificateTemplate``."""

    request_type: str
    token: bytes | None = None
    value_type: str | None = None
    context: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    request_id: str | None = None

    @property
    def is_query(self) -> bool:
        return self.request_type == REQUEST_QUERY


def build_request_body(request: TokenRequest) -> str:
    """Serialize the ``RequestSecurityToken`` body element."""
    parts = [
        f'<RequestSecurityToken xmlns="{WST}" xmlns:xsi="{XSI}">',
        f"<TokenType>{TOKEN_X509}</TokenType>",
        f"<RequestType>{escape(request.request_type)}</RequestType>",
    ]
    if request.token is not None:
        parts.append(
            f'<BinarySecurityToken xmlns="{WSSE}" '
            f"ValueType={quoteattr(request.value_type or VALUE_PKCS10)} "
            f'EncodingType="{ENCODING_BASE64}">{_b64(request.token)}</BinarySecurityToken>'
        )
    if request.context:
        parts.append(f'<AdditionalContext xmlns="{AUTH}">')
        for name, value in request.context.items():
            parts.append(
                f"<ContextItem Name={quoteattr(name)}><Value>{escape(value)}</Value></ContextItem>"
            )
        parts.append("</AdditionalContext>")
    if request.request_id is None:
        parts.append(f'<RequestID xmlns="{WSTEP}" xsi:nil="true"/>')
    else:
        parts.append(f'<RequestID xmlns="{WSTEP}">{escape(request.request_id)}</RequestID>')
    parts.append("</RequestSecurityToken>")
    return "".join(parts)


def parse_request(envelope: Envelope) -> TokenRequest:
    """Read a ``RequestSecurityToken`` body (MS-WSTEP §3.1.4.1.2.1); :class:`BadRequest` for
    a wrong element, an unknown request type, a missing token on Issue or bad base64."""
    rst = envelope.body
    if rst.tag != q(WST, "RequestSecurityToken"):
        raise BadRequest("the body is not a wst:RequestSecurityToken")
    request_type = text_of(rst.find(q(WST, "RequestType"))) or ""
    if request_type not in {REQUEST_ISSUE, REQUEST_QUERY}:
        raise BadRequest(f"unsupported RequestType {request_type[:100]!r}")
    token = value_type = None
    bst = rst.find(q(WSSE, "BinarySecurityToken"))
    if bst is not None:
        token = _unb64(bst.text or "", "BinarySecurityToken")
        value_type = bst.get("ValueType")
    context: dict[str, str] = {}
    for item in rst.findall(f"{q(AUTH, 'AdditionalContext')}/{q(AUTH, 'ContextItem')}"):
        name = item.get("Name")
        if name:
            context[name] = text_of(item.find(q(AUTH, "Value"))) or ""
    request_id = None
    rid = rst.find(q(WSTEP, "RequestID"))
    if rid is not None and not is_nil(rid):
        request_id = text_of(rid) or None
    if request_type == REQUEST_ISSUE and not token:
        raise BadRequest("an Issue request needs a BinarySecurityToken")
    if request_type == REQUEST_QUERY and not request_id:
        raise BadRequest("a QueryTokenStatus request needs a RequestID")
    return TokenRequest(request_type, token, value_type, MappingProxyType(context), request_id)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str, what: str) -> bytes:
    compact = "".join(text.split())
    if len(compact) > MAX_TOKEN_CHARS:
        raise BadRequest(f"{what} is too large")
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(f"{what} is not valid base64") from None


# -- RequestSecurityTokenResponseCollection (MS-WSTEP §3.1.4.1.2.2) -------------------------


@dataclass(frozen=True)
class TokenResponse:
    """One ``RequestSecurityTokenResponse``. ``certificate`` (DER) is present only when
    issued; ``pkcs7`` is the outer ``BinarySecurityToken`` (the CA's PKCS#7 with the chain);
    ``reference`` is the ``SecurityTokenReference/Reference/@URI`` of a pending answer, the
    endpoint a client sends its ``QueryTokenStatus`` to (MS-WSTEP §3.1.4.1.3.2).
    ``request_id`` is the wire text of ``wstep:RequestID`` (AD CS: a decimal number)."""

    request_id: str
    disposition_message: str
    certificate: bytes | None = None
    pkcs7: bytes | None = None
    reference: str | None = None

    @property
    def issued(self) -> bool:
        return self.certificate is not None


def build_response(response: TokenResponse, *, relates_to: str | None) -> bytes:
    """Serialize an issued or pending response envelope (action :data:`ACTION_RSTRC`).

    Element order as in MS-WSTEP §4: TokenType, DispositionMessage, the outer
    BinarySecurityToken, RequestedSecurityToken (the certificate, or for a pending request the
    SecurityTokenReference to poll), RequestID."""
    parts = [
        f'<RequestSecurityTokenResponseCollection xmlns="{WST}"><RequestSecurityTokenResponse>',
        f"<TokenType>{TOKEN_X509}</TokenType>",
        f'<DispositionMessage xml:lang="en-US" xmlns="{WSTEP}">'
        f"{escape(response.disposition_message)}</DispositionMessage>",
    ]
    if response.pkcs7 is not None:
        parts.append(
            f'<BinarySecurityToken ValueType="{VALUE_PKCS7_SECEXT}" '
            f'EncodingType="{ENCODING_BASE64}" xmlns="{WSSE}">{_b64(response.pkcs7)}'
            "</BinarySecurityToken>"
        )
    if response.certificate is not None:
        parts.append(
            f'<RequestedSecurityToken><BinarySecurityToken ValueType="{TOKEN_X509}" '
            f'EncodingType="{ENCODING_BASE64}" xmlns="{WSSE}">{_b64(response.certificate)}'
            "</BinarySecurityToken></RequestedSecurityToken>"
        )
    elif response.reference is not None:
        parts.append(
            f'<RequestedSecurityToken><SecurityTokenReference xmlns="{WSSE}">'
            f"<Reference URI={quoteattr(response.reference)}/>"
            "</SecurityTokenReference></RequestedSecurityToken>"
        )
    parts.append(f'<RequestID xmlns="{WSTEP}">{escape(response.request_id)}</RequestID>')
    parts.append("</RequestSecurityTokenResponse></RequestSecurityTokenResponseCollection>")
    return build_envelope(ACTION_RSTRC, "".join(parts), relates_to=relates_to)


def parse_response_body(body: Element) -> TokenResponse:
    """Read an RSTR collection (or a bare RSTR); :class:`BadRequest` if malformed."""
    if body.tag == q(WST, "RequestSecurityTokenResponseCollection"):
        rstr = body.find(q(WST, "RequestSecurityTokenResponse"))
    elif body.tag == q(WST, "RequestSecurityTokenResponse"):
        rstr = body
    else:
        raise BadRequest(f"unexpected response element {body.tag[:120]}")
    if rstr is None:
        raise BadRequest("empty RequestSecurityTokenResponseCollection")
    request_id = text_of(rstr.find(q(WSTEP, "RequestID"))) or ""
    message = text_of(rstr.find(q(WSTEP, "DispositionMessage"))) or ""
    pkcs7 = None
    outer = rstr.find(q(WSSE, "BinarySecurityToken"))
    if outer is not None and (outer.text or "").strip():
        pkcs7 = _unb64(outer.text or "", "BinarySecurityToken")
    certificate = reference = None
    requested = rstr.find(q(WST, "RequestedSecurityToken"))
    if requested is not None:
        inner = requested.find(q(WSSE, "BinarySecurityToken"))
        if inner is not None and (inner.text or "").strip():
            certificate = _unb64(inner.text or "", "RequestedSecurityToken")
        ref = requested.find(f"{q(WSSE, 'SecurityTokenReference')}/{q(WSSE, 'Reference')}")
        if ref is not None:
            reference = (ref.get("URI") or "").strip() or None
    return TokenResponse(request_id, message, certificate, pkcs7, reference)


# -- faults (SOAP 1.2 part 1 §5.4, MS-WSTEP CertificateEnrollmentWSDetail) ---------------


@dataclass(frozen=True)
class EnrollmentFault:
    """A SOAP fault. ``hresult`` (signed int32) and ``request_id`` come from
    ``CertificateEnrollmentWSDetail`` when present; WCF and WS-Addressing faults have none and
    name their cause in ``subcode``. ``code`` is ``Sender`` or ``Receiver``."""

    code: str
    reason: str
    hresult: int | None = None
    request_id: str | None = None
    invalid_request: bool = False
    binary_response: bytes | None = None
    subcode: str | None = None
    action: str = ACTION_FAULT


def hresult_to_int32(value: int) -> int:
    """0x80094011 -> -2146875375 (the XML carries HRESULTs as signed decimals)."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def build_fault(fault: EnrollmentFault, *, relates_to: str | None) -> bytes:
    """Serialize a SOAP 1.2 fault; with an ``hresult``, include the enrollment detail."""
    parts = [f"<s:Fault><s:Code><s:Value>s:{fault.code}</s:Value>"]
    if fault.subcode:
        parts.append(f"<s:Subcode><s:Value>{escape(fault.subcode)}</s:Value></s:Subcode>")
    parts.append(
        f'</s:Code><s:Reason><s:Text xml:lang="en-US">{escape(fault.reason)}</s:Text></s:Reason>'
    )
    if fault.hresult is not None:
        binary = (
            f"<BinaryResponse>{_b64(fault.binary_response)}</BinaryResponse>"
            if fault.binary_response is not None
            else '<BinaryResponse xsi:nil="true"/>'
        )
        rid = (
            f"<RequestID>{escape(fault.request_id)}</RequestID>"
            if fault.request_id
            else '<RequestID xsi:nil="true"/>'
        )
        parts.append(
            f'<s:Detail><CertificateEnrollmentWSDetail xmlns="{WSTEP}" xmlns:xsi="{XSI}">'
            f"{binary}<ErrorCode>{hresult_to_int32(fault.hresult)}</ErrorCode>"
            f"<InvalidRequest>{'true' if fault.invalid_request else 'false'}</InvalidRequest>"
            f"{rid}</CertificateEnrollmentWSDetail></s:Detail>"
        )
    parts.append("</s:Fault>")
    return build_envelope(fault.action, "".join(parts), relates_to=relates_to)


def parse_fault_body(body: Element, action: str) -> EnrollmentFault:
    """Read an ``s:Fault`` element."""
    if body.tag != q(SOAP, "Fault"):
        raise BadRequest("not a SOAP fault")
    code = (text_of(body.find(f"{q(SOAP, 'Code')}/{q(SOAP, 'Value')}")) or "").rpartition(":")[2]
    subcode = text_of(body.find(f"{q(SOAP, 'Code')}/{q(SOAP, 'Subcode')}/{q(SOAP, 'Value')}"))
    reason = text_of(body.find(f"{q(SOAP, 'Reason')}/{q(SOAP, 'Text')}")) or ""
    detail = body.find(f"{q(SOAP, 'Detail')}/{q(WSTEP, 'CertificateEnrollmentWSDetail')}")
    hresult = request_id = binary = None
    invalid = False
    if detail is not None:
        error_code = text_of(detail.find(q(WSTEP, "ErrorCode")))
        if error_code:
            try:
                hresult = int(error_code) & 0xFFFFFFFF
            except ValueError:
                raise BadRequest("ErrorCode is not an integer") from None
        rid = detail.find(q(WSTEP, "RequestID"))
        if rid is not None and not is_nil(rid):
            request_id = text_of(rid) or None
        invalid = (text_of(detail.find(q(WSTEP, "InvalidRequest"))) or "").lower() in {"true", "1"}
        br = detail.find(q(WSTEP, "BinaryResponse"))
        if br is not None and not is_nil(br) and (br.text or "").strip():
            binary = _unb64(br.text or "", "BinaryResponse")
    return EnrollmentFault(
        code=code or "Receiver",
        reason=reason,
        hresult=hresult,
        request_id=request_id,
        invalid_request=invalid,
        binary_response=binary,
        subcode=subcode,
        action=action,
    )


def parse_reply(data: bytes) -> TokenResponse | EnrollmentFault:
    """Parse what a CES server answered: a token response or a fault."""
    envelope = parse_envelope(data)
    if envelope.body.tag == q(SOAP, "Fault"):
        return parse_fault_body(envelope.body, envelope.action)
    return parse_response_body(envelope.body)


__all__ = [
    "ANONYMOUS",
    "PASSWORD_TEXT",
    "SOAP",
    "SOAP_CONTENT_TYPE",
    "WSA",
    "WSSE",
    "WSU",
    "XSI",
    "Envelope",
    "build_envelope",
    "parse_envelope",
    "parse_xml",
    "q",
]
