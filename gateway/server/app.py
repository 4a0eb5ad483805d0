"""aiohttp application factory: health, CA publication and the protocol sub-apps.

Middleware order (outermost first): read timeouts (:mod:`gateway.server.listen`) -> request
id -> request timing (one measurement for the access log and the request metrics of
:mod:`gateway.server.metrics`) -> error shield -> device listener guard. The error shield
turns anything unexpected into a terse 500 without a traceback (the traceback goes to the log
with the request id), and aiohttp's body-limit error into 413.

With ``[server.tls]`` the main listener speaks HTTPS (:mod:`gateway.server.tls`, certificate in
``app[MAIN_TLS]``) and plain HTTP is served only for the paths devices fetch without TLS
(:data:`DEVICE_PATHS`); every other path there answers 404 naming its https URL. The paths of
a protocol that is switched off answer a short text/plain 404 saying which table and key
switch it on (:mod:`gateway.server.switched_off`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib.metadata import entry_points

from aiohttp import web
from aiohttp.typedefs import Middleware
from cryptography.hazmat.primitives import serialization

from gateway.config import Config
from gateway.errors import CAUnavailable, CertgateError, ConfigError, NotFound
from gateway.listener_tls import ListenerCertificate
from gateway.observability.logs import fields
from gateway.pkix import pem_chain
from gateway.plugin import FrontEnd, Listener, ProtocolContext
from gateway.server.console import add_console_routes
from gateway.server.listen import read_timeout_middleware
from gateway.server.metrics import add_metrics_route, claim_routes, observe_request
from gateway.server.ocsp import add_ocsp_routes
from gateway.server.switched_off import add_switched_off_routes
from gateway.server.tls import main_listener_certificate
from gateway.server.webhooks import start_webhooks
from gateway.server.wiring import Components, build

log = logging.getLogger("certgate.server")
access_log = logging.getLogger("certgate.access")


class Holder:
    """Mutable slot for the components, filled during startup (app state is frozen by then)."""

    components: Components | None = None

    def get(self) -> Components:
        if self.components is None:
            raise RuntimeError("certgate components are not started")
        return self.components


HOLDER: web.AppKey[Holder] = web.AppKey("certgate", Holder)
ACCESS_LOG: web.AppKey[bool] = web.AppKey("access_log_enabled", bool)


def components_of(app: web.Application) -> Components:
    """The started components of ``app`` (for protocol sub-apps and handlers)."""
    return app[HOLDER].get()


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Echo a sane incoming X-Request-ID or mint one; it tags the access log line."""
    incoming = request.headers.get("X-Request-ID", "")
    rid = incoming if 0 < len(incoming) <= 64 and incoming.isprintable() else secrets.token_hex(8)
    request["request_id"] = rid
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers["X-Request-ID"] = rid
        raise
    response.headers["X-Request-ID"] = rid
    return response


@web.middleware
async def timing_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Time every request once, after it completes: its access log line and its latency and
    status metrics (:func:`gateway.server.metrics.observe_request`) get the same figures."""
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        seconds = time.perf_counter() - started
        observe_request(request, status, seconds)
        if request.app.get(ACCESS_LOG, True):
            # Fields, not prose: `[logging] format = "json"` makes each one a JSON key.
            access_log.info(
                "request",
                extra=fields(
                    peer=request.remote,
                    method=request.method,
                    path=request.path_qs[:200],
                    status=status,
                    duration_ms=round(seconds * 1000, 1),
                    request_id=request.get("request_id", "-"),
                ),
            )


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """No traceback ever reaches a client. Protocol sub-apps render their own errors first."""
    try:
        return await handler(request)
    except web.HTTPRequestEntityTooLarge:
        return web.Response(status=413, text="request body too large\n")
    except web.HTTPException:
        raise
    except CertgateError as exc:
        status = (
            404 if isinstance(exc, NotFound) else 503 if isinstance(exc, CAUnavailable) else 400
        )
        return web.Response(status=status, text=f"{exc.detail}\n")
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("unhandled error (request id %s)", request.get("request_id"))
        return web.Response(
            status=500, text=f"internal error (request id {request.get('request_id')})\n"
        )


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process serves HTTP."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Readiness: the store answers and every CA connector can issue."""
    components = components_of(request.app)
    checks: dict[str, str] = {}
    ready = True
    try:
        await asyncio.wait_for(components.store.ping(), timeout=5)
        checks["store"] = "ok"
    except CertgateError as exc:  # StoreUnavailable: down, or the SQLite file is gone
        ready = False
        checks["store"] = f"failed: {exc.detail}"
    except Exception as exc:
        ready = False
        checks["store"] = f"failed: {type(exc).__name__}"
    for name, connector in components.connectors.items():
        try:
            await asyncio.wait_for(connector.check(), timeout=5)
            checks[f"connector:{name}"] = "ok"
        except CertgateError as exc:
            ready = False
            checks[f"connector:{name}"] = f"failed: {exc.detail}"
        except Exception as exc:
            ready = False
            checks[f"connector:{name}"] = f"failed: {type(exc).__name__}"
    body = {"status": "ready" if ready else "not ready", "checks": checks}
    return web.json_response(body, status=200 if ready else 503)


