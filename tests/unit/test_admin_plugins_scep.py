"""SCEP's admin API plug-in (protocols/scep/admin.py): one-time challenges made through the
handlers, called directly with an AdminCall as the shell calls them, on a real SQLite store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gateway.admin.plugin import AdminCall, AdminContext, AdminOperation, AdminProblem, Role
from gateway.clock import FixedClock, SystemClock
from gateway.passwords import secret_digest
from gateway.store import SQLStore, default_sqlite_url, open_store
from protocols.scep import otp
from protocols.scep.admin import register

SETTINGS = {
    "enabled": True,
    "endpoints": {
        "mdm": {"challenge": "otp"},
        "lab": {"challenge_password": "env:X"},  # challenge = "static" by default
    },
}


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLStore]:
    s = open_store(default_sqlite_url(tmp_path))
    await s.migrate()
    yield s
    await s.close()


@pytest.fixture
def ops(store: SQLStore) -> dict[str, AdminOperation]:
    context = AdminContext("scep", SETTINGS, "<defaults>", store, store, SystemClock())
    return {op.operation_id: op for op in register(context)}


async def call(op: AdminOperation, body: Any = None, query: dict[str, str] | None = None) -> Any:
    reply = await op.handler(AdminCall("token:ops", Role.ADMIN, {}, query or {}, body))
    return reply.status, reply.body


async def refused(op: AdminOperation, **kw: Any) -> str:
    with pytest.raises(AdminProblem) as info:
        await call(op, **kw)
    assert info.value.status == 400
    return info.value.detail


async def test_challenge_is_answered_once_and_redeems(
    ops: dict[str, AdminOperation], store: SQLStore
) -> None:
    status, body = await call(ops["createScepChallenge"], {"endpoint": "mdm", "identity": "ipad"})
    assert status == 201 and body["endpoint"] == "mdm" and body["identity"] == "ipad"
    redeemed = await otp.redeem(store, "mdm", body["challenge"], "tx-1", datetime.now(UTC))
    assert redeemed is not None and redeemed.identity == "ipad"


async def test_list_shows_metadata_never_the_password(ops: dict[str, AdminOperation]) -> None:
    _, made = await call(ops["createScepChallenge"], {"endpoint": "mdm", "ttl": "30m"})
    _, page = await call(ops["listScepChallenges"])
    [item] = page["items"]
    assert item["endpoint"] == "mdm" and item["created_by"] == "token:ops"
    assert item["used_at"] is None and len(item["id"]) == 16
    assert made["challenge"] not in repr(page)
    assert secret_digest(made["challenge"]) not in repr(page)  # nor its whole hash


async def test_list_filters_and_pages(ops: dict[str, AdminOperation]) -> None:
    for _ in range(3):
        await call(ops["createScepChallenge"], {"endpoint": "mdm"})
    _, first = await call(ops["listScepChallenges"], query={"limit": "2"})
    assert len(first["items"]) == 2 and first["next"] is not None
    _, rest = await call(ops["listScepChallenges"], query={"limit": "2", "cursor": first["next"]})
    assert len(rest["items"]) == 1 and rest["next"] is None
    _, none = await call(ops["listScepChallenges"], query={"endpoint": "lab"})
    assert none == {"items": [], "next": None}
    assert (await refused(ops["listScepChallenges"], query={"endpoint": "a b"})).startswith(
        "endpoint:"
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "body.endpoint"),
        ({"endpoint": "lab"}, "body.endpoint"),  # not an otp endpoint
        ({"endpoint": "nope"}, "body.endpoint"),
        ({"endpoint": "mdm", "ttl": "1y"}, "body.ttl"),
        ({"endpoint": "mdm", "identity": ""}, "body.identity"),
        ({"endpoint": "mdm", "password": "mine"}, "body.password"),
    ],
)
async def test_bad_request_is_refused_naming_the_field(
    ops: dict[str, AdminOperation], body: Any, field: str
) -> None:
    assert (await refused(ops["createScepChallenge"], body=body)).startswith(f"{field}:")


async def test_the_plug_in_records_no_audit_event_of_its_own(
    ops: dict[str, AdminOperation], store: SQLStore
) -> None:
    """The shell records the operation's event (op.audit); the plug-in must not add a second."""
    await call(ops["createScepChallenge"], {"endpoint": "mdm"})
    assert [e for e in await store.audit_events() if e.event == otp.EVENT_CREATED] == []
    assert ops["createScepChallenge"].audit == otp.EVENT_CREATED
    assert ops["listScepChallenges"].audit is None
    assert {op.role for op in ops.values()} == {Role.ADMIN}


def test_schema_names_the_otp_endpoints(ops: dict[str, AdminOperation]) -> None:
    body = ops["createScepChallenge"].request_body
    assert body is not None
    schema = body["content"]["application/json"]["schema"]
    assert schema["properties"]["endpoint"]["enum"] == ["mdm"]
    assert schema["additionalProperties"] is False and schema["required"] == ["endpoint"]


async def test_pages_cover_challenges_made_in_the_same_instant(store: SQLStore) -> None:
    """The keyset (created_at, id) breaks ties: nothing is skipped or repeated."""
    clock = FixedClock(datetime(2030, 1, 1, tzinfo=UTC))
    context = AdminContext("scep", SETTINGS, "<defaults>", store, store, clock)
    ops = {op.operation_id: op for op in register(context)}
    for _ in range(5):
        await call(ops["createScepChallenge"], {"endpoint": "mdm"})
    seen: list[str] = []
    query = {"limit": "2"}
    while True:
        _, page = await call(ops["listScepChallenges"], query=query)
        seen += [item["id"] for item in page["items"]]
        if page["next"] is None:
            break
        query = {"limit": "2", "cursor": page["next"]}
    assert len(seen) == len(set(seen)) == 5
    assert seen == sorted(seen)  # one instant: by digest
