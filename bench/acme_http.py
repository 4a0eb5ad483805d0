"""The ACME load driver's HTTP/1.1 client (see bench/acme_load.py).

Why not aiohttp's client: the driver shares the machine's cores with the server under test, so
it is kept light; this client does only what the driver needs and is the same code for
certgate and Pebble. tests/integration/test_acme_load_driver.py checks what it reads.
"""

from __future__ import annotations

import asyncio
import ssl
from urllib.parse import urlsplit


class Connection:
    """One keep-alive HTTP/1.1 connection (plain or TLS) to the server under test.

    Why not aiohttp's client: the driver shares the two cores with the server, and a
    client session's per-request machinery (URL objects, timers, connection pool, payload
    objects) cost about as much CPU as the ACME signing; this does only what the driver
    needs (Content-Length or chunked bodies, one request at a time) and is the same code for
    certgate and Pebble."""

    def __init__(self, origin: str, ssl_ctx: ssl.SSLContext | None) -> None:
        parts = urlsplit(origin)
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.ssl = ssl_ctx
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.reader = self.writer = None

    async def request(
        self, method: str, url: str, body: bytes = b"", content_type: str = ""
    ) -> tuple[int, dict[str, str], bytes]:
        """Send one request to ``url`` (on this connection's origin); status, headers (names
        in lower case) and body. A kept-alive connection the server closed is reopened."""
        if not url.startswith(self.origin):
            raise ValueError(f"{url} is not on {self.origin}")
        path = url[len(self.origin) :] or "/"
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
        if content_type:
            head += f"Content-Type: {content_type}\r\n"
        if body or method == "POST":
            head += f"Content-Length: {len(body)}\r\n"
        data = head.encode() + b"\r\n" + body
        for attempt in (1, 2):
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection(
                    self.host, self.port, ssl=self.ssl
                )
            assert self.reader is not None
            self.writer.write(data)
            try:
                status_line = await self.reader.readuntil(b"\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                await self.close()
                if attempt == 2:
                    raise
                continue
            return await self._response(status_line, method)
        raise AssertionError("unreachable")

    async def _response(self, status_line: bytes, method: str) -> tuple[int, dict[str, str], bytes]:
        assert self.reader is not None
        status = int(status_line.split(b" ", 2)[1])
        raw = await self.reader.readuntil(b"\r\n\r\n")
        headers: dict[str, str] = {}
        for line in raw.decode("latin-1").split("\r\n"):
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        if method == "HEAD" or status in (204, 304):
            body = b""
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                chunk = await self.reader.readexactly(size + 2)
                if size == 0:
                    await self._skip_trailers(chunk)
                    break
                chunks.append(chunk[:-2])
            body = b"".join(chunks)
        elif "content-length" in headers:
            body = await self.reader.readexactly(int(headers["content-length"]))
        else:
            # neither length nor chunks: the body ends where the server closes the connection
            # (HTTP/1.1 allows it; uWSGI's http-socket answers acme2certifier's so)
            body = await self.reader.read()
            await self.close()
            return status, headers, body
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return status, headers, body

    async def _skip_trailers(self, first: bytes) -> None:
        assert self.reader is not None
        line = first
        while line != b"\r\n":
            line = await self.reader.readuntil(b"\r\n")
