"""EST URL space (RFC 7030 §3.2.2): ``/.well-known/est/[<label>/]<operation>``.

One dispatcher resolves the label (unknown -> 404), the operation (unknown -> 404, ``fullcmc``
-> 501), the method (-> 405) and the transport, then calls the operation's handler. Every
error is rendered here in EST terms (:mod:`protocols.est.render`); nothing reaches the app's
500 shield.

EST is served only over TLS: on the gateway's plain-HTTP listener these paths answer 403 with a
reason, except for peers listed in ``[est] trusted_proxies`` (a TLS-terminating proxy forwarding
the client certificate in ``[est] client_cert_header``).

Conversely the EST listener serves only EST (and the health checks): its handshake accepts any
client certificate and only EST verifies it per label (:mod:`protocols.est.tls_request`), so
another front-end's routes, which may take a TLS client certificate as already verified, must
not be reachable through it (:func:`est_listener_only`).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Handler as AioHandler
from aiohttp.typedefs import Middleware

from gateway.errors import CertgateError, ErrorCode
from gateway.observability.events import protocol_refusal
from protocols.est.context import EstContext, Refusal
from protocols.est.handlers.enroll import simpleenroll, simplereenroll
from protocols.est.handlers.publish import cacerts, csrattrs
from protocols.est.handlers.serverkeygen import serverkeygen
from protocols.est.messages import OPERATIONS_WITH_CSRATTRS
from protocols.est.render import EstReply, error_reply, exception_reply, text
from protocols.est.settings import LabelSettings
from protocols.est.tls import TransportFacts, transport_facts

log = logging.getLogger("certgate.est")


Handler = Callable[[web.Request, EstContext, LabelSettings, TransportFacts], Awaitable[EstReply]]

EST_CONTEXT: web.AppKey[EstContext] = web.AppKey("est", EstContext)
_METHODS = {"cacerts": "GET", "csrattrs": "GET"}


#: Paths other than EST's that the EST listener answers: unauthenticated health checks.
_HEALTH = frozenset({"/healthz", "/readyz"})


def est_listener_only(listener: ssl.SSLContext) -> Middleware:
    """A middleware answering 404 on the EST listener (connections made with ``listener``)
    for every route but EST's own and the health checks; other listeners are untouched."""

    @web.middleware
    async def guard(request: web.Request, handler: AioHandler) -> web.StreamResponse:
        tls = request.transport.get_extra_info("ssl_object") if request.transport else None
        if (
            tls is not None
            and tls.context is listener
            and request.match_info.route.handler is not dispatch
            and request.path not in _HEALTH
        ):
            return web.Response(
                status=404,
                text="only EST (/.well-known/est/) is served on this listener\n",
            )
        return await handler(request)

    return guard


def add_routes(app: web.Application, est: EstContext) -> None:
    app[EST_CONTEXT] = est
    app.router.add_route("*", "/.well-known/est/{first}", dispatch)
    app.router.add_route("*", "/.well-known/est/{first}/{second}", dispatch)


HANDLERS: dict[str, Handler] = {
    "cacerts": cacerts,
    "csrattrs": csrattrs,
    "simpleenroll": simpleenroll,
    "simplereenroll": simplereenroll,
    "serverkeygen": serverkeygen,
}


async def dispatch(request: web.Request) -> web.StreamResponse:
    est = request.app[EST_CONTEXT]
    realm = est.settings.realm
    try:
        reply = await _dispatch(request, est)
    except Refusal as refusal:
        reply = refusal.reply
    except CertgateError as exc:
        reply = exception_reply(exc, realm=realm)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("EST request failed (request id %s)", request.get("request_id"))
        reply = error_reply(
            ErrorCode.INTERNAL,
            f"internal error (request id {request.get('request_id')})",
            realm=realm,
        )
    if reply.status in (401, 403):
        protocol_refusal(
            "est",
            str(reply.status),
            reply.body.decode("utf-8", "replace").strip(),
            path=request.path,
            peer=_peer(request),
            http_request_id=request.get("request_id"),
        )
    return web.Response(
        status=reply.status,
        body=reply.body,
        headers={"Content-Type": reply.content_type, **reply.headers},
    )


async def _dispatch(request: web.Request, est: EstContext) -> EstReply:
    first = request.match_info["first"]
    second = request.match_info.get("second")
    label_name, operation = ("", first) if second is None else (first, second)
    label = est.settings.label(label_name)
    if label is None:
        return text(404, f"unknown EST label {label_name!r}")
    if operation == "fullcmc":
        return text(501, "/fullcmc is not implemented (RFC 7030 §4.3 makes it optional)")
    if operation not in OPERATIONS_WITH_CSRATTRS:
        return text(404, f"unknown EST operation {operation!r}")
    method = _METHODS.get(operation, "POST")
    if request.method != method:
        return text(405, f"/{operation} takes {method}", {"Allow": method})
    transport = transport_facts(
        request.transport.get_extra_info("ssl_object") if request.transport else None,
        _peer(request),
        request.headers.get(est.settings.client_cert_header),
        est.settings,
    )
    if transport.via == "plain":
        return text(
            403,
            f"EST is served only over HTTPS on the EST listener "
            f"(https://{est.settings.host}:{est.settings.port}/.well-known/est/)",
        )
    return await HANDLERS[operation](request, est, label, transport)


def _peer(request: web.Request) -> str | None:
    peer = request.transport.get_extra_info("peername") if request.transport else None
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return None
