"""HTTP transport (RFC 8894 §4): ``/scep/<endpoint>[/anything]`` and the NDES alias
``/certsrv/mscep/mscep.dll[/pkiclient.exe]``.

The path after the endpoint is ignored (RFC 8894 §4.1: clients append ``pkiclient.exe`` or
``cgi-bin/pkiclient.exe``). PKIOperation answers are always 200 ``application/x-pki-message``;
HTTP errors are used only for transport problems: unknown endpoint (404), unknown operation or
a body that is not a pkiMessage that could be answered (400), a method other than GET/POST
(405), and the gateway's own database outage (503 + Retry-After, never a CertRep FAILURE,
which would be final). Over-long GET URLs are refused by the HTTP server with 414/400
before reaching here: such clients must use POST (advertised as POSTPKIOperation).
"""

from __future__ import annotations

import logging

from aiohttp import web
from cryptography.hazmat.primitives import serialization

from gateway.errors import StoreUnavailable
from gateway.pkix import cms
from gateway.pkix.certsonly import certs_only_der
from protocols.scep.config import Endpoint
from protocols.scep.messages import TransportError, caps_text, decode_get_message
from protocols.scep.pkioperation import pki_operation
from protocols.scep.state import Scep

log = logging.getLogger("certgate.scep")

SCEP: web.AppKey[Scep] = web.AppKey("scep", Scep)
PKI_MESSAGE = "application/x-pki-message"


def add_routes(app: web.Application, scep: Scep) -> None:
    """Register the SCEP routes on ``app``."""
    app[SCEP] = scep
    for path in ("/scep/{endpoint}", "/scep/{endpoint}/{tail:.*}"):
        app.router.add_route("*", path, _named)
    for path in ("/certsrv/mscep/mscep.dll", "/certsrv/mscep/mscep.dll/{tail:.*}"):
        app.router.add_route("*", path, _ndes)


def _text(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text + "\n", content_type="text/plain")


async def _named(request: web.Request) -> web.StreamResponse:
    scep = request.app[SCEP]
    endpoint = scep.endpoint(request.match_info["endpoint"])
    if endpoint is None:
        return _text(404, "no such SCEP endpoint")
    return await _dispatch(request, scep, endpoint)


async def _ndes(request: web.Request) -> web.StreamResponse:
    scep = request.app[SCEP]
    endpoint = scep.endpoint(scep.settings.ndes_alias or "")
    if endpoint is None:
        return _text(404, "no SCEP endpoint behind the NDES alias")
    return await _dispatch(request, scep, endpoint)


def _operation(raw_query: str) -> str | None:
    for part in raw_query.split("&"):
        name, _, value = part.partition("=")
        if name == "operation":
            return value
    return None


async def _dispatch(request: web.Request, scep: Scep, endpoint: Endpoint) -> web.StreamResponse:
    if request.method not in ("GET", "POST"):
        return _text(405, "SCEP uses GET and POST")
    raw_query = request.raw_path.partition("?")[2]
    operation = _operation(raw_query)
    if request.method == "POST" and operation in (None, "", "PKIOperation"):
        # RFC 8894 §4.3: on POST the only operation is PKIOperation, so tolerate its absence.
        body = await request.read()
        return await _pki_operation(scep, endpoint, body)
    if operation == "PKIOperation":
        try:
            body = decode_get_message(raw_query)
        except TransportError as exc:
            return _text(400, str(exc))
        return await _pki_operation(scep, endpoint, body)
    if operation == "GetCACaps":
        return web.Response(text=caps_text(endpoint.capabilities), content_type="text/plain")
    if operation == "GetCACert":
        return _ca_cert(scep, endpoint)
    if operation == "GetNextCACert" and "GetNextCACert" in endpoint.capabilities:
        return _next_ca_cert(scep)
    return _text(400, f"unsupported SCEP operation {operation!r}")


async def _pki_operation(scep: Scep, endpoint: Endpoint, body: bytes) -> web.Response:
    try:
        reply = await pki_operation(scep, endpoint, body)
    except TransportError as exc:
        return _text(400, str(exc))
    except StoreUnavailable as exc:
        # Not a CertRep FAILURE (final for the client): an HTTP error, which SCEP clients
        # (certmonger, sscep, micromdm) treat as "CA unreachable" and retry later.
        response = _text(503, exc.detail)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    return web.Response(body=reply, content_type=PKI_MESSAGE)


def _ca_cert(scep: Scep, endpoint: Endpoint) -> web.Response:
    """GetCACert (RFC 8894 §4.2.1): one DER certificate, or a degenerate certs-only SignedData
    with the endpoint's RA certificate(s) and the CA chain (``x-x509-ca-ra-cert``)."""
    certs = scep.published_for(endpoint)
    if len(certs) == 1:
        return web.Response(
            body=certs[0].public_bytes(serialization.Encoding.DER),
            content_type="application/x-x509-ca-cert",
        )
    return web.Response(body=certs_only_der(certs), content_type="application/x-x509-ca-ra-cert")


def _next_ca_cert(scep: Scep) -> web.Response:
    """GetNextCACert (RFC 8894 §4.7.1): the successor CA (and RA) certificates as a degenerate
    SignedData, itself signed by the current RA key, which chains to the current CA."""
    inner = certs_only_der(scep.next_ca)
    signed = cms.sign(inner, scep.ra.certificate, scep.ra.key, certificates=scep.ra.ca_chain)
    return web.Response(body=signed, content_type="application/x-x509-next-ca-cert")
