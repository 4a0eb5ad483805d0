"""A real webhook receiver on loopback (aiohttp) that checks every signature, and the gateway
app run in-process with its lifecycle (so the webhook task runs as under ``serve``).

The receiver checks signatures with its own few lines of HMAC (Standard Webhooks, "Verifying
webhooks"), not with :mod:`gateway.webhooks.signing`, so a mistake there cannot hide itself.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from gateway.config import load_config
from gateway.server.app import create_app
from gateway.server.wiring import Components, build
from tests.helpers import TEMPLATES, free_port, write_config

SECRET_ENV = "CERTGATE_TEST_WEBHOOK_SECRET"
#: A Standard Webhooks secret (whsec_ + base64 of the key bytes).
SECRET = "whsec_" + base64.b64encode(b"certgate-webhook-test-key-0123456789").decode()
ALL_EVENTS = (
    "request.pending",
    "certificate.issued",
    "request.denied",
    "certificate.revoked",
    "certificate.due",
)


@dataclass(frozen=True)
class Received:
    """One POST as the receiver got it."""

    id: str
    timestamp: int
    body: bytes
    at: float

    @property
    def payload(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


def expected_signature(secret: str, msg_id: str, timestamp: str, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = msg_id.encode() + b"." + timestamp.encode() + b"." + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


@dataclass
class Receiver:
    """Answers 204 to a correctly signed POST /hook (401 otherwise), or 503 while
    ``failures`` is above zero (each answer counts one down)."""

    secret: str = SECRET
    port: int = field(default_factory=free_port)
    failures: int = 0
    received: list[Received] = field(default_factory=list)
    refused: list[Received] = field(default_factory=list)
    bad_signatures: int = 0
    #: seconds each answer is held back (a slow receiver); ``answering`` is set meanwhile
    delay: float = 0.0
    answering: asyncio.Event = field(default_factory=asyncio.Event)
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def _hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        msg_id = request.headers.get("webhook-id", "")
        stamp = request.headers.get("webhook-timestamp", "")
        given = request.headers.get("webhook-signature", "")
        if given != expected_signature(self.secret, msg_id, stamp, body):
            self.bad_signatures += 1
            return web.Response(status=401)
        got = Received(msg_id, int(stamp), body, time.monotonic())
        if self.delay:
            self.answering.set()
            await asyncio.sleep(self.delay)
        if self.failures > 0:
            self.failures -= 1
            self.refused.append(got)
            return web.Response(status=503)
        self.received.append(got)
        return web.Response(status=204)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def of_type(self, event: str) -> list[Received]:
        return [r for r in self.received if r.payload["type"] == event]

    async def wait_for(self, done: Callable[[Receiver], bool], timeout: float = 20) -> None:
        """Until ``done(self)`` holds (polling every 20 ms), else fail naming what came."""
        deadline = time.monotonic() + timeout
        while not done(self):
            if time.monotonic() > deadline:
                types = [r.payload["type"] for r in self.received]
                raise AssertionError(f"receiver timed out; got {types}")
            await asyncio.sleep(0.02)


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 20) -> None:
    """Until ``await check()`` is true (polling every 20 ms), else fail."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{check.__name__} did not hold within {timeout} s")
        await asyncio.sleep(0.02)


def webhook_config(
    tmp: Path,
    url: str,
    *,
    events: tuple[str, ...] = ALL_EVENTS,
    extra: str = "",
    store_url: str | None = None,
    data_dir: Path | None = None,
    settings: str = "",
) -> Path:
    """A gateway config (tests.helpers.write_config) with one receiver ``hook`` at ``url``,
    its own copy of the shipped templates (``tmp/templates``, for tests that add one)."""
    templates = tmp / "templates"
    if not templates.exists():
        shutil.copytree(TEMPLATES, templates)
    store = f'[store]\nurl = "{store_url}"\n' if store_url else ""
    events_toml = ", ".join(f'"{e}"' for e in events)
    cfg = write_config(
        tmp,
        f"""
{store}
[webhooks]
poll_interval = "1s"
{settings}
[webhooks.hook]
url = "{url}"
secret = "env:{SECRET_ENV}"
events = [{events_toml}]
timeout = "5s"
{extra}
""",
    )
    text = cfg.read_text().replace(str(TEMPLATES), str(templates))
    if data_dir is not None:
        text = text.replace(str(tmp / "data"), str(data_dir))
    cfg.write_text(text)
    return cfg


@asynccontextmanager
async def running(cfg: Path) -> AsyncIterator[Components]:
    """The real app with its lifecycle (poller, webhook task) on components built from
    ``cfg``; yields the components (the service to enroll through). Leaving the block is the
    app's cleanup, as a SIGTERM to ``serve``."""
    config = load_config(cfg)
    components = await build(config)
    try:
        app = await create_app(config, components)
        runner = web.AppRunner(app)
        await runner.setup()  # runs the lifecycle's start: the webhook task starts
        try:
            yield components
        finally:
            await runner.cleanup()
    finally:
        await components.close()
