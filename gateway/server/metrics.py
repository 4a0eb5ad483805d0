"""``GET /metrics`` (Prometheus text format) and the request latency and status counts.

``/metrics`` is served on the main listener only: the extra TLS listeners the front-ends open
(EST's, CES's) answer 404 for it, and the plain device listener serves only device paths. It is
open to any peer unless ``[metrics] allow`` lists networks (then others get 403; the peer is
the TCP peer, never a forwarded header), and ``[metrics] enabled = false`` removes it.

Request latency is labelled by the route, never by the raw path, so no client can mint new
series: ``protocol`` is the front-end that registered the route (``gateway`` for the server's
own routes) and ``operation`` its route pattern (``/acme/order/{id}/finalize``) -- except for
EST and SCEP, whose patterns hide the operation in a path variable (``/.well-known/est/
[<label>/]simpleenroll``, RFC 7030 §3.2.2) or the query (``?operation=PKIOperation``, RFC 8894
§4.1): there it is the operation's name when it is one the RFC defines, else ``other``.
"""

from __future__ import annotations

import ipaddress
import ssl
from datetime import UTC, datetime

from aiohttp import web
from aiohttp.web_urldispatcher import AbstractResource

from gateway.config import MetricsConfig
from gateway.observability.metrics import CONTENT_TYPE, activate, exposition
from gateway.observability.scrape import scrape_state

__all__ = ["add_metrics_route", "claim_routes", "observe_request"]

#: Which front-end registered each route (:func:`claim_routes`).
ROUTE_PROTOCOLS: web.AppKey[dict[AbstractResource, str]] = web.AppKey("route_protocols", dict)
METRICS_CONFIG: web.AppKey[MetricsConfig] = web.AppKey("metrics_config", MetricsConfig)

#: RFC 7030 §3.2.2 operation path segments.
_EST_OPERATIONS = frozenset(
    {"cacerts", "simpleenroll", "simplereenroll", "fullcmc", "serverkeygen", "csrattrs"}
)
#: RFC 8894 §4 operations.
_SCEP_OPERATIONS = frozenset({"GetCACert", "GetCACaps", "GetNextCACert", "PKIOperation"})


def claim_routes(app: web.Application, protocol: str) -> None:
    """Label every route of ``app`` not claimed yet as ``protocol``'s: called once before the
    front-ends are set up (``gateway``) and after each front-end's ``setup``."""
    claimed = app.setdefault(ROUTE_PROTOCOLS, {})
    for resource in app.router.resources():
        claimed.setdefault(resource, protocol)


def _labels(request: web.Request) -> tuple[str, str]:
    resource = request.match_info.route.resource
    if resource is None:  # no route matched (404/405)
        return "none", "unmatched"
    protocol = request.app.get(ROUTE_PROTOCOLS, {}).get(resource, "gateway")
    if protocol == "est":
        info = request.match_info
        operation = info.get("second") or info.get("first", "")
        return protocol, operation if operation in _EST_OPERATIONS else "other"
    if protocol == "scep":
        operation = request.query.get("operation") or (
            "PKIOperation" if request.method == "POST" else ""
        )
        return protocol, operation if operation in _SCEP_OPERATIONS else "other"
    return protocol, resource.canonical


def observe_request(request: web.Request, status: int, seconds: float) -> None:
    """Count a completed request's status and latency by route (see the module docstring);
    the shell's request timing middleware (:mod:`gateway.server.app`) calls it once per
    request with the duration it also logs."""
    metrics = activate()
    protocol, operation = _labels(request)
    metrics.child(metrics.http_seconds, protocol, operation).observe(seconds)
    metrics.child(metrics.http_responses, protocol, operation, str(status)).inc()


def _peer_allowed(request: web.Request, config: MetricsConfig) -> bool:
    if not config.allow:
        return True
    peer = request.transport.get_extra_info("peername") if request.transport else None
    if not isinstance(peer, tuple) or not peer:
        return False  # a UNIX socket or a closed connection: not a listed network
    try:
        address = ipaddress.ip_address(str(peer[0]).split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in config.allow)


async def metrics(request: web.Request) -> web.Response:
    """``GET /metrics``: every worker's counters and the scrape-time values."""
    # The shell's app keys, imported here: gateway.server.app imports this module.
    from gateway.server.app import LISTENERS, MAIN_TLS, components_of

    app = request.app
    extra = [(lst.name, lst.ssl_context) for lst in app[LISTENERS] if lst.ssl_context is not None]
    tls = request.transport.get_extra_info("ssl_object") if request.transport else None
    if isinstance(tls, ssl.SSLObject | ssl.SSLSocket) and any(
        tls.context is context for _, context in extra
    ):
        return web.Response(status=404, text="/metrics is served on the main listener only\n")
    if not _peer_allowed(request, app[METRICS_CONFIG]):
        return web.Response(status=403, text="/metrics: this address is not in [metrics] allow\n")
    main = app.get(MAIN_TLS)
    contexts = ([("main", main.context)] if main is not None else []) + extra
    components = components_of(app)
    state = await scrape_state(
        now=datetime.now(UTC),
        store=components.store,
        service=components.service,
        connectors=components.connectors,
        listeners=contexts,
    )
    return web.Response(body=exposition(state), headers={"Content-Type": CONTENT_TYPE})


def add_metrics_route(app: web.Application, config: MetricsConfig) -> None:
    """Serve ``/metrics`` per ``[metrics]`` and start counting in this process."""
    activate()
    app[METRICS_CONFIG] = config
    if config.enabled:
        app.router.add_get("/metrics", metrics, allow_head=False)
