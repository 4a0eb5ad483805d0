"""``certgate serve``: one process, or N worker processes sharing one port (SO_REUSEPORT).

The parent prepares shared state once (migrations, CA creation) so workers never race on
first start, prints the URL and the CA fingerprint, then either serves itself (N = 1) or
supervises N workers, forwarding SIGTERM/SIGINT for a graceful shutdown.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from gateway.config import DEFAULTS, Config, ServerConfig, load_config
from gateway.pkix import fingerprint
from gateway.server.app import LISTENERS, create_app
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


async def _prepare(config: Config) -> str:
    components = await build(config)
    try:
        chain = await components.service.ca_chain()
        return fingerprint(chain[-1]) if chain else "(no CA chain)"
    finally:
        await components.close()


async def _serve_async(config: Config, *, reuse_port: bool, announce: str | None) -> None:
    app = await create_app(config)
    runner = web.AppRunner(
        app,
        handle_signals=False,
        access_log=None,
        shutdown_timeout=float(config.server.shutdown_timeout),
    )
    await runner.setup()
    site = web.TCPSite(runner, config.server.host, config.server.port, reuse_port=reuse_port)
    await site.start()
    for listener in app[LISTENERS]:
        extra = web.TCPSite(
            runner,
            listener.host,
            listener.port,
            ssl_context=listener.ssl_context,
            reuse_port=reuse_port,
        )
        await extra.start()
        scheme = "https" if listener.ssl_context else "http"
        if announce is not None:
            print(f"  {listener.name:15} {scheme}://{listener.host}:{listener.port}", flush=True)
    if announce is not None:
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        port = sockets[0].getsockname()[1] if sockets else config.server.port
        host = f"[{config.server.host}]" if ":" in config.server.host else config.server.host
        print(f"certgate listening on http://{host}:{port}", flush=True)
        print(f"  external URL    {config.server.external_url}", flush=True)
        print(f"  root CA SHA-256 {announce}", flush=True)
        print(f"  data directory  {config.data_dir}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    await runner.cleanup()


def _worker(file: str, data_dir: Path, server: ServerConfig) -> None:
    # Configs hold read-only mappings that do not pickle: each worker re-reads the file.
    path = None if file == DEFAULTS else Path(file)
    config = dataclasses.replace(load_config(path, data_dir=data_dir), server=server)
    logging.basicConfig(
        level=config.log_level,
        format="%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s",
    )
    run_loop(_serve_async(config, reuse_port=True, announce=None))


def serve(config: Config, *, workers: int = 1) -> int:
    """Run the gateway until SIGTERM/SIGINT. Returns the process exit code."""
    if workers < 1:
        print("certgate: --workers must be at least 1", file=sys.stderr)
        return 2
    if workers > 1 and config.server.port == 0:
        print("certgate: --workers > 1 needs a fixed --port", file=sys.stderr)
        return 2
    fp = run_loop(_prepare(config))
    if workers == 1:
        run_loop(_serve_async(config, reuse_port=False, announce=fp))
        return 0
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
