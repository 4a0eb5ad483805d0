"""SOAP 1.2 over HTTP for the CEP and CES endpoints (SOAP 1.2 part 2 §7): read a bounded
request body in bounded time, answer with ``application/soap+xml``.

Hostile input never reaches the parser unbounded: a body larger than ``max_body_bytes`` or one
that trickles in slower than ``read_timeout`` is refused with a fault, and the XML itself is
parsed with DTDs and entities forbidden (:func:`gateway.codecs.ms.wstrust.parse_xml`).
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from gateway.codecs.ms.wstrust import (
    SOAP_CONTENT_TYPE,
    EnrollmentFault,
    Envelope,
    build_fault,
    parse_envelope,
)
from gateway.errors import BadRequest, ErrorCode
from protocols.wstep.errors import fault_for, http_status
from protocols.wstep.settings import WSTEPSettings


class SOAPFault(Exception):
    """Raised inside a handler to answer with ``fault`` (and optionally another HTTP status)."""

    def __init__(self, fault: EnrollmentFault, status: int | None = None) -> None:
        super().__init__(fault.reason)
        self.fault = fault
        self.status = status if status is not None else http_status(fault)


def bad_request(detail: str, status: int | None = None) -> SOAPFault:
    """A ``Sender`` fault for malformed input: HTTP 500 like every CES fault, except the
    transport-level refusals (415 media type, 413 too large, 408 too slow), which keep the
    status WCF/IIS also answers them with."""
    return SOAPFault(fault_for(ErrorCode.BAD_REQUEST, detail), status)


async def read_envelope(request: web.Request, settings: WSTEPSettings) -> Envelope:
    """The request's SOAP 1.2 envelope, or :class:`SOAPFault`."""
    media = request.content_type.lower()
    if media != "application/soap+xml":
        raise bad_request(f"expected Content-Type {SOAP_CONTENT_TYPE} (SOAP 1.2)", 415)
    length = request.content_length
    if length is not None and length > settings.max_body_bytes:
        raise bad_request(f"request body larger than {settings.max_body_bytes} bytes", 413)
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(settings.read_timeout):
            while True:
                chunk = await request.content.readany()
                if not chunk:
                    break
                size += len(chunk)
                if size > settings.max_body_bytes:
                    raise bad_request(
                        f"request body larger than {settings.max_body_bytes} bytes", 413
                    )
                chunks.append(chunk)
    except TimeoutError:
        raise bad_request("the request body did not arrive in time", 408) from None
    try:
        return parse_envelope(b"".join(chunks))
    except BadRequest as exc:
        raise bad_request(exc.detail) from None


def soap_response(body: bytes, status: int = 200) -> web.Response:
    return web.Response(
        body=body, status=status, content_type="application/soap+xml", charset="utf-8"
    )


def fault_response(error: SOAPFault, relates_to: str | None) -> web.Response:
    return soap_response(build_fault(error.fault, relates_to=relates_to), error.status)
