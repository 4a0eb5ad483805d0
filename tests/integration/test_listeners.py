"""Every listener of the server shell (issue #12 items 14, 15, 17): read timeouts for request
heads and bodies, one quiet line per malformed request without its header values, and a port
in use refused before anything is created. Real sockets against the real app factory, started
by the shell's own ``start_listeners``; ``[server]`` timeouts of one second."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from gateway.cli import main
from gateway.config import Config, load_config
from gateway.server.app import create_app
from gateway.server.run import bind_main, start_listeners
from tests.est_helpers import write_est_config
from tests.helpers import certgate, free_port, write_config

TIMEOUTS = 'access_log = false\nheader_timeout = "1s"\nbody_timeout = "1s"'
SECRET = "c2VjcmV0LXVzZXI6aHVudGVyMg=="  # base64 "secret-user:hunter2"


def _short_timeouts(cfg: Path) -> Config:
    cfg.write_text(cfg.read_text().replace("access_log = false", TIMEOUTS, 1))
    return load_config(cfg)


async def _slow_reader(request: web.Request) -> web.Response:
    return web.Response(text=f"{len(await request.read())} bytes\n")


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[int]:
    """The main listener's port."""
    config = _short_timeouts(write_config(tmp_path))
    sockets = bind_main(config, reuse_port=False)
    app = await create_app(config)
    app.router.add_post("/test/read-body", _slow_reader)
    runner = await start_listeners(app, config, sockets, reuse_port=False)
    try:
        yield sockets[0].getsockname()[1]
    finally:
        await runner.cleanup()


async def _exchange(
    port: int, *parts: bytes, tls: ssl.SSLContext | None = None, pause: float = 0.0
) -> tuple[bytes, float]:
    """Send ``parts`` (``pause`` seconds apart), then read until the server closes."""
    started = time.monotonic()
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=tls, server_hostname="localhost" if tls else None
    )
    try:
        for i, part in enumerate(parts):
            if i and pause:
                await asyncio.sleep(pause)
            writer.write(part)
            await writer.drain()
        received = await asyncio.wait_for(reader.read(), 8)
    finally:
        writer.close()
    return received, time.monotonic() - started


async def test_partial_request_head_gets_408_and_is_closed(gateway: int) -> None:
    received, elapsed = await _exchange(gateway, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow")
    assert received.startswith(b"HTTP/1.1 408 "), received
    assert 0.8 < elapsed < 5


async def test_silent_connection_is_closed_without_an_answer(gateway: int) -> None:
    received, elapsed = await _exchange(gateway)
    assert received == b"" and 0.8 < elapsed < 5


async def test_kept_alive_connection_times_the_next_head_from_its_first_byte(
    gateway: int,
) -> None:
    received, elapsed = await _exchange(
        gateway,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHo",
        pause=0.7,  # the whole exchange outlasts one header timeout: the clock restarted
    )
    assert received.startswith(b"HTTP/1.1 200 ") and b"HTTP/1.1 408 " in received, received
    assert 1.5 < elapsed < 6


async def test_slow_request_body_gets_408_and_is_closed(gateway: int) -> None:
    head = b"POST /test/read-body HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"
    received, elapsed = await _exchange(gateway, head + b"0123456789")
    assert received.startswith(b"HTTP/1.1 408 "), received
    assert b"did not arrive in time" in received
    assert 0.8 < elapsed < 5


async def test_body_in_time_is_read(gateway: int) -> None:
    head = (
        b"POST /test/read-body HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Content-Length: 20\r\n\r\n"
    )
    received, _ = await _exchange(gateway, head + b"0123456789", b"0123456789" + b"", pause=0.3)
    assert received.startswith(b"HTTP/1.1 200 ") and b"20 bytes" in received, received


async def test_est_tls_listener_has_the_same_timeouts(tmp_path: Path) -> None:
    est_port = free_port()
    config = _short_timeouts(write_est_config(tmp_path, est_port=est_port))
    sockets = bind_main(config, reuse_port=False)
    runner = await start_listeners(await create_app(config), config, sockets, reuse_port=False)
    try:
        tls = ssl.create_default_context()
        tls.check_hostname, tls.verify_mode = False, ssl.CERT_NONE
        received, elapsed = await _exchange(
            est_port, b"GET /.well-known/est/cacerts HTTP/1.1\r\nHost: x\r\n", tls=tls
        )
        assert received.startswith(b"HTTP/1.1 408 ") and 0.8 < elapsed < 5, received
        # A client that never starts the TLS handshake is not held either.
        received, elapsed = await _exchange(est_port)
        assert received == b"" and 0.8 < elapsed < 5
    finally:
        await runner.cleanup()


async def test_malformed_requests_log_one_line_without_header_values(
    gateway: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    bad = (
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nAuthorization: Basic " + SECRET.encode() + b"\x01"
        b"\r\n\r\n"
    )
    answers = [(await _exchange(gateway, bad))[0] for _ in range(3)]
    assert all(a.split(b"\r\n")[0].endswith(b" 400 Bad Request") for a in answers), answers
    assert all(SECRET.encode() not in a for a in answers), answers
    server = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert len(server) == 1, [r.getMessage() for r in server]  # rate-limited
    (line,) = server
    assert line.levelno == logging.WARNING and line.exc_info is None and line.exc_text is None
    assert line.getMessage().startswith("bad request from 127.0.0.1: BadHttpMessage")
    assert SECRET not in caplog.text and "secret" not in caplog.text.lower()
    assert "Traceback" not in caplog.text


def test_port_in_use_is_one_line_before_anything_is_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code = main(["serve", "-c", str(cfg), "--port", str(port)])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "[server] host/port" in err and f"127.0.0.1:{port}" in err and "in use" in err, err
    assert not (tmp_path / "data").exists()


def test_port_served_by_another_gateway_is_refused_for_workers_too(tmp_path: Path) -> None:
    # A real process: were the port joined, it would go on serving with two workers (the
    # timeout bounds that failure).
    cfg = write_config(tmp_path)
    with socket.socket() as other:  # another gateway's worker: it shares with SO_REUSEPORT
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        proc = certgate("serve", "-c", str(cfg), "--port", str(port), "--workers", "2", timeout=60)
    assert proc.returncode == 2
    err = proc.stderr.strip()
    assert "[server] host/port" in err and "in use" in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "data").exists()
