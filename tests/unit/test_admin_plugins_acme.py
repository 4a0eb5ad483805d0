"""ACME's admin API plug-in (protocols/acme/admin.py): external account binding keys through
the handlers, called directly with an AdminCall as the shell calls them, on a real SQLite
store; the key made is the one the ACME front-end verifies bindings with."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.admin.plugin import AdminCall, AdminContext, AdminOperation, AdminProblem, Role
from gateway.clock import SystemClock
from gateway.store import SQLStore, default_sqlite_url, open_store
from protocols.acme.admin import register
from protocols.acme.eab import unseal
from protocols.acme.repository import open_repository
from protocols.acme.settings import eab_encryption_key


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLStore]:
    s = open_store(default_sqlite_url(tmp_path))
    await s.migrate()
    yield s
    await s.close()


def operations(store: SQLStore, settings: dict[str, Any], file: str) -> dict[str, AdminOperation]:
    context = AdminContext("acme", settings, file, store, store, SystemClock())
    return {op.operation_id: op for op in register(context)}


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "eab-secret"
    path.write_text("correct horse battery staple\n")
    return path


@pytest.fixture
def ops(store: SQLStore, secret_file: Path) -> dict[str, AdminOperation]:
    return operations(store, {"eab_encryption_key": f"file:{secret_file}"}, "<defaults>")


async def call(
    op: AdminOperation,
    body: Any = None,
    path: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
) -> Any:
    reply = await op.handler(AdminCall("token:ops", Role.ADMIN, path or {}, query or {}, body))
    return reply.status, reply.body


async def refused(op: AdminOperation, status: int, **kw: Any) -> str:
    with pytest.raises(AdminProblem) as info:
        await call(op, **kw)
    assert info.value.status == status
    return info.value.detail


async def test_created_key_is_sealed_under_the_front_ends_key(
    ops: dict[str, AdminOperation], store: SQLStore, secret_file: Path
) -> None:
    status, made = await call(
        ops["createAcmeEabKey"],
        {"principal": "cert-manager", "templates": ["tls-server"], "domains": ["*.example"]},
    )
    assert status == 201 and made["principal"] == "cert-manager"
    repo = open_repository(store.dialect_name, raw_sqlite=store.raw_sqlite)
    row = await store.read(repo.get_eab_key, made["kid"])
    key = eab_encryption_key(f"file:{secret_file}", "<defaults>", Path("/nonexistent"))
    hmac_key = base64.urlsafe_b64decode(made["hmac_key"] + "=" * (-len(made["hmac_key"]) % 4))
    assert unseal(key, made["kid"], row["secret"]) == hmac_key


async def test_list_never_shows_a_key(ops: dict[str, AdminOperation]) -> None:
    _, made = await call(ops["createAcmeEabKey"], {"principal": "p"})
    _, page = await call(ops["listAcmeEabKeys"])
    [item] = page["items"]
    assert set(item) == {"kid", "principal", "templates", "domains", "created_at"}
    assert made["hmac_key"] not in repr(page) and page["next"] is None


async def test_delete_then_404(ops: dict[str, AdminOperation]) -> None:
    _, made = await call(ops["createAcmeEabKey"], {"principal": "p"})
    status, body = await call(ops["deleteAcmeEabKey"], path={"kid": made["kid"]})
    assert (status, body) == (200, {"kid": made["kid"], "deleted": True})
    await refused(ops["deleteAcmeEabKey"], 404, path={"kid": made["kid"]})
    await refused(ops["deleteAcmeEabKey"], 400, path={"kid": "a/b"})


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "body.principal"),
        ({"principal": ""}, "body.principal"),
        ({"principal": "p", "templates": "tls-server"}, "body.templates"),
        ({"principal": "p", "templates": ["../x"]}, "body.templates"),
        ({"principal": "p", "domains": ["a b"]}, "body.domains"),
        ({"principal": "p", "hmac_key": "mine"}, "body.hmac_key"),
    ],
)
async def test_bad_request_is_refused_naming_the_field(
    ops: dict[str, AdminOperation], body: Any, field: str
) -> None:
    assert (await refused(ops["createAcmeEabKey"], 400, body=body)).startswith(f"{field}:")


async def test_key_file_in_the_configured_data_dir_is_used_never_made(
    store: SQLStore, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    cfg = tmp_path / "certgate.toml"
    cfg.write_text(f'[data]\ndir = "{data}"\n')
    ops = operations(store, {}, str(cfg))
    detail = await refused(ops["createAcmeEabKey"], 409, body={"principal": "p"})
    assert "acme-eab.key" in detail and not (data / "acme-eab.key").exists()
    made_by_front_end = eab_encryption_key(None, str(cfg), data)  # as the front-end makes it
    status, made = await call(ops["createAcmeEabKey"], {"principal": "p"})
    assert status == 201
    repo = open_repository(store.dialect_name, raw_sqlite=store.raw_sqlite)
    row = await store.read(repo.get_eab_key, made["kid"])
    assert unseal(made_by_front_end, made["kid"], row["secret"])


def test_every_operation_is_admin_and_every_change_is_audited(
    ops: dict[str, AdminOperation],
) -> None:
    assert {op.role for op in ops.values()} == {Role.ADMIN}
    assert {op.operation_id: op.audit for op in ops.values()} == {
        "listAcmeEabKeys": None,
        "createAcmeEabKey": "acme.eab.created",
        "deleteAcmeEabKey": "acme.eab.deleted",
    }


async def test_keys_are_paged_by_keyset(ops: dict[str, AdminOperation]) -> None:
    made = [(await call(ops["createAcmeEabKey"], {"principal": f"p{i}"}))[1] for i in range(3)]
    seen: list[str] = []
    query: dict[str, str] = {"limit": "1"}
    while True:
        reply = await ops["listAcmeEabKeys"].handler(
            AdminCall("token:ops", Role.ADMIN, {}, query, None)
        )
        seen += [k["kid"] for k in reply.body["items"]]
        if reply.body["next"] is None:
            break
        query = {"limit": "1", "cursor": reply.body["next"]}
    assert seen == [m["kid"] for m in made]
    await refused(ops["listAcmeEabKeys"], 400, query={"cursor": "not-a-cursor"})


async def test_key_file_is_read_from_the_served_data_directory(
    store: SQLStore, tmp_path: Path
) -> None:
    """``serve --data DIR``: the key the front-end made in DIR seals the new key, whatever
    data directory the configuration file would name."""
    served = tmp_path / "served"
    front_end_key = eab_encryption_key(None, "<defaults>", served)  # made as the front-end does
    context = AdminContext("acme", {}, "<defaults>", store, store, SystemClock(), data_dir=served)
    create = {op.operation_id: op for op in register(context)}["createAcmeEabKey"]
    status, made = await call(create, {"principal": "ops", "templates": [], "domains": []})
    assert status == 201
    repo = open_repository(store.dialect_name, raw_sqlite=store.raw_sqlite)
    row = await store.read(repo.get_eab_key, made["kid"])
    hmac_key = base64.urlsafe_b64decode(made["hmac_key"] + "=" * (-len(made["hmac_key"]) % 4))
    assert unseal(front_end_key, made["kid"], row["secret"]) == hmac_key
