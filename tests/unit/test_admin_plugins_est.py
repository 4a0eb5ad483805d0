"""EST's admin API plug-in (protocols/est/admin.py), its handlers called directly with an
AdminCall, as the shell calls them, against a real store: SQLite, and PostgreSQL (the same
cases on both)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.admin.plugin import AdminCall, AdminContext, AdminOperation, AdminProblem, Role
from gateway.clock import SystemClock
from gateway.store import SQLStore, default_sqlite_url, open_store
from protocols.est.admin import register
from protocols.est.state import EstState
from tests.pg_helpers import scratch_database

SETTINGS = {"enabled": True, "labels": {"iot": {"template": "device"}}}


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    yield from scratch_database("certgate_admin_est")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return default_sqlite_url(tmp_path)
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
async def store(url: str) -> AsyncIterator[SQLStore]:
    s = open_store(url)
    await s.migrate()
    yield s
    if url.startswith("postgresql"):  # one database for the module: leave it empty
        state = EstState(s, SystemClock().now)
        for user in await state.list_users():
            await state.delete_user(user.username)
    await s.close()


@pytest.fixture
def ops(store: SQLStore) -> dict[str, AdminOperation]:
    context = AdminContext("est", SETTINGS, "<defaults>", store, store, SystemClock())
    return {op.operation_id: op for op in register(context)}


async def call(
    op: AdminOperation,
    body: Any = None,
    query: dict[str, str] | None = None,
    path: dict[str, str] | None = None,
) -> Any:
    reply = await op.handler(AdminCall("token:t", Role.ADMIN, path or {}, query or {}, body))
    return reply.status, reply.body


async def refused(op: AdminOperation, status: int, **kw: Any) -> str:
    with pytest.raises(AdminProblem) as info:
        await call(op, **kw)
    assert info.value.status == status
    return info.value.detail


async def test_added_user_is_listed_without_its_password(ops: dict[str, AdminOperation]) -> None:
    status, body = await call(
        ops["addEstUser"], {"username": "dev-1", "password": "s3cret!", "groups": ["iot"]}
    )
    assert (status, body) == (201, {"username": "dev-1", "groups": ["iot"]})
    status, page = await call(ops["listEstUsers"])
    assert page == {"items": [{"username": "dev-1", "groups": ["iot"]}], "next": None}
    assert "s3cret" not in repr(page) and "scrypt" not in repr(page)


async def test_added_user_can_authenticate(ops: dict[str, AdminOperation], store: SQLStore) -> None:
    await call(ops["addEstUser"], {"username": "dev-2", "password": "pw-2"})
    state = EstState(store, SystemClock().now)
    assert await state.check_user("dev-2", "pw-2") is not None
    assert await state.check_user("dev-2", "wrong") is None


async def test_adding_an_existing_user_is_a_conflict_unless_replace(
    ops: dict[str, AdminOperation],
) -> None:
    await call(ops["addEstUser"], {"username": "dup", "password": "a"})
    await refused(ops["addEstUser"], 409, body={"username": "dup", "password": "b"})
    status, _ = await call(ops["addEstUser"], {"username": "dup", "password": "b", "replace": True})
    assert status == 201


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (None, "body"),
        ([], "body"),
        ({"password": "x"}, "body.username"),
        ({"username": "u"}, "body.password"),
        ({"username": "u", "password": "x", "admin": True}, "body.admin"),
        ({"username": "a:b", "password": "x"}, "body.username"),
        ({"username": "", "password": "x"}, "body.username"),
        ({"username": "u" * 256, "password": "x"}, "body.username"),
        ({"username": 5, "password": "x"}, "body.username"),
        ({"username": "u", "password": ""}, "body.password"),
        ({"username": "u", "password": "\ud800"}, "body.password"),
        ({"username": "u", "password": "x", "groups": "iot"}, "body.groups"),
        ({"username": "u", "password": "x", "groups": ["a\nb"]}, "body.groups"),
        ({"username": "u", "password": "x", "replace": "yes"}, "body.replace"),
    ],
)
async def test_bad_user_is_refused_naming_the_field(
    ops: dict[str, AdminOperation], body: Any, field: str
) -> None:
    detail = await refused(ops["addEstUser"], 400, body=body)
    assert detail.startswith(f"{field}:")


async def test_delete_user_then_404(ops: dict[str, AdminOperation]) -> None:
    await call(ops["addEstUser"], {"username": "gone", "password": "x"})
    status, body = await call(ops["deleteEstUser"], path={"username": "gone"})
    assert (status, body) == (200, {"username": "gone", "deleted": True})
    await refused(ops["deleteEstUser"], 404, path={"username": "gone"})
    await refused(ops["deleteEstUser"], 400, path={"username": "../x"})


async def test_users_are_paged(ops: dict[str, AdminOperation]) -> None:
    for i in range(5):
        await call(ops["addEstUser"], {"username": f"p{i}", "password": "x"})
    seen, cursor = [], None
    while True:
        query = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        _, page = await call(ops["listEstUsers"], query=query)
        seen += [u["username"] for u in page["items"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert seen == [f"p{i}" for i in range(5)]
    for query, name in [
        ({"limit": "0"}, "limit"),
        ({"limit": "x"}, "limit"),
        ({"cursor": "-1"}, "cursor"),
    ]:
        assert (await refused(ops["listEstUsers"], 400, query=query)).startswith(name)


async def test_code_is_shown_once_and_redeemable(
    ops: dict[str, AdminOperation], store: SQLStore
) -> None:
    status, body = await call(
        ops["createEstCode"], {"identity": "sensor-9", "label": "iot", "ttl": "2h"}
    )
    assert status == 201 and body["label"] == "iot" and body["identity"] == "sensor-9"
    code = await EstState(store, SystemClock().now).get_code(body["code"])
    assert code is not None and code.identity == "sensor-9" and code.code_hash != body["code"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "body.identity"),
        ({"identity": "x", "label": "nope"}, "body.label"),
        ({"identity": "x", "ttl": "0h"}, "body.ttl"),
        ({"identity": "x", "ttl": "soon"}, "body.ttl"),
        ({"identity": "\x00"}, "body.identity"),
    ],
)
async def test_bad_code_request_is_refused_naming_the_field(
    ops: dict[str, AdminOperation], body: Any, field: str
) -> None:
    assert (await refused(ops["createEstCode"], 400, body=body)).startswith(f"{field}:")


def test_every_operation_is_admin_and_every_change_is_audited(
    ops: dict[str, AdminOperation],
) -> None:
    assert {op.role for op in ops.values()} == {Role.ADMIN}
    audits = {op.operation_id: op.audit for op in ops.values()}
    assert audits == {
        "listEstUsers": None,
        "addEstUser": "est.user.added",
        "deleteEstUser": "est.user.deleted",
        "createEstCode": "est.code.created",
    }
    for op in ops.values():
        if op.request_body is not None:
            schema = op.request_body["content"]["application/json"]["schema"]
            assert schema["additionalProperties"] is False and schema["required"]
        assert all(
            "schema" in r.get("content", {}).get(t, {})
            for r in op.responses.values()
            for t in r.get("content", {})
        )
