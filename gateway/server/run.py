"""``certgate serve``: one process, or N worker processes sharing one port (SO_REUSEPORT).

The parent binds the main listener (and the plain device listener, ``[server.plain]``) first --
a port in use ends the start-up in one line before a data directory, database or CA is created
-- then prepares shared state once (migrations, CA creation, the listener certificate) so
workers never race on first start, prints the banner (:mod:`gateway.server.banner`), then
either serves itself (N = 1) or supervises N workers, forwarding SIGTERM/SIGINT for a graceful
shutdown and SIGHUP, which reloads the listeners' certificates (the main listener's and the
front-ends', :mod:`gateway.listener_tls`).
Every worker serves every listener. Every listener is served through
:mod:`gateway.server.listen` (read timeouts, quiet bad-request log).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import multiprocessing
import os
import signal
import socket
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from gateway.config import DEFAULTS, Config, ServerConfig, load_config
from gateway.observability.logs import configure_logging
from gateway.observability.metrics import prepare_multiprocess
from gateway.pkix import fingerprint
from gateway.plugin import Listener
from gateway.server.app import BANNER, LISTENERS, MAIN_TLS, create_app, listener_certificates
from gateway.server.banner import client_lines, write_root
from gateway.server.listen import (
    HANDLER_ARGS,
    GuardedSite,
    ListenError,
    ReadTimeouts,
    bind,
    install_bad_request_log,
)
from gateway.server.wiring import build

log = logging.getLogger("certgate.server")

T = TypeVar("T")


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop unless ``CERTGATE_EVENT_LOOP=asyncio`` (or uvloop is missing).

    Why uvloop: the gateway spends a large share of each request in the event loop's
    transports; uvloop's (libuv, Cython) TLS and socket transports cost a fraction of
    asyncio's pure-Python SSL protocol (docs/performance.md has the EST figures).
    """
    if os.environ.get("CERTGATE_EVENT_LOOP", "uvloop").lower() == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:  # pragma: no cover - a platform without uvloop wheels
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` to completion on the event loop the gateway serves on."""
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(main)


@dataclass(frozen=True)
class Prepared:
    """What the parent learned while preparing: the root CA's fingerprint and file, and (with
    ``front_ends``) the front-ends' banner lines, extra listeners and the listener certificate's
    fingerprint."""

    root_fingerprint: str
    root_file: Path
    front_end_lines: list[tuple[str, str]]
    listeners: list[Listener]
    tls_fingerprint: str | None


async def _prepare(config: Config, *, front_ends: bool) -> Prepared:
    """The root CA, and with ``front_ends`` the front-ends started once (not served), so that
    what they create on a first start (the SCEP RA certificate, the listener certificates)
    exists before the banner names it and before workers race for it."""
    components = await build(config)
    try:
        chain = await components.service.ca_chain()
        root = fingerprint(chain[-1]) if chain else "(no CA chain)"
        root_file = write_root(config.data_dir, chain)
        if not front_ends:
            return Prepared(root, root_file, [], [], None)
        app = await create_app(config, components)
        tls = app[MAIN_TLS].fingerprint if MAIN_TLS in app else None
        return Prepared(root, root_file, app[BANNER], app[LISTENERS], tls)
    finally:
        await components.close()


def _announce(
    config: Config,
    prepared: Prepared,
    main_port: int,
    plain_port: int | None,
    workers: int = 1,
) -> None:
    """The start banner: listeners, trust anchors, then each protocol's client command."""
    host = f"[{config.server.host}]" if ":" in config.server.host else config.server.host
    scheme = "https" if config.server.tls else "http"
    more = f" ({workers} workers)" if workers > 1 else ""
    lines = [f"certgate listening on {scheme}://{host}:{main_port}{more}"]
    rows: list[tuple[str, str]] = []
    if config.server.plain is not None and plain_port is not None:
        plain = config.server.plain
        shown = f"[{plain.host}]" if ":" in plain.host else plain.host
        rows.append(("plain HTTP", f"http://{shown}:{plain_port} (SCEP, /ca/, health only)"))
    for listener in prepared.listeners:
        tls = "https" if listener.ssl_context else "http"
        rows.append((listener.name, f"{tls}://{listener.host}:{listener.port}"))
    rows.append(("external URL", config.server.external_url))
    if config.admin.enabled:
        external = config.server.external_url.rstrip("/")
        rows.append(("admin API", f"{external}/api/v1/ (certgate admin token create)"))
        if config.server.tls is not None:  # the console is served over TLS only
            rows.append(("console", f"{external}/console/"))
    if config.ocsp.enabled:
        where = config.ocsp.aia_url or f"{config.server.device_url.rstrip('/')}/ocsp"
        note = "" if config.ocsp.aia_url else " (not in certificates: set [ocsp] url)"
        rows.append(("OCSP", f"{where}{note}"))
    if config.server.plain is not None:
        rows.append(("device URL", config.server.device_url))
    if prepared.tls_fingerprint:
        rows.append(("TLS SHA-256", prepared.tls_fingerprint))
    rows.append(("root CA file", str(prepared.root_file)))
    rows.append(("root CA SHA-256", prepared.root_fingerprint))
    rows.extend(prepared.front_end_lines)
    rows.extend(client_lines(config, prepared.root_file, prepared.front_end_lines))
    rows.append(("data directory", str(config.data_dir)))
    lines += [f"  {label:15} {value}" for label, value in rows]
    print("\n".join(lines), flush=True)


MAIN_LISTENER_KEY = "[server] host/port"
PLAIN_LISTENER_KEY = "[server.plain] host/port"


def bind_main(config: Config, *, reuse_port: bool) -> list[socket.socket]:
    """The main listener's sockets (:class:`ListenError` names ``[server] host/port``)."""
    return bind(
        config.server.host, config.server.port, key=MAIN_LISTENER_KEY, reuse_port=reuse_port
    )


def bind_plain(config: Config, *, reuse_port: bool) -> list[socket.socket]:
    """The plain device listener's sockets (none without ``[server.plain]``)."""
    plain = config.server.plain
    if plain is None:
        return []
    return bind(plain.host, plain.port, key=PLAIN_LISTENER_KEY, reuse_port=reuse_port)


async def start_listeners(
    app: web.Application,
    config: Config,
    sockets: list[socket.socket],
    *,
    reuse_port: bool,
    plain_sockets: list[socket.socket] | None = None,
) -> web.AppRunner:
    """Serve ``app`` on the main listener's ``sockets`` (TLS with ``[server.tls]``), on the
    plain device listener (``plain_sockets``, bound here if not given) and on every front-end
    listener, all with the ``[server]`` read timeouts. :class:`ListenError` if a listener
    cannot bind."""
    install_bad_request_log()
    timeouts = ReadTimeouts(
        header=float(config.server.header_timeout), body=float(config.server.body_timeout)
    )
    runner = web.AppRunner(
        app,
        handle_signals=False,
        shutdown_timeout=float(config.server.shutdown_timeout),
        **HANDLER_ARGS,
    )
    await runner.setup()
    main_tls = app[MAIN_TLS].context if MAIN_TLS in app else None
    pending = list(sockets)
    try:
        while pending:
            await GuardedSite(
                runner, pending.pop(0), timeouts=timeouts, ssl_context=main_tls
            ).start()
        pending = (
            list(plain_sockets)
            if plain_sockets is not None
            else bind_plain(config, reuse_port=reuse_port)
        )
        while pending:
            await GuardedSite(runner, pending.pop(0), timeouts=timeouts).start()
        for listener in app[LISTENERS]:
            key = f"[{listener.name.replace('-', '.')}] listener"
            pending = bind(listener.host, listener.port, key=key, reuse_port=reuse_port)
            while pending:
                await GuardedSite(
                    runner, pending.pop(0), timeouts=timeouts, ssl_context=listener.ssl_context
                ).start()
    except BaseException:
        for sock in pending:
            sock.close()
        await runner.cleanup()
        raise
    return runner


async def _serve_async(
    config: Config,
    *,
    reuse_port: bool,
    announce: Prepared | None,
    sockets: list[socket.socket] | None = None,
    plain_sockets: list[socket.socket] | None = None,
) -> int:
    try:
        main_sockets = sockets if sockets is not None else bind_main(config, reuse_port=reuse_port)
    except ListenError as exc:
        print(f"certgate: {exc}", file=sys.stderr, flush=True)
        return 2
    try:
        app = await create_app(config)
    except BaseException:
        for sock in (*main_sockets, *(plain_sockets or ())):
            sock.close()
        raise
    try:
        runner = await start_listeners(
            app, config, main_sockets, reuse_port=reuse_port, plain_sockets=plain_sockets
        )
    except ListenError as exc:
        print(f"certgate: {exc}", file=sys.stderr, flush=True)
        return 2
    main_tls = app[MAIN_TLS] if MAIN_TLS in app else None
    if announce is not None:
        plain_port = plain_sockets[0].getsockname()[1] if plain_sockets else None
        prepared = dataclasses.replace(
            announce,
            front_end_lines=app[BANNER],
            listeners=app[LISTENERS],
            tls_fingerprint=main_tls.fingerprint if main_tls else None,
        )
        _announce(config, prepared, main_sockets[0].getsockname()[1], plain_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    reloads: set[asyncio.Task[None]] = set()
    certificates = listener_certificates(app)

    def reload() -> None:  # SIGHUP never ends the gateway: it reloads, or says why not
        if not certificates:
            log.info("SIGHUP: nothing to reload (no listener keeps a TLS certificate)")
            return
        for certificate in certificates:
            task = loop.create_task(certificate.reload("SIGHUP"))
            reloads.add(task)
            task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, reload)
    await stop.wait()
    log.info("shutting down")
    await runner.cleanup()
    return 0


def _worker(file: str, data_dir: Path, server: ServerConfig) -> None:
    # Configs hold read-only mappings that do not pickle: each worker re-reads the file.
    path = None if file == DEFAULTS else Path(file)
    config = dataclasses.replace(load_config(path, data_dir=data_dir), server=server)
    configure_logging(config.log_level, config.log_format, process_id=True)
    code = run_loop(_serve_async(config, reuse_port=True, announce=None))
    if code:
        sys.exit(code)


def serve(config: Config, *, workers: int = 1, once_bound: Callable[[], None] | None = None) -> int:
    """Run the gateway until SIGTERM/SIGINT. Returns the process exit code.

    The main listener is bound first; ``once_bound`` (the CLI's data directory check) runs
    after that and before anything is created."""
    if workers < 1:
        print("certgate: --workers must be at least 1", file=sys.stderr)
        return 2
    if workers > 1 and config.server.port == 0:
        print("certgate: --workers > 1 needs a fixed --port", file=sys.stderr)
        return 2
    if workers > 1 and config.server.plain is not None and config.server.plain.port == 0:
        print("certgate: --workers > 1 needs a fixed [server.plain] port", file=sys.stderr)
        return 2
    sockets: list[socket.socket] = []
    try:
        # Without SO_REUSEPORT even for workers: another gateway already serving the port
        # (with it) must be refused, not silently joined.
        sockets = bind_main(config, reuse_port=False)
        plain_sockets = bind_plain(config, reuse_port=False)
    except ListenError as exc:
        for sock in sockets:
            sock.close()
        print(f"certgate: {exc}", file=sys.stderr)
        return 2
    try:
        if once_bound is not None:
            once_bound()
        if workers > 1:  # the workers' metrics are summed through a directory of this run;
            prepare_multiprocess()  # made first, so the parent's start-up issuances count too
        prepared = run_loop(_prepare(config, front_ends=workers > 1))
    except BaseException:
        for sock in (*sockets, *plain_sockets):
            sock.close()
        raise
    if workers == 1:
        return run_loop(
            _serve_async(
                config,
                reuse_port=False,
                announce=prepared,
                sockets=sockets,
                plain_sockets=plain_sockets,
            )
        )
    plain_port = plain_sockets[0].getsockname()[1] if plain_sockets else None
    for sock in (*sockets, *plain_sockets):  # each worker binds its own (SO_REUSEPORT)
        sock.close()
    ctx = multiprocessing.get_context("spawn")
    procs: list[BaseProcess] = [
        ctx.Process(
            target=_worker,
            args=(config.file, config.data_dir, config.server),
            name=f"certgate-worker-{i}",
            daemon=False,
        )
        for i in range(workers)
    ]
    for p in procs:
        p.start()
    _announce(config, prepared, config.server.port, plain_port, workers)

    def forward(signum: int, _frame: object) -> None:
        for p in procs:
            if p.is_alive() and p.pid:
                try:
                    os.kill(p.pid, signum)
                except ProcessLookupError:
                    pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGHUP, forward)
    code = 0
    for p in procs:
        p.join()
        code = code or (p.exitcode or 0)
    return code
