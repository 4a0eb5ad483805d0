"""A loopback CES for the ``ms_ces`` connector tests: it replays the MS-WSTEP fixtures
(tests/vectors/ms) with a scripted outcome per request (the ``ces`` fixture), plus an in-memory
issuance journal, a connector and an issuance plan to drive it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from backends.ms_ces import MSCESConnector
from gateway.model import IssuancePlan
from gateway.ports import ConnectorContext
from tests.helpers import free_port, make_csr
from tests.wstep_helpers import VECTORS


class MemoryJournal:
    def __init__(self) -> None:
        self.entries: dict[str, bytes] = {}

    async def get(self, request_id: str) -> bytes | None:
        return self.entries.get(request_id)

    async def put(self, request_id: str, certificate_der: bytes) -> bytes:
        return self.entries.setdefault(request_id, certificate_der)


@dataclass
class FakeCES:
    """Answers every POST with ``reply`` (fixture name, status) and records requests."""

    reply: tuple[str, int] = ("rstrc_issued.xml", 200)
    delay: float = 0.0
    plain: tuple[int, str] | None = None
    #: a built answer instead of a fixture (body, status)
    answer: tuple[bytes, int] | None = None
    seen: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    peers: list[object] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append((dict(request.headers), await request.read()))
        transport = request.transport
        self.peers.append(transport.get_extra_info("peername") if transport else None)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.plain is not None:
            return web.Response(status=self.plain[0], text=self.plain[1])
        if self.answer is not None:
            return web.Response(
                body=self.answer[0], status=self.answer[1], content_type="application/soap+xml"
            )
        name, status = self.reply
        return web.Response(
            body=(VECTORS / name).read_bytes(), status=status, content_type="application/soap+xml"
        )


@pytest.fixture
async def ces() -> AsyncIterator[tuple[FakeCES, int]]:
    fake = FakeCES()
    app = web.Application()
    app.router.add_post("/CES", fake.handle)
    app.router.add_post("/CEP", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    yield fake, port
    await runner.cleanup()


def connector(port: int, journal: MemoryJournal | None = None, **extra: Any) -> MSCESConnector:
    settings = {
        "url": f"http://127.0.0.1:{port}/CES",
        "policy_url": f"http://127.0.0.1:{port}/CEP",
        "allow_http": True,
        "username": "svc-certgate",
        "password": "env:CES_TEST_PASSWORD",
        "issuer_chain": str(VECTORS / "chain.pem"),
        "retry_after": "7s",
        "timeout": "1s",
        **extra,
    }
    settings = {k: v for k, v in settings.items() if v is not None}
    return MSCESConnector(
        ConnectorContext(
            "adcs", settings, Path("/nonexistent"), journal or MemoryJournal(), "t.toml"
        )
    )


def plan(request_id: str = "req-1", adcs: str | None = "WebServer") -> IssuancePlan:
    csr = make_csr(cn="a.example", dns=("a.example",))
    now = datetime.now(UTC)
    return IssuancePlan(
        request_id=request_id,
        template="tls-server",
        template_oid="2.25.1",
        template_major=100,
        template_minor=0,
        connector="adcs",
        subject=csr.subject,
        public_key=csr.public_key(),  # type: ignore[arg-type]
        not_before=now,
        not_after=now + timedelta(days=1),
        extensions=(),
        csr=csr,
        connector_params={"adcs_template": adcs} if adcs else {},
    )


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CES_TEST_PASSWORD", "s3cret-pw")


async def _run(port: int, call: Callable[[MSCESConnector], Any], **extra: Any) -> Any:
    conn = connector(port, **extra)
    await conn.start()
    try:
        return await call(conn)
    finally:
        await conn.close()
