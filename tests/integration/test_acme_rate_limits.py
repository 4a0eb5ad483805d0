# ruff: noqa: F811  (pytest fixtures imported from tests.acme_fixtures)
"""Shared rate limits (RFC 8555 §6.6) on one gateway: new orders per account and new accounts
per client address, 429 rateLimited with Retry-After, nothing created when refused; the
window rolls over. Two processes sharing one count: test_acme_instances.py."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from tests.acme_fixtures import make_client, other  # noqa: F401
from tests.acme_helpers import Client, Reply


def _assert_limited(r: Reply, window: int) -> int:
    assert r.status == 429 and r.problem == "rateLimited", r.body
    retry = int(r.headers["Retry-After"])
    assert 1 <= retry <= window
    assert "Replay-Nonce" in r.headers
    return retry


async def test_new_orders_per_account_are_limited(make_client: Callable[..., Any]) -> None:
    c: Client = await make_client(
        'rate_limit_new_orders = 2\nrate_limit_new_orders_window = "1h"\n'
    )
    assert (await c.register()).status == 201
    for name in ("a.example.com", "b.example.com"):
        assert (await c.new_order(name)).status == 201
    _assert_limited(await c.new_order("c.example.com"), 3600)
    listed = await c.post(c.kid + "/orders")  # type: ignore[operator]
    assert len(listed.json["orders"]) == 2  # the refused order was not created
    assert (await (await other(c)).new_order("c.example.com")).status == 201  # per account


async def test_new_accounts_per_client_address_are_limited(
    make_client: Callable[..., Any],
) -> None:
    first: Client = await make_client("rate_limit_new_accounts = 2\n")
    assert (await first.register()).status == 201
    await other(first)  # the second account (asserts 201)
    third = Client(first.http)
    await third.get_directory()
    _assert_limited(await third.register(), 3 * 3600)
    # Finding an existing account is not creating one.
    again = Client(first.http, key=first.key)
    await again.get_directory()
    r = await again.register()
    assert r.status == 200 and r.headers["Location"] == first.kid


async def test_the_window_rolls_over(make_client: Callable[..., Any]) -> None:
    c: Client = await make_client(
        'rate_limit_new_orders = 1\nrate_limit_new_orders_window = "2s"\n'
    )
    assert (await c.register()).status == 201
    first = await c.new_order("one.example.com")
    if first.status == 429:  # started at the very end of a window
        await asyncio.sleep(int(first.headers["Retry-After"]))
        first = await c.new_order("one.example.com")
    assert first.status == 201
    r = await c.new_order("two.example.com")
    if r.status == 201:  # the first order fell in the previous window
        r = await c.new_order("three.example.com")
    await asyncio.sleep(_assert_limited(r, 2))
    assert (await c.new_order("four.example.com")).status == 201


async def test_zero_switches_the_shared_limits_off(make_client: Callable[..., Any]) -> None:
    c: Client = await make_client("rate_limit_new_orders = 0\nrate_limit_new_accounts = 0\n")
    assert (await c.register()).status == 201
    for i in range(5):
        assert (await c.new_order(f"n{i}.example.com")).status == 201
