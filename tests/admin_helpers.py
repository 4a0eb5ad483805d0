"""The admin API tests' site (``certgate init DIR`` with tokens, pending requests and
certificates) and their HTTPS client."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from gateway.admin.plugin import Role
from gateway.admin.tokens import AdminTokens
from gateway.cli import EXIT_OK, EXIT_PENDING, main
from gateway.clock import FixedClock
from gateway.config import load_config
from gateway.server.listen import ListenError
from gateway.store import default_sqlite_url, open_store
from tests.gateway_process import gateway_in_process
from tests.helpers import csr_pem, free_port, make_csr

PROBLEM_KEYS = {"type", "title", "status", "detail"}


@dataclass
class Site:
    cfg: Path
    port: int
    plain: int
    est: int
    root: Path
    tokens: dict[str, str] = field(default_factory=dict)
    pending: list[str] = field(default_factory=list)
    serials: list[str] = field(default_factory=list)

    def move_ports(self) -> None:
        """Fresh listener ports, written into the configuration (a port free when the site
        was made may since have been taken by another test worker)."""
        text = self.cfg.read_text()
        for name in ("port", "plain", "est"):
            old, new = getattr(self, name), free_port()
            text = re.sub(rf"(?<!\d){old}(?!\d)", str(new), text)
            setattr(self, name, new)
        self.cfg.write_text(text)


@contextlib.asynccontextmanager
async def serving(site: Site) -> AsyncIterator[None]:
    """The site's gateway in-process (tests.gateway_process.gateway_in_process); when one of
    its ports is taken, on fresh ports (:meth:`Site.move_ports`), up to three tries."""
    for attempt in range(3):
        stack = contextlib.AsyncExitStack()
        try:
            await stack.enter_async_context(gateway_in_process(site.cfg, port=site.port))
        except ListenError:
            await stack.aclose()
            if attempt == 2:
                raise
            site.move_ports()
            continue
        async with stack:
            yield
        return


def main_json(*argv: str) -> tuple[int, Any]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main([*argv, "--json"])
    return code, json.loads(out.getvalue())


async def expired_token(cfg: Path) -> str:
    """A viewer token that expired an hour ago (made with a clock two hours back)."""
    config = load_config(cfg)
    store = open_store(default_sqlite_url(config.data_dir))
    try:
        clock = FixedClock(datetime.now(UTC) - timedelta(hours=2))
        secret, _ = await AdminTokens(store, store, clock).create(
            "expired", Role.VIEWER, "test", timedelta(hours=1)
        )
    finally:
        await store.close()
    return secret


def make_site(tmp: Path, extra: str = "") -> Site:
    """A site from ``certgate init DIR`` (``extra`` appended to its configuration) with a
    token per role, a revoked and an expired token, four requests awaiting approval and three
    issued certificates."""
    port, plain, est, http01 = free_port(), free_port(), free_port(), free_port()
    ports = ["--port", str(port), "--plain-port", str(plain), "--est-port", str(est)]
    assert main_json("init", str(tmp / "site"), *ports)[0] == EXIT_OK
    cfg = tmp / "site" / "certgate.toml"
    text = cfg.read_text().replace("http01_port = 5002", f"http01_port = {http01}")
    cfg.write_text(text + extra)
    s = Site(cfg, port, plain, est, tmp / "site" / "data" / "root-ca.pem")
    for role in ("viewer", "approver", "admin"):
        argv = ("admin", "token", "create", "-c", str(cfg), "--name", role, "--role", role)
        code, made = main_json(*argv)
        assert code == EXIT_OK
        s.tokens[role] = made["token"]
    code, made = main_json(
        "admin", "token", "create", "-c", str(cfg), "--name", "revoked", "--role", "admin"
    )
    s.tokens["revoked"] = made["token"]
    assert main_json("admin", "token", "revoke", "-c", str(cfg), "revoked")[0] == EXIT_OK
    s.tokens["expired"] = asyncio.run(expired_token(cfg))
    enroll = ("enroll", "-c", str(cfg), "--csr")
    for i in range(4):
        csr = tmp / f"pending{i}.csr"
        csr.write_bytes(csr_pem(make_csr(cn=f"client{i}", dns=(f"client{i}.example.test",))))
        code, out = main_json(*enroll, str(csr), "--template", "approval-required")
        assert code == EXIT_PENDING
        s.pending.append(out["request_id"])
    for name in ("www", "api", "mail"):
        csr = tmp / f"{name}.csr"
        csr.write_bytes(csr_pem(make_csr(cn=f"{name}.example.test", dns=(f"{name}.example.test",))))
        code, out = main_json(*enroll, str(csr), "--template", "tls-server")
        assert code == EXIT_OK
        s.serials.append(out["serial"])
    return s


@dataclass
class Api:
    site: Site
    session: aiohttp.ClientSession

    @property
    def base(self) -> str:
        return f"https://localhost:{self.site.port}/api/v1"

    async def call(
        self,
        method: str,
        path: str,
        token: str | None = None,
        *,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], Any]:
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {self.site.tokens.get(token, token)}"
        kw: dict[str, Any] = {"headers": sent}
        if body is not None:
            kw["json"] = body
        async with self.session.request(method, self.base + path, **kw) as resp:
            raw = await resp.read()
            kind = resp.headers.get("Content-Type", "")
            data: Any = json.loads(raw) if "json" in kind else raw
            return resp.status, dict(resp.headers), data


def is_problem(status: int, headers: dict[str, str], body: Any, expected: int) -> None:
    assert status == expected, body
    assert headers["Content-Type"].startswith("application/problem+json")
    assert set(body) == PROBLEM_KEYS and body["status"] == expected
