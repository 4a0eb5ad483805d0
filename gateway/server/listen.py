"""Every listener of the server shell: sockets bound before anything else, read timeouts for
request headers and bodies, and a quiet, secret-free log of malformed requests.

One mechanism for every socket the gateway serves -- the main listener and the extra ones the
front-ends ask for (EST's and WSTEP's TLS listeners):

* **Header timeout** (``[server] header_timeout``): a connection must deliver a complete request
  head within this time of opening, and of the first byte of each later request on a kept-alive
  connection (the shape of nginx's ``client_header_timeout`` and Go's ``ReadHeaderTimeout``).
  Otherwise it is answered ``408 Request Timeout`` (RFC 9110 §15.5.9, with ``Connection:
  close``) if it had sent anything, and closed.
* **Body timeout** (``[server] body_timeout``): once the head is in, the whole body must arrive
  within this time. A handler reading it gets ``408`` instead of waiting for a trickle, and the
  connection is closed. Front-ends may bound their own reads more tightly (WSTEP's
  ``read_timeout`` answers a SOAP fault).
* **Bad requests** (aiohttp's ``aiohttp.server`` logger): aiohttp logs a request it cannot
  parse at ERROR with a traceback whose message quotes the raw bytes -- including an
  ``Authorization: Basic`` header. :class:`BadRequestLog` turns each into one line naming the
  peer and the parser's reason, never a header value, at most one line per interval with the
  count of those left out; the 400 answered to the client no longer echoes the bytes either.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler

#: What the server shell passes to every request handler (as AppRunner would to its Server):
#: no aiohttp access log (the app logs each request), and idle kept-alive connections closed
#: after 75 s (nginx's default) instead of aiohttp 3.14's hour.
HANDLER_ARGS: dict[str, Any] = {"access_log": None, "keepalive_timeout": 75.0}

_REQUEST_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Type: text/plain\r\n"
    b"Content-Length: 37\r\n\r\nthe request did not arrive in time.\r\n"
)
# A parser message's first line is kept only when it is a fixed phrase ("Invalid header value
# char"): anything quoted or longer may carry the client's bytes.
_SAFE_REASON = re.compile(r"[A-Za-z][A-Za-z0-9 ,()-]{0,79}")


@dataclass(frozen=True)
class ReadTimeouts:
    """``[server] header_timeout`` and ``body_timeout``, in seconds."""

    header: float = 10.0
    body: float = 30.0


class ListenError(Exception):
    """A listener cannot be opened: ``key`` is the configuration key naming its address."""

    def __init__(self, key: str, address: str, reason: str) -> None:
        super().__init__(f"{key} {address}: cannot listen: {reason}")
        self.key = key


def bind(host: str, port: int, *, key: str, reuse_port: bool = False) -> list[socket.socket]:
    """Listening sockets for every address ``host`` resolves to, or :class:`ListenError`.

    Bound (and listening) before anything else is created, so that a port in use stops the
    start-up before a CA or database is made for a gateway that cannot serve.
    """
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ListenError(key, address, exc.strerror or str(exc)) from None
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, addr in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(addr)
            sock.listen(128)
            sock.setblocking(False)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        raise ListenError(key, address, exc.strerror or str(exc)) from None
    return sockets


class BadRequestLog(logging.Filter):
    """On ``aiohttp.server``: a request aiohttp could not parse becomes one line without
    header values or traceback; at most one per ``interval`` seconds, the next one counting
    those left out. Other records pass untouched."""

    def __init__(self, interval: float = 10.0, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.interval = interval
        self._clock = clock
        self._next = float("-inf")
        self._suppressed = 0

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, HttpProcessingError):
            return True
        now = self._clock()
        if now < self._next:
            self._suppressed += 1
            return False
        peer = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
        more = f" ({self._suppressed} more since the last line)" if self._suppressed else ""
        record.msg = "bad request from %s: %s%s"
        record.args = (peer, bad_request_reason(exc), more)
        record.exc_info = record.exc_text = record.stack_info = None
        if record.levelno > logging.WARNING:
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        self._next = now + self.interval
        self._suppressed = 0
        return True


def bad_request_reason(exc: HttpProcessingError) -> str:
    """``InvalidURLError: Invalid char in url path`` -- the parser's fixed phrase, no bytes."""
    first = str(exc.message).strip().split("\n", 1)[0].rstrip(":").strip()
    phrase = first if _SAFE_REASON.fullmatch(first) else ""
    return f"{type(exc).__name__}: {phrase}" if phrase else type(exc).__name__


