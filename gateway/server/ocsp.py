"""``/ocsp``: the OCSP responder over HTTP (RFC 6960 Appendix A, RFC 5019 §5 and §6).

``GET /ocsp/<base64 DER>`` (RFC 5019 §5: the url-encoded base64 of the request; clients that
leave '/' and '+' unescaped, as many do, are understood, and the URL-safe alphabet too) and
``POST /ocsp`` with ``Content-Type: application/ocsp-request``. Every answer -- also to
garbage, a wrong content type or an empty body -- is HTTP 200 with an
``application/ocsp-response`` body (malformedRequest, unauthorized, tryLater...; RFC 6960
§2.3), never a 500. Served on the main listener and on the plain device listener
(:data:`gateway.server.app.DEVICE_PATHS`).

HTTP caching (RFC 5019 §6.2): a successful GET answer without a nonce carries
``Cache-Control: max-age`` up to its nextUpdate, ``ETag`` (the SHA-1 of the response),
``Last-Modified`` (producedAt) and ``Expires`` (nextUpdate); a nonce answer, a POST answer and
every error are ``no-store``. The status comes from the store on every request
(:mod:`gateway.service.ocsp`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
from datetime import datetime
from email.utils import format_datetime
from urllib.parse import unquote

from aiohttp import web

from gateway.config import Config
from gateway.config.ocsp import OCSP_PATH
from gateway.observability.metrics import activate
from gateway.pkix.ocsp import ResponseStatus
from gateway.server.wiring import Components
from gateway.service.ocsp import OcspAnswer, OcspService

__all__ = ["add_ocsp_routes"]

log = logging.getLogger("certgate.ocsp")

OCSP_SERVICE: web.AppKey[OcspService] = web.AppKey("ocsp_service", OcspService)
REQUEST_TYPE = "application/ocsp-request"
RESPONSE_TYPE = "application/ocsp-response"
_URLSAFE = bytes.maketrans(b"-_", b"+/")
_STATUS_NAMES = {
    ResponseStatus.SUCCESSFUL: "successful",
    ResponseStatus.MALFORMED_REQUEST: "malformedRequest",
    ResponseStatus.INTERNAL_ERROR: "internalError",
    ResponseStatus.TRY_LATER: "tryLater",
    ResponseStatus.SIG_REQUIRED: "sigRequired",
    ResponseStatus.UNAUTHORIZED: "unauthorized",
}


def decode_get_path(raw_path: str) -> bytes:
    """The DER request in a GET path's last part (RFC 5019 §5); ``b""`` if it is no base64."""
    encoded = raw_path.split("?", 1)[0][len(OCSP_PATH) + 1 :]
    text = "".join(unquote(encoded).split()).encode("ascii", "replace")
    text = text.translate(_URLSAFE).rstrip(b"=")
    try:
        return base64.b64decode(text + b"=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        return b""


async def ocsp_get(request: web.Request) -> web.Response:
    """``GET /ocsp/<request>``: cacheable unless the request has a nonce."""
    der = decode_get_path(request.raw_path)
    return _answer(await request.app[OCSP_SERVICE].respond(der), "GET", request)


async def ocsp_post(request: web.Request) -> web.Response:
    """``POST /ocsp``: the DER request as the body, ``application/ocsp-request``."""
    service = request.app[OCSP_SERVICE]
    if request.content_type.lower() != REQUEST_TYPE:
        return _answer(await service.respond(b""), "POST", request)
    return _answer(await service.respond(await request.read()), "POST", request)


def _http_date(when: datetime) -> str:
    return format_datetime(when, usegmt=True)


def _answer(answer: OcspAnswer, method: str, request: web.Request) -> web.Response:
    metrics = activate()
    status = _STATUS_NAMES[answer.status]
    metrics.child(metrics.ocsp_responses, method, status).inc()
    for certificate_status in answer.statuses:
        metrics.child(metrics.ocsp_statuses, certificate_status).inc()
    headers = {"Content-Type": RESPONSE_TYPE}
    cacheable = (
        method == "GET"
        and not answer.nonce
        and answer.produced_at is not None
        and answer.next_update is not None
    )
    if cacheable:
        assert answer.produced_at is not None and answer.next_update is not None
        max_age = max(0, int((answer.next_update - answer.produced_at).total_seconds()))
        headers["Cache-Control"] = f"max-age={max_age}, public, no-transform, must-revalidate"
        headers["Last-Modified"] = _http_date(answer.produced_at)
        headers["Expires"] = _http_date(answer.next_update)
        headers["ETag"] = f'"{hashlib.sha1(answer.body).hexdigest()}"'  # noqa: S324 RFC 5019 §6.2
    else:
        headers["Cache-Control"] = "no-store"
    return web.Response(body=answer.body, headers=headers)


def add_ocsp_routes(app: web.Application, config: Config, components: Components) -> None:
    """Serve ``/ocsp`` per ``[ocsp]``; switched off, it answers a 404 saying how to turn it
    on. Without a connector that signs OCSP responses (an AD CS CA has its own responder)
    every request is answered ``unauthorized`` (RFC 5019 §2.2.3), which clients understand
    as "ask another responder", and the start-up log says why."""
    if not config.ocsp.enabled:

        async def switched_off(request: web.Request) -> web.Response:
            return web.Response(
                status=404,
                text=f"the OCSP responder is switched off: set [ocsp] enabled = true in "
                f"{config.file}\n",
            )

        app.router.add_route("*", OCSP_PATH, switched_off)
        app.router.add_route("*", OCSP_PATH + "/{request:.*}", switched_off)
        return
    service = OcspService(
        components.store,
        components.connectors,
        components.clock,
        config.ocsp.response_validity,
    )
    if not service.serves_any:
        log.warning(
            "no CA connector signs OCSP responses here (an AD CS CA has its own responder): "
            "%s answers unauthorized",
            OCSP_PATH,
        )
    app[OCSP_SERVICE] = service

    async def warm(app: web.Application) -> None:
        await service.warm()

    app.on_startup.append(warm)
    for resource in (
        app.router.add_resource(OCSP_PATH),
        app.router.add_resource(OCSP_PATH + "/{request:.*}"),
    ):
        resource.add_route("GET", ocsp_get)
        resource.add_route("POST", ocsp_post)
