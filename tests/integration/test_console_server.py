"""The console's server side (/console/): sign-in, the session cookie, sign-out, the static
files and the security headers on every answer, on the real app and real TLS listener
(:func:`tests.gateway_process.gateway_in_process`). What the console does in a browser is
tests/interop/test_console_browser.py's."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path

import aiohttp
import pytest

from gateway.server.admin.auth import csrf_token
from gateway.server.console import CONTENT_SECURITY_POLICY, STATIC_TYPES
from tests.est_helpers import write_est_config
from tests.gateway_process import gateway_in_process
from tests.helpers import certgate, free_port, init_gateway, write_config

STATIC = resources.files("gateway.server.console").joinpath("static")


@dataclass
class Console:
    base: str
    session: aiohttp.ClientSession
    approver: str
    revoked: str

    async def get(self, path: str, **kw: object) -> aiohttp.ClientResponse:
        return await self.session.get(self.base + path, allow_redirects=False, **kw)  # type: ignore[arg-type]

    async def post(self, path: str, **kw: object) -> aiohttp.ClientResponse:
        return await self.session.post(self.base + path, allow_redirects=False, **kw)  # type: ignore[arg-type]

    @property
    def origin(self) -> dict[str, str]:
        return {"Origin": self.base}

    @staticmethod
    def cookie(token: str) -> dict[str, str]:
        return {"Cookie": f"certgate_console={token}"}

    async def sign_in(self, token: str) -> aiohttp.ClientResponse:
        return await self.post("/console/login", data={"token": token}, headers=self.origin)


def _token(cfg: Path, name: str, role: str) -> str:
    out = certgate("admin", "token", "create", "--name", name, "--role", role, "-c", str(cfg))
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.fixture
async def console(tmp_path: Path) -> AsyncIterator[Console]:
    cfg = write_config(tmp_path, '[server.tls]\nnames = ["localhost", "127.0.0.1"]\n')
    init_gateway(cfg)
    approver = _token(cfg, "alice", "approver")
    revoked = _token(cfg, "gone", "viewer")
    assert certgate("admin", "token", "revoke", "gone", "-c", str(cfg)).returncode == 0
    async with (
        gateway_in_process(cfg) as port,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False)) as session,
    ):
        yield Console(f"https://127.0.0.1:{port}", session, approver, revoked)


def _assert_secured(response: aiohttp.ClientResponse, *, page: bool = True) -> None:
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    if page:
        assert response.headers["Cache-Control"] == "no-store"


class _Markup(HTMLParser):
    """Collects what a strict CSP would refuse: inline script, inline style, handlers."""

    def __init__(self) -> None:
        super().__init__()
        self.inline: list[str] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        for name in names:
            if name == "style" or name.startswith("on"):
                self.inline.append(f"<{tag} {name}>")
        if tag == "style":
            self.inline.append("<style>")
        if tag == "script":
            self._in_script = True
            if not names.get("src"):
                self.inline.append("<script> without src")
            else:
                self.scripts.append(str(names["src"]))
        if tag == "a" and (names.get("href") or "").lower().startswith("javascript:"):
            self.inline.append("javascript: URL")

    def handle_endtag(self, tag: str) -> None:
        self._in_script = self._in_script and tag != "script"

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline.append("script body")


def _cookie_of(response: aiohttp.ClientResponse) -> str:
    return response.headers.get("Set-Cookie", "")


async def test_without_a_session_the_console_is_the_sign_in_page(console: Console) -> None:
    r = await console.get("/console/")
    assert r.status == 200
    _assert_secured(r)
    text = await r.text()
    assert 'action="/console/login"' in text and 'name="token"' in text
    bare = await console.get("/console")
    assert bare.status == 301 and bare.headers["Location"] == "/console/"
    _assert_secured(bare)


@pytest.mark.parametrize("page", ["login.html", "app.html"])
def test_pages_hold_no_inline_script_or_style(page: str) -> None:
    markup = _Markup()
    markup.feed(STATIC.joinpath(page).read_text())
    assert markup.inline == []
    assert markup.scripts and all(s.startswith("/console/static/") for s in markup.scripts)


def test_scripts_never_build_markup_from_strings() -> None:
    # The rule that keeps a CSR subject from becoming markup: DOM calls and textContent only.
    banned = re.compile(
        r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function"
    )
    for name in STATIC_TYPES:
        if name.endswith(".js"):
            assert not banned.findall(STATIC.joinpath(name).read_text()), name


async def test_every_static_file_is_served_with_its_type_and_the_headers(console: Console) -> None:
    for name, media_type in STATIC_TYPES.items():
        r = await console.get(f"/console/static/{name}")
        assert r.status == 200, name
        assert r.content_type == media_type
        _assert_secured(r, page=False)
    for name in ("nope.js", "..%2f__init__.py", "app.html"):
        missing = await console.get(f"/console/static/{name}")
        assert missing.status == 404
        _assert_secured(missing)
    unknown = await console.get("/console/admin")
    assert unknown.status == 404
    _assert_secured(unknown)


async def test_sign_in_sets_a_strict_http_only_cookie(console: Console) -> None:
    r = await console.post(
        "/console/login", data={"token": console.approver}, headers=console.origin
    )
    assert r.status == 303 and r.headers["Location"] == "/console/"
    _assert_secured(r)
    cookie = _cookie_of(r)
    assert cookie.startswith(f"certgate_console={console.approver};")
    attributes = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "secure", "samesite=strict", "path=/"} <= attributes
    shell = await console.get(
        "/console/", headers={"Cookie": f"certgate_console={console.approver}"}
    )
    assert shell.status == 200
    _assert_secured(shell)
    assert "/console/static/app.js" in await shell.text()


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Referer": "https://evil.example/x"},
    ],
)
async def test_sign_in_from_another_origin_is_refused(
    console: Console, headers: dict[str, str]
) -> None:
    r = await console.post("/console/login", data={"token": console.approver}, headers=headers)
    assert r.status == 403
    assert "certgate_console" not in _cookie_of(r)
    _assert_secured(r)


async def test_sign_in_with_a_referer_of_this_origin_is_accepted(console: Console) -> None:
    headers = {"Referer": f"{console.base}/console/"}
    r = await console.post("/console/login", data={"token": console.approver}, headers=headers)
    assert r.status == 303


@pytest.mark.parametrize("token", ["", "cg_not-a-real-token", "Bearer whatever"])
async def test_a_bad_token_is_refused_without_a_cookie(console: Console, token: str) -> None:
    r = await console.post("/console/login", data={"token": token}, headers=console.origin)
    assert r.status in (400, 401)
    assert "certgate_console" not in _cookie_of(r)
    text = await r.text()
    assert 'class="error"' in text
    assert not token or token not in text  # the token is never echoed


async def test_a_revoked_token_neither_signs_in_nor_keeps_a_session(console: Console) -> None:
    r = await console.post(
        "/console/login", data={"token": console.revoked}, headers=console.origin
    )
    assert r.status == 401
    page = await console.get("/console/", headers=console.cookie(console.revoked))
    assert 'action="/console/login"' in await page.text()


async def test_sign_out_needs_the_csrf_header_or_this_origin(console: Console) -> None:
    cookie = {"Cookie": f"certgate_console={console.approver}"}
    refused = await console.post("/console/logout", headers=cookie)
    assert refused.status == 403
    wrong = await console.post("/console/logout", headers={**cookie, "X-CSRF-Token": "00" * 32})
    assert wrong.status == 403
    r = await console.post(
        "/console/logout", headers={**cookie, "X-CSRF-Token": csrf_token(console.approver)}
    )
    assert r.status == 303
    cleared = _cookie_of(r)
    assert cleared.startswith("certgate_console=") and "max-age=0" in cleared.lower()


async def test_without_tls_on_the_main_listener_there_is_no_console(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    init_gateway(cfg)
    async with gateway_in_process(cfg) as port, aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/console/") as r:
            assert r.status == 404


async def test_a_front_end_listener_does_not_serve_the_console(tmp_path: Path) -> None:
    # EST's own TLS listener serves the same application: the console stays off it.
    est_port = free_port()
    cfg = write_est_config(
        tmp_path, est_port=est_port, extra='[server.tls]\nnames = ["localhost", "127.0.0.1"]\n'
    )
    init_gateway(cfg)
    async with (
        gateway_in_process(cfg) as port,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False)) as session,
    ):
        async with session.get(f"https://127.0.0.1:{est_port}/console/") as r:
            assert r.status == 404 and "/console/login" not in await r.text()
        async with session.get(f"https://127.0.0.1:{port}/console/") as r:
            assert r.status == 200


async def test_without_the_admin_api_there_is_no_console(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, '[server.tls]\nnames = ["127.0.0.1"]\n[admin]\nenabled = false\n')
    init_gateway(cfg)
    async with (
        gateway_in_process(cfg) as port,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False)) as session,
    ):
        async with session.get(f"https://127.0.0.1:{port}/console/") as r:
            assert r.status == 404
