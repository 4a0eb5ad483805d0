# ruff: noqa: F811  (pytest fixtures imported from tests.acme_fixtures)
"""The ACME front-end's fast paths against its plain ones, on a live gateway (SQLite).

``Acme.read``: a POST-as-GET's read runs in the transaction that takes the request's nonce
(one transaction instead of two); it must answer exactly what a plain read answers, take the
nonce once, and refuse a nonce already used.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from protocols.acme import base
from protocols.acme.base import ACME, Acme
from protocols.acme.messages import Problem
from tests.acme_fixtures import client, make_client  # noqa: F401  (fixtures)
from tests.acme_helpers import Client


def _request(nonce: str) -> Any:
    """What :meth:`Acme.read` uses of an authenticated request: its storage (a dict)."""
    return {base._SIGNED: SimpleNamespace(jws=SimpleNamespace(nonce=nonce), cached=False)}


async def test_read_in_the_nonce_transaction_equals_a_plain_read(client: Client) -> None:
    order, fin = await client.issue("read-paths.example.com")
    assert fin.status == 200, fin.body
    acme: Acme = client.http.app[ACME]
    order_id = order["url"].rsplit("/", 1)[1]
    authz_id = order["authorizations"][0].rsplit("/", 1)[1]
    serial = fin.json["certificate"].rsplit("/", 1)[1]
    reads: list[tuple[Any, tuple[Any, ...], dict[str, Any]]] = [
        (acme.repo.get_order, (order_id,), {}),
        (acme.repo.get_authzs, ([authz_id],), {"with_challenges": True}),
        (acme.repo.order_for_certificate, (serial,), {}),
        (acme.repo.get_order, ("no-such-order",), {}),
    ]
    for body, args, kw in reads:
        plain = await acme.store.read(body, *args, **kw)
        request = _request(await client.nonce())
        assert await acme.read(request, body, *args, **kw) == plain
        fresh = request[base._FRESH]  # the nonce was taken and the next one issued
        # once taken, the same request reads plainly (no second nonce)
        assert await acme.read(request, body, *args, **kw) == plain
        assert request[base._FRESH] == fresh


async def test_read_refuses_a_used_nonce(client: Client) -> None:
    acme: Acme = client.http.app[ACME]
    nonce = await client.nonce()
    await acme.read(_request(nonce), acme.repo.get_order, "x")
    with pytest.raises(Problem) as refused:
        await acme.read(_request(nonce), acme.repo.get_order, "x")
    assert refused.value.kind == "badNonce"
