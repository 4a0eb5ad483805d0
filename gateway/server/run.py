"""``certgate serve``: one process, or N worker processes sharing one port (SO_REUSEPORT).

The parent binds the main listener first -- a port in use ends the start-up in one line before
a data directory, database or CA is created -- then prepares shared state once (migrations, CA
creation) so workers never race on first start, prints the URL and the CA fingerprint, then
either serves itself (N = 1) or supervises N workers, forwarding SIGTERM/SIGINT for a graceful
shutdown. Every listener is served through :mod:`gateway.server.listen` (read timeouts, quiet
bad-request log).
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
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from gateway.config import DEFAULTS, Config, ServerConfig, load_config
from gateway.observability.logs import configure_logging
from gateway.observability.metrics import prepare_multiprocess
from gateway.pkix import fingerprint
from gateway.server.app import BANNER, LISTENERS, create_app
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


async def _prepare(config: Config, *, front_ends: bool) -> tuple[str, list[tuple[str, str]]]:
    """The root CA fingerprint, and with ``front_ends`` the front-ends' banner lines: the
    parent of ``--workers`` starts them once (not served) so that what they create on a first
    start, such as the SCEP RA certificate, exists before the banner names it."""
    components = await build(config)
    try:
        chain = await components.service.ca_chain()
        root = fingerprint(chain[-1]) if chain else "(no CA chain)"
        banner = (await create_app(config, components))[BANNER] if front_ends else []
        return root, banner
    finally:
        await components.close()


def _print_banner(lines: list[tuple[str, str]]) -> None:
    for label, value in lines:
        print(f"  {label:15} {value}", flush=True)


MAIN_LISTENER_KEY = "[server] host/port"


def bind_main(config: Config, *, reuse_port: bool) -> list[socket.socket]:
    """The main listener's sockets (:class:`ListenError` names ``[server] host/port``)."""
    return bind(
        config.server.host, config.server.port, key=MAIN_LISTENER_KEY, reuse_port=reuse_port
    )


async def start_listeners(
    app: web.Application, config: Config, sockets: list[socket.socket], *, reuse_port: bool
) -> web.AppRunner:
    """Serve ``app`` on the main listener's ``sockets`` and on every front-end listener, all
    with the ``[server]`` read timeouts. :class:`ListenError` if a listener cannot bind."""
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
    pending = list(sockets)
    try:
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
    announce: str | None,
    sockets: list[socket.socket] | None = None,
) -> int:
    try:
        main_sockets = sockets if sockets is not None else bind_main(config, reuse_port=reuse_port)
    except ListenError as exc:
        print(f"certgate: {exc}", file=sys.stderr, flush=True)
        return 2
    app = await create_app(config)
    try:
        runner = await start_listeners(app, config, main_sockets, reuse_port=reuse_port)
    except ListenError as exc:
        print(f"certgate: {exc}", file=sys.stderr, flush=True)
        return 2
    if announce is not None:
        for listener in app[LISTENERS]:
            scheme = "https" if listener.ssl_context else "http"
            print(f"  {listener.name:15} {scheme}://{listener.host}:{listener.port}", flush=True)
        port = main_sockets[0].getsockname()[1]
        host = f"[{config.server.host}]" if ":" in config.server.host else config.server.host
        print(f"certgate listening on http://{host}:{port}", flush=True)
        print(f"  external URL    {config.server.external_url}", flush=True)
        print(f"  root CA SHA-256 {announce}", flush=True)
        _print_banner(app[BANNER])
        print(f"  data directory  {config.data_dir}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
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
    try:
        # Without SO_REUSEPORT even for workers: another gateway already serving the port
        # (with it) must be refused, not silently joined.
        sockets = bind_main(config, reuse_port=False)
    except ListenError as exc:
        print(f"certgate: {exc}", file=sys.stderr)
        return 2
    try:
        if once_bound is not None:
            once_bound()
        fp, banner = run_loop(_prepare(config, front_ends=workers > 1))
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    if workers == 1:
        return run_loop(_serve_async(config, reuse_port=False, announce=fp, sockets=sockets))
    for sock in sockets:  # each worker binds its own socket to the port (SO_REUSEPORT)
        sock.close()
    prepare_multiprocess()  # the workers' metrics are summed through a directory of this run
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
    host = f"[{config.server.host}]" if ":" in config.server.host else config.server.host
    print(
        f"certgate listening on http://{host}:{config.server.port} ({workers} workers)", flush=True
    )
    print(f"  external URL    {config.server.external_url}", flush=True)
    print(f"  root CA SHA-256 {fp}", flush=True)
    _print_banner(banner)
    print(f"  data directory  {config.data_dir}", flush=True)

    def forward(signum: int, _frame: object) -> None:
        for p in procs:
            if p.is_alive() and p.pid:
                try:
                    import os

                    os.kill(p.pid, signum)
                except ProcessLookupError:
                    pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    code = 0
    for p in procs:
        p.join()
        code = code or (p.exitcode or 0)
    return code
