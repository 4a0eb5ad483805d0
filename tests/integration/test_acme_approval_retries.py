# ruff: noqa: F811  (pytest fixtures imported from tests.acme_fixtures)
"""A client that gives up on an order awaiting manager approval and orders again does not pile
up requests in the approval queue: once the newer order of the same account, for the same
template and exactly the same identifiers, is finalized (pending or issued), the older
order's request is withdrawn (audited) and leaves ``certgate requests list``; the older order
becomes ``invalid`` naming its successor."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from pathlib import Path
from typing import Any

from gateway.cli.main import main
from gateway.model import RequestState
from gateway.server.app import components_of
from tests.acme_fixtures import client, make_client, other  # noqa: F401
from tests.acme_helpers import Client


async def _pending_order(c: Client, *names: str) -> dict[str, Any]:
    order = await c.new_order(*names, profile="approval-required")
    assert order.status == 201, order.body
    for url in order.json["authorizations"]:
        authz = (await c.post(url)).json
        if authz["status"] != "valid":
            await c.post(authz["challenges"][0]["url"], {})
    fin = await c.finalize(order.json)
    assert fin.json["status"] == "processing", fin.body
    return order.json | {"url": order.headers["Location"]}


async def _request_id(c: Client, order: dict[str, Any]) -> str:
    store = components_of(c.http.app).service.store
    record = await store.find_request("acme", order["url"].rsplit("/", 1)[1])
    assert record is not None
    return record.id


def _queue(cfg: Path) -> list[str]:
    """``certgate requests list --state pending --json``: the approval queue's request ids."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["requests", "list", "--state", "pending", "--json", "-c", str(cfg)])
    assert code == 0
    return [r["id"] for r in json.loads(out.getvalue())]


async def test_a_retried_order_replaces_the_older_request_in_the_approval_queue(
    client: Client, tmp_path: Path
) -> None:
    first = await _pending_order(client, "pile.example.com")
    old = await _request_id(client, first)
    second = await _pending_order(client, "pile.example.com")
    new = await _request_id(client, second)
    queue = await asyncio.to_thread(_queue, tmp_path / "certgate.toml")
    assert new in queue and old not in queue
    store = components_of(client.http.app).service.store
    withdrawn = await store.get_request(old)
    assert withdrawn is not None and withdrawn.state is RequestState.DENIED
    assert withdrawn.denial_rule == "withdrawn" and second["url"] in (withdrawn.denial_detail or "")
    events = [e for e in await store.audit_events(old) if e.event == "request.withdrawn"]
    assert len(events) == 1 and events[0].actor == f"acme:account:{client.kid.rsplit('/', 1)[1]}"
    assert events[0].detail["superseded_by"] == second["url"]
    polled = (await client.post(first["url"])).json
    assert polled["status"] == "invalid" and second["url"] in polled["error"]["detail"]
    # the newer order still waits for, and gets, its approval
    assert (await client.post(second["url"])).json["status"] == "processing"
    await components_of(client.http.app).service.approve(new, "manager")
    assert (await client.post(second["url"])).json["status"] == "valid"


async def test_a_third_retry_leaves_exactly_one_request_waiting(
    client: Client, tmp_path: Path
) -> None:
    ids = [
        await _request_id(client, await _pending_order(client, "x.example.com")) for _ in range(3)
    ]
    queue = await asyncio.to_thread(_queue, tmp_path / "certgate.toml")
    assert [i for i in ids if i in queue] == [ids[-1]]


async def test_other_accounts_and_other_identifier_sets_are_left_alone(
    client: Client, tmp_path: Path
) -> None:
    mine = await _request_id(client, await _pending_order(client, "a.example.com"))
    wider = await _request_id(
        client, await _pending_order(client, "a.example.com", "b.example.com")
    )
    stranger = await other(client)
    theirs = await _request_id(stranger, await _pending_order(stranger, "a.example.com"))
    queue = await asyncio.to_thread(_queue, tmp_path / "certgate.toml")
    assert {mine, wider, theirs} <= set(queue)


async def test_a_request_already_denied_is_not_touched_again(client: Client) -> None:
    first = await _pending_order(client, "denied.example.com")
    old = await _request_id(client, first)
    service = components_of(client.http.app).service
    await service.deny(old, "manager", "no")
    await _pending_order(client, "denied.example.com")
    record = await service.store.get_request(old)
    assert record is not None and record.denial_rule == "manager"
    assert not [e for e in await service.store.audit_events(old) if e.event == "request.withdrawn"]
