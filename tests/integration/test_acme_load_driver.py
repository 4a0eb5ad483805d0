"""The ACME load driver's HTTP/1.1 client (bench/acme_http.py ``Connection``) reads what both
servers under test send: Content-Length bodies (certgate), chunked bodies (Pebble's Go server
for larger answers), HEAD answers without a body, and a connection the server closed."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from aiohttp import web

BENCH = Path(__file__).resolve().parents[2] / "bench" / "acme_http.py"


def _driver() -> ModuleType:
    spec = importlib.util.spec_from_file_location("acme_http", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("acme_http", module)
    spec.loader.exec_module(module)
    return module


async def _sized(request: web.Request) -> web.Response:
    body = await request.read()
    return web.Response(body=b"got " + body, headers={"Replay-Nonce": "n1"})


async def _chunked(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Replay-Nonce": "n2"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    for part in (b"-----BEGIN CERTIFICATE-----\n", b"x" * 5000, b"\n"):
        await response.write(part)
    await response.write_eof()
    return response


async def _closing(request: web.Request) -> web.Response:
    return web.Response(body=b"bye", headers={"Connection": "close"})


async def test_the_driver_reads_sized_chunked_head_and_closed_answers(
    aiohttp_server: Any,
) -> None:
    app = web.Application()
    app.router.add_post("/sized", _sized)
    app.router.add_get("/chunked", _chunked)
    app.router.add_route("HEAD", "/nonce", _sized)
    app.router.add_get("/closing", _closing)
    server = await aiohttp_server(app)
    origin = f"http://127.0.0.1:{server.port}"
    http = _driver().Connection(origin + "/dir", None)
    try:
        status, headers, body = await http.request("POST", origin + "/sized", b"{}", "x/y")
        assert (status, headers["replay-nonce"], body) == (200, "n1", b"got {}")
        status, headers, body = await http.request("GET", origin + "/chunked")
        assert status == 200 and headers["replay-nonce"] == "n2"
        assert body == b"-----BEGIN CERTIFICATE-----\n" + b"x" * 5000 + b"\n"
        status, headers, body = await http.request("HEAD", origin + "/nonce")
        assert (status, headers["replay-nonce"], body) == (200, "n1", b"")
        assert (await http.request("GET", origin + "/closing"))[2] == b"bye"
        assert http.writer is None
        status, _, body = await http.request("POST", origin + "/sized", b"again")
        assert (status, body) == (200, b"got again")
        status, _, _ = await http.request("GET", origin + "/missing")
        assert status == 404
    finally:
        await http.close()
