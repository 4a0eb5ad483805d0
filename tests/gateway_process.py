"""The one way tests start a real ``certgate serve`` process.

Most tests drive the gateway in-process (the CLI through ``main(argv)``, HTTP through aiohttp's
test client on :func:`gateway.server.app.create_app`). A real process is kept only where the
process is what is tested or what a peer needs: a crash, ``--workers``, signals (SIGTERM,
SIGHUP reload), the serve banner, and real third-party clients (certbot, lego, scepclient,
certmonger, curl/openssl, cepces) or a second gateway that talks to the first over HTTP. Those
all start it here, so that start-up, readiness, logs and shutdown behave the same everywhere.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.helpers import REPO, free_port, http_ok, stop_process, wait_until_up


@dataclass
class GatewayProcess:
    """A serving gateway: its process, main listener port and log (stdout and stderr)."""

    proc: subprocess.Popen[str]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        """Everything the process has printed so far (banner and log)."""
        return self.log.read_text(errors="replace")


def healthy(port: int) -> bool:
    """The default readiness check: the main listener answers ``/healthz``."""
    return http_ok(f"http://127.0.0.1:{port}/healthz")


@contextmanager
def gateway_process(
    cfg: Path | None,
    *args: str,
    port: int | None = None,
    env: dict[str, str] | None = None,
    ready: Callable[[int], bool] = healthy,
    timeout: float = 60,
    log: Path | None = None,
    append_log: bool = False,
    stdout_to_log: bool = True,
) -> Iterator[GatewayProcess]:
    """``certgate serve [-c cfg] --port port *args`` as a real process until ``ready(port)``
        holds; SIGTERM (the graceful shutdown), then SIGKILL after 15 s, when the block ends.

        ``port`` defaults to a free loopback port; the log goes to ``log`` (default
        ``<cfg dir>/serve-<port>.log``, appended to with ``append_log``); it holds standard error
    only, standard output discarded, with ``stdout_to_log=False``. A process that exits
        before it is ready fails the test at once with its output."""
    port = port or free_port()
    if log is None:
        log = (cfg.parent if cfg is not None else Path.cwd()) / f"serve-{port}.log"
    command = [sys.executable, "-m", "gateway.cli", "serve"]
    if cfg is not None:
        command += ["-c", str(cfg)]
    command += ["--port", str(port), *args]
    with log.open("a" if append_log else "w") as out:
        proc = subprocess.Popen(
            command,
            stdout=out if stdout_to_log else subprocess.DEVNULL,
            stderr=subprocess.STDOUT if stdout_to_log else out,
            text=True,
            cwd=REPO,
            env={**os.environ, **(env or {})},
        )
    gateway = GatewayProcess(proc, port, log)
    try:
        wait_until_up(
            proc,
            lambda: ready(port),
            gateway.output,
            timeout=timeout,
            message=f"gateway on port {port} did not become ready",
        )
        yield gateway
    finally:
        stop_process(proc)


@asynccontextmanager
async def gateway_in_process(
    cfg: Path, *, port: int | None = None, env: dict[str, str] | None = None
) -> AsyncIterator[int]:
    """The real app (:func:`gateway.server.app.create_app`) on real loopback sockets with the
    real listeners (:func:`gateway.server.run.start_listeners`, as ``serve`` runs it), in this
    process and event loop; yields the main listener's port, and cleans the app up (as a
    SIGTERM would) when the block ends.

    For HTTP behaviour that needs a socket rather than aiohttp's test client (a client that
    switches between two instances, a restart) but not a process. The site must exist
    (``certgate init``): unlike ``serve``, nothing is created here. ``env`` is added to the
    environment while the block runs (the configuration reads ``env:`` references and
    ``CERTGATE_TESTING``)."""
    from gateway.config import load_config
    from gateway.server.app import create_app
    from gateway.server.listen import bind
    from gateway.server.run import start_listeners

    saved = os.environ.copy()
    os.environ.update(env or {})
    try:
        config = load_config(cfg)
        sockets = bind("127.0.0.1", port or 0, key="test listener")
        try:
            app = await create_app(config)
        except BaseException:
            for sock in sockets:
                sock.close()
            raise
        runner = await start_listeners(app, config, sockets, reuse_port=False)
        try:
            yield int(sockets[0].getsockname()[1])
        finally:
            await runner.cleanup()
    finally:
        os.environ.clear()
        os.environ.update(saved)