async def ca_chain_pem(request: web.Request) -> web.Response:
    """The issuing chain as PEM (issuing CA first), for clients bootstrapping trust."""
    chain = await components_of(request.app).service.ca_chain()
    return web.Response(body=pem_chain(chain), content_type="application/pem-certificate-chain")


async def ca_issuer_der(request: web.Request) -> web.Response:
    """The issuing CA certificate in DER: the target of the AIA caIssuers URL."""
    chain = await components_of(request.app).service.ca_chain()
    return web.Response(
        body=chain[0].public_bytes(serialization.Encoding.DER), content_type="application/pkix-cert"
    )


async def ca_root_pem(request: web.Request) -> web.Response:
    """The root CA certificate in PEM: the target of the issuing CA's own AIA caIssuers URL.

    PEM, not the DER RFC 5280 §4.2.2.1 names: the root is a trust anchor no path validation
    fetches, and the client that follows this URL to build the chain (cepces FETCH-ROOTS,
    up to v0.3.17) reads the body as text and parses only PEM."""
    chain = await components_of(request.app).service.ca_chain()
    if chain[-1].subject != chain[-1].issuer:  # e.g. an AD CS connector's issuing CA only
        raise NotFound("this gateway does not hold its CA's root certificate")
    pem = chain[-1].public_bytes(serialization.Encoding.PEM)
    return web.Response(body=pem, content_type="application/x-pem-file")


async def ca_crl(request: web.Request) -> web.Response:
    """The current CRL in DER: the target of the CRL distribution point URL."""
    crl = await components_of(request.app).service.crl()
    return web.Response(body=crl, content_type="application/pkix-crl")


#: Path prefixes served over plain HTTP beside a TLS main listener: SCEP (devices speak it
#: over HTTP and protect it with CMS), the CA certificates and CRL (relying parties fetch AIA
#: and CRL distribution points over HTTP, RFC 5280 §4.2.1.13), and the health checks.
#: OCSP too (RFC 5019 §5: relying parties ask over plain HTTP; responses are signed).
DEVICE_PATHS = ("/scep/", "/certsrv/mscep/", "/ca/", "/ocsp/")
_DEVICE_EXACT = frozenset({"/scep", "/certsrv/mscep", "/ocsp", "/healthz", "/readyz"})


def device_listener_guard(external_url: str) -> Middleware:
    """On plain-HTTP connections (the ``[server.plain]`` listener; every other listener of a
    TLS gateway is TLS) only :data:`DEVICE_PATHS` are served."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        transport = request.transport
        tls = transport.get_extra_info("ssl_object") if transport else None
        path = request.path
        if tls is None and not (path in _DEVICE_EXACT or path.startswith(DEVICE_PATHS)):
            return web.Response(
                status=404,
                text=f"plain HTTP serves only SCEP, /ca/, /ocsp and the health checks here; "
                f"use {external_url.rstrip('/')}{path}\n",
            )
        return await handler(request)

    return guard


LISTENERS: web.AppKey[list[Listener]] = web.AppKey("listeners", list)
#: The front-ends' ``(label, value)`` lines for the serve banner (ProtocolContext.banner).
BANNER: web.AppKey[list[tuple[str, str]]] = web.AppKey("banner", list)
#: The main listener's certificate and ``SSLContext`` (``[server.tls]``), else absent.
MAIN_TLS: web.AppKey[ListenerCertificate] = web.AppKey("main_tls", ListenerCertificate)
PROTOCOL_GROUP = "certgate.protocols"


def listener_certificates(app: web.Application) -> list[ListenerCertificate]:
    """The certificates the shell renews and reloads (SIGHUP): the main listener's, then
    those of the front-ends' listeners that keep theirs (:attr:`Listener.certificate`)."""
    main = [app[MAIN_TLS]] if MAIN_TLS in app else []
    return main + [lst.certificate for lst in app[LISTENERS] if lst.certificate is not None]