def install_bad_request_log(interval: float = 10.0) -> BadRequestLog:
    """Put one :class:`BadRequestLog` on ``aiohttp.server`` (again: the one already there)."""
    logger = logging.getLogger("aiohttp.server")
    for existing in logger.filters:
        if isinstance(existing, BadRequestLog):
            return existing
    installed = BadRequestLog(interval)
    logger.addFilter(installed)
    return installed


class RequestBodyTimeout(web.HTTPRequestTimeout):
    """The request body did not arrive within ``[server] body_timeout``."""

    def __init__(self) -> None:
        super().__init__(text="the request body did not arrive in time\n")
        self.force_close()


class GuardedRequestHandler(RequestHandler):
    """aiohttp's request handler with the header and body read timeouts (module docstring).

    The header clock starts when the connection opens and, between requests, at the first
    byte of the next one; :func:`read_timeout_middleware` stops it when the head has been
    parsed and a handler starts, and starts the body clock.
    """

    def __init__(self, manager: Any, *, timeouts: ReadTimeouts, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self.timeouts = timeouts
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._head_bytes = 0
        self._in_handler = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._start_head_clock()

    def data_received(self, data: bytes) -> None:
        if not self._in_handler:
            if self._head_timer is None:
                self._start_head_clock()
            self._head_bytes += len(data)
        super().data_received(data)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._stop_head_clock()
        if self._body_timer is not None:
            self._body_timer.cancel()
        super().connection_lost(exc)

    def handle_error(
        self,
        request: Any,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """aiohttp's error answer, without echoing the bytes it could not parse."""
        if isinstance(exc, HttpProcessingError):
            message = f"{status} {HTTPStatus(status).phrase}: {bad_request_reason(exc)}\n"
        return super().handle_error(request, status, exc, message)

    def request_started(self, request: web.BaseRequest) -> None:
        """The head is in and a handler runs: stop the header clock, start the body's."""
        self._stop_head_clock()
        self._in_handler = True
        payload = request.content
        if payload.is_eof():
            return
        loop = asyncio.get_running_loop()
        self._body_timer = loop.call_later(self.timeouts.body, self._body_too_slow, payload)
        payload.on_eof(self._body_timer.cancel)

    def request_finished(self) -> None:
        """The handler returned: a body it left unread is aiohttp's to drain (lingering)."""
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        self._in_handler = False
        self._head_bytes = 0

    def _start_head_clock(self) -> None:
        self._head_bytes = 0
        self._head_timer = asyncio.get_running_loop().call_later(
            self.timeouts.header, self._head_too_slow
        )

    def _stop_head_clock(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self._in_handler:  # a pipelined request's head: time it after this one
            self._start_head_clock()
            return
        transport = self.transport
        if transport is not None and self._head_bytes and not transport.is_closing():
            transport.write(_REQUEST_TIMEOUT)
        self.force_close()

    def _body_too_slow(self, payload: Any) -> None:
        # No more bytes are parsed (close), the handler's read raises 408 (set_exception),
        # and aiohttp does not linger reading the rest (feed_eof).
        self.close()
        payload.set_exception(RequestBodyTimeout())
        payload.feed_eof()


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def read_timeout_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Tell the connection's :class:`GuardedRequestHandler` a request has started and ended
    (a no-op under other servers, e.g. aiohttp's test server)."""
    protocol = request.protocol
    if not isinstance(protocol, GuardedRequestHandler):
        return await handler(request)
    protocol.request_started(request)
    try:
        return await handler(request)
    finally:
        protocol.request_finished()


class GuardedSite(web.SockSite):
    """A listener on an already bound socket, served by :class:`GuardedRequestHandler`."""

    def __init__(
        self,
        runner: web.AppRunner,
        sock: socket.socket,
        *,
        timeouts: ReadTimeouts,
        ssl_context: Any = None,
    ) -> None:
        super().__init__(runner, sock, ssl_context=ssl_context)
        self.sock = sock
        self.tls = ssl_context
        self.timeouts = timeouts

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site; SockSite.start would serve plainly
        server = self._runner.server
        assert server is not None
        loop = asyncio.get_running_loop()

        def protocol() -> GuardedRequestHandler:
            return GuardedRequestHandler(server, loop=loop, timeouts=self.timeouts, **HANDLER_ARGS)

        if self.tls is None:
            self._server = await loop.create_server(protocol, sock=self.sock)
        else:  # the TLS handshake gets the header timeout too (asyncio's default is 60 s)
            self._server = await loop.create_server(
                protocol, sock=self.sock, ssl=self.tls, ssl_handshake_timeout=self.timeouts.header
            )
