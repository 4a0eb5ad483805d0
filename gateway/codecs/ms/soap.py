"""SOAP 1.2 envelopes with WS-Addressing and WS-Security UsernameToken headers, parsed safely.

Pure bytes -> objects -> bytes, shared by the MS-WSTEP (:mod:`gateway.codecs.ms.wstrust`)
and MS-XCEP (:mod:`gateway.codecs.ms.xcep`) codecs.

* SOAP 1.2 part 1 §5: ``Envelope`` = optional ``Header`` + ``Body``.
* WS-Addressing 1.0 SOAP binding §2: ``Action`` (mustUnderstand), ``MessageID``, ``To``,
  ``RelatesTo``; replies are anonymous.
* WS-Security UsernameToken profile 1.0 §4: ``wsse:Security/UsernameToken`` with a
  ``PasswordText`` password (the CES ``UsernamePassword`` endpoints, over HTTPS only).

Parsing goes through :mod:`defusedxml`: a DTD, an entity declaration or an external reference
is refused outright (:class:`gateway.errors.BadRequest`), so entity expansion cannot happen.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from xml.etree.ElementTree import Element, ParseError
from xml.sax.saxutils import escape

import defusedxml.ElementTree as safe_et
from defusedxml import DefusedXmlException

from gateway.errors import BadRequest

SOAP = "http://www.w3.org/2003/05/soap-envelope"
WSA = "http://www.w3.org/2005/08/addressing"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
ANONYMOUS = f"{WSA}/anonymous"
_USERNAME_PROFILE = (
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0"
)
PASSWORD_TEXT = f"{_USERNAME_PROFILE}#PasswordText"
SOAP_CONTENT_TYPE = "application/soap+xml; charset=utf-8"


def q(ns: str, local: str) -> str:
    """ElementTree's ``{namespace}local`` spelling."""
    return f"{{{ns}}}{local}"


# -- envelope ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Envelope:
    """A parsed SOAP 1.2 envelope (SOAP 1.2 part 1 §5) with its WS-Addressing headers
    (WS-Addressing 1.0 SOAP binding §2) and an optional WS-Security UsernameToken."""

    action: str
    message_id: str | None
    to: str | None
    relates_to: str | None
    body: Element
    username: str | None = None
    password: str | None = field(default=None, repr=False)


def parse_xml(data: bytes) -> Element:
    """Parse XML with DTDs, entity declarations and external references forbidden."""
    try:
        root = safe_et.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise BadRequest(f"forbidden XML construct: {type(exc).__name__}") from None
    except (ParseError, ValueError, UnicodeError) as exc:
        raise BadRequest(f"malformed XML: {str(exc)[:120]}") from None
    if not isinstance(root, Element):  # pragma: no cover - defusedxml returns Elements
        raise BadRequest("malformed XML")
    return root


def parse_envelope(data: bytes) -> Envelope:
    """Parse a SOAP 1.2 envelope; :class:`BadRequest` for anything else (incl. SOAP 1.1)."""
    root = parse_xml(data)
    if root.tag != q(SOAP, "Envelope"):
        raise BadRequest("not a SOAP 1.2 envelope")
    header = root.find(q(SOAP, "Header"))
    body = root.find(q(SOAP, "Body"))
    if body is None or len(body) != 1:
        raise BadRequest("the SOAP body must hold exactly one element")
    action = message_id = to = relates_to = username = password = None
    if header is not None:
        action = text_of(header.find(q(WSA, "Action")))
        message_id = text_of(header.find(q(WSA, "MessageID")))
        to = text_of(header.find(q(WSA, "To")))
        relates_to = text_of(header.find(q(WSA, "RelatesTo")))
        token = header.find(f"{q(WSSE, 'Security')}/{q(WSSE, 'UsernameToken')}")
        if token is not None:
            username = text_of(token.find(q(WSSE, "Username")))
            pw = token.find(q(WSSE, "Password"))
            if pw is not None and pw.get("Type", PASSWORD_TEXT) != PASSWORD_TEXT:
                raise BadRequest("only the PasswordText UsernameToken is supported")
            # Not stripped: a password may start or end with a space.
            password = (pw.text or "") if pw is not None else None
    return Envelope(
        action=action or "",
        message_id=message_id,
        to=to,
        relates_to=relates_to,
        body=body[0],
        username=username,
        password=password,
    )


def text_of(element: Element | None) -> str | None:
    """An element's text without surrounding whitespace; ``None`` for a missing element."""
    if element is None:
        return None
    return (element.text or "").strip()


def is_nil(element: Element) -> bool:
    """True for ``xsi:nil="true"`` (XML Schema part 1 §2.6.2)."""
    return element.get(q(XSI, "nil")) in {"true", "1"}


def build_envelope(
    action: str,
    body: str,
    *,
    message_id: str | None = None,
    to: str | None = None,
    relates_to: str | None = None,
    username: str | None = None,
    password: str | None = None,
    now: datetime | None = None,
) -> bytes:
    """Serialize a SOAP 1.2 envelope around ``body`` (already serialized XML)."""
    parts = [
        f'<s:Envelope xmlns:s="{SOAP}" xmlns:a="{WSA}" xmlns:u="{WSU}" xmlns:o="{WSSE}"><s:Header>',
        f'<a:Action s:mustUnderstand="1">{escape(action)}</a:Action>',
    ]
    if relates_to is not None:
        parts.append(f"<a:RelatesTo>{escape(relates_to)}</a:RelatesTo>")
    if message_id is not None:
        parts.append(f"<a:MessageID>{escape(message_id)}</a:MessageID>")
        parts.append(f"<a:ReplyTo><a:Address>{ANONYMOUS}</a:Address></a:ReplyTo>")
    if to is not None:
        parts.append(f'<a:To s:mustUnderstand="1">{escape(to)}</a:To>')
    if username is not None:
        created = (now or datetime.now(UTC)).replace(microsecond=0)
        expires = created + timedelta(minutes=5)
        parts.append(
            f'<o:Security s:mustUnderstand="1" xmlns:o="{WSSE}">'
            f'<u:Timestamp u:Id="_0"><u:Created>{_iso(created)}</u:Created>'
            f"<u:Expires>{_iso(expires)}</u:Expires></u:Timestamp>"
            f"<o:UsernameToken><o:Username>{escape(username)}</o:Username>"
            f'<o:Password Type="{PASSWORD_TEXT}">{escape(password or "")}</o:Password>'
            "</o:UsernameToken></o:Security>"
        )
    parts.append(f"</s:Header><s:Body>{body}</s:Body></s:Envelope>")
    return "".join(parts).encode("utf-8")


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