def load_front_ends(config: Config) -> list[tuple[str, FrontEnd]]:
    """Front-ends whose configuration table says ``enabled = true``, found by entry point."""
    enabled = [name for name, table in config.protocols.items() if table.get("enabled") is True]
    found: list[tuple[str, FrontEnd]] = []
    for name in enabled:
        eps = list(entry_points(group=PROTOCOL_GROUP, name=name))
        if not eps:
            raise ConfigError(config.file, f"{name}.enabled", f"no {name} front-end is installed")
        found.append((name, eps[0].load()))
    return found


async def create_app(config: Config, components: Components | None = None) -> web.Application:
    """Build the web application with every enabled protocol front-end.

    Components are built here unless given (tests pass their own); the app closes what it
    built on cleanup. Extra listeners the front-ends asked for are in ``app[LISTENERS]``, their
    lines for the serve banner in ``app[BANNER]``.
    """
    owned = components is None
    built = components if components is not None else await build(config)
    app = web.Application(
        client_max_size=config.server.max_body_bytes,
        middlewares=[
            read_timeout_middleware,
            request_id_middleware,
            timing_middleware,
            error_middleware,
        ],
    )
    if config.server.tls is not None:
        app.middlewares.append(device_listener_guard(config.server.external_url))
    app[ACCESS_LOG] = config.server.access_log
    app[HOLDER] = Holder()
    app[HOLDER].components = built
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/ca/chain.pem", ca_chain_pem)
    app.router.add_get("/ca/issuing.crt", ca_issuer_der)
    app.router.add_get("/ca/root.pem", ca_root_pem)
    app.router.add_get("/ca/crl", ca_crl)
    add_ocsp_routes(app, config, built)
    add_metrics_route(app, config.metrics)
    if config.server.tls is not None and config.admin.enabled:  # a client of /api/v1 whose
        add_console_routes(app, config.server.external_url)  # cookie is Secure: HTTPS only

    listeners: list[Listener] = []
    banner: list[tuple[str, str]] = []
    try:
        if config.server.tls is not None:
            main_tls = main_listener_certificate(config, built.service)
            await main_tls.start()
            app[MAIN_TLS] = main_tls
        front_ends = load_front_ends(config)
        add_switched_off_routes(app, config, {name for name, _ in front_ends})
        claim_routes(app, "gateway")
        for name, front_end in front_ends:
            context = ProtocolContext(
                name=name,
                settings=config.protocols[name],
                config_file=config.file,
                external_url=config.server.external_url.rstrip("/"),
                data_dir=config.data_dir,
                default_template=config.default_template,
                service=built.service,
                store=built.store,
                transactions=built.store,
                policy=built.policy,
                clock=built.clock,
                testing=config.testing,
            )
            listeners.extend(await front_end.setup(context, app))
            claim_routes(app, name)
            banner.extend(context.banner)
        if config.admin.enabled:  # /api/v1; the device guard keeps it off the plain listener
            from gateway.server.admin import listener_views, mount_admin

            enabled = [name for name, _ in front_ends]
            mount_admin(app, config, built, enabled, listener_views(config, listeners))
    except BaseException:
        if owned:
            await built.close()
        raise
    app[LISTENERS] = listeners
    app[BANNER] = banner

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        stop = asyncio.Event()
        tasks = []
        if config.poller.enabled:
            tasks.append(
                asyncio.create_task(
                    built.service.run_poller(stop, config.poller.interval, config.poller.lease),
                    name="certgate-poller",
                )
            )
        for certificate in listener_certificates(app):
            tasks.append(asyncio.create_task(certificate.run(stop), name="certgate-tls-renewal"))
        webhooks = await start_webhooks(config.webhooks, built.store, built.service, built.clock)
        yield
        stop.set()
        if webhooks is not None:  # in-flight deliveries finish and are recorded, or go back
            await webhooks.close()
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if owned:
            await built.close()

    app.cleanup_ctx.append(lifecycle)
    return app
