"""pytest fixtures shared by the in-process ACME integration tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gateway.config import load_config
from gateway.server.app import create_app
from tests.acme_helpers import Client, acme_config

ALWAYS_VALID = "acme_always_valid = true\n"


@pytest.fixture
def make_client(
    tmp_path: Path, aiohttp_client: Any, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Any]:
    """``await make_client(acme_toml, testing=...)`` -> a Client on a fresh gateway; further
    clients on the same gateway: ``Client(first.http)``."""
    monkeypatch.setenv("CERTGATE_TESTING", "1")

    async def make(acme: str = "", testing: str = ALWAYS_VALID, **kw: Any) -> Client:
        cfg = acme_config(tmp_path, acme, testing=testing, **kw)
        app = await create_app(load_config(cfg))
        client = Client(await aiohttp_client(app))
        await client.get_directory()
        return client

    return make


@pytest.fixture
async def client(make_client: Callable[..., Any]) -> Client:
    c: Client = await make_client('profiles = ["acme-tls", "tls-server", "approval-required"]\n')
    r = await c.register(contact=["mailto:ops@example.com"])
    assert r.status == 201, r.body
    return c


async def other(c: Client) -> Client:
    """A second registered account on the same gateway."""
    o = Client(c.http)
    await o.get_directory()
    r = await o.register()
    assert r.status == 201
    return o
