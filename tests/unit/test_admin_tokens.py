"""Admin API tokens (gateway/admin/tokens.py) on a real SQLite store, and the pure pieces of the
API around them: the console's CSRF value, parameter and body checks, cursors, the OpenAPI
document's shape."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from gateway.admin.params import (
    check_body,
    check_parameters,
    decode_cursor,
    encode_cursor,
    parse_json_body,
)
from gateway.admin.plugin import AdminProblem, Role
from gateway.admin.tables import admin_tokens
from gateway.admin.tokens import AdminTokens, TokenRejected, role_named, token_digest
from gateway.cli.admin import ROLES
from gateway.clock import FixedClock
from gateway.errors import BadRequest, Conflict, NotFound
from gateway.server.admin.auth import csrf_token
from gateway.store import SQLStore, default_sqlite_url, open_store

T0 = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLStore]:
    store = open_store(default_sqlite_url(tmp_path))
    await store.migrate()
    yield store
    await store.close()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(T0)


@pytest.fixture
def tokens(store: SQLStore, clock: FixedClock) -> AdminTokens:
    return AdminTokens(store, store, clock)


def test_cli_roles_are_the_role_names() -> None:
    assert ROLES == tuple(r.name.lower() for r in Role)
    assert [role_named(r) for r in ROLES] == list(Role)
    with pytest.raises(BadRequest):
        role_named("root")


async def test_token_is_cg_and_256_random_bits_and_only_its_digest_is_stored(
    tokens: AdminTokens, store: SQLStore
) -> None:
    secret, record = await tokens.create("ops", Role.APPROVER, "cli:root")
    assert re.fullmatch(r"cg_[A-Za-z0-9_-]{43}", secret)
    rows = await store.read(lambda conn: conn.execute(sa.select(admin_tokens)).all())
    assert len(rows) == 1
    stored = " ".join(str(v) for v in rows[0])
    assert secret not in stored and secret[3:] not in stored
    assert rows[0].token_sha256 == hashlib.sha256(secret.encode()).hexdigest()
    assert (await tokens.authenticate(secret)).name == "ops" == record.name


async def test_unknown_malformed_expired_and_revoked_tokens_are_rejected(
    tokens: AdminTokens, clock: FixedClock
) -> None:
    secret, _ = await tokens.create("short", Role.VIEWER, "cli:root", timedelta(hours=1))
    for presented, reason in [
        ("cg_" + "A" * 43, "unknown token"),
        ("Bearer-ish", "not a certgate API token"),
        ("cg_" + "x" * 300, "not a certgate API token"),
    ]:
        with pytest.raises(TokenRejected) as caught:
            await tokens.authenticate(presented)
        assert caught.value.reason == reason
    clock.at = T0 + timedelta(hours=1)
    with pytest.raises(TokenRejected, match="expired"):
        await tokens.authenticate(secret)
    other, _ = await tokens.create("gone", Role.ADMIN, "cli:root")
    await tokens.revoke("gone", "cli:root")
    with pytest.raises(TokenRejected, match="revoked"):
        await tokens.authenticate(other)


async def test_last_used_is_written_at_most_once_a_minute(
    tokens: AdminTokens, clock: FixedClock
) -> None:
    secret, _ = await tokens.create("ops", Role.VIEWER, "cli:root")
    assert (await tokens.get("ops")).last_used_at is None  # type: ignore[union-attr]
    await tokens.authenticate(secret)
    clock.at = T0 + timedelta(seconds=59)
    await tokens.authenticate(secret)
    assert (await tokens.get("ops")).last_used_at == T0  # type: ignore[union-attr]
    clock.at = T0 + timedelta(seconds=61)
    await tokens.authenticate(secret)
    assert (await tokens.get("ops")).last_used_at == clock.at  # type: ignore[union-attr]


async def test_names_are_unique_until_revoked_and_create_and_revoke_are_audited(
    tokens: AdminTokens, store: SQLStore
) -> None:
    first, _ = await tokens.create("ops", Role.VIEWER, "cli:root")
    with pytest.raises(Conflict):
        await tokens.create("ops", Role.ADMIN, "cli:root")
    await tokens.revoke("ops", "token:boss")
    with pytest.raises(Conflict):
        await tokens.revoke("ops", "token:boss")
    with pytest.raises(NotFound):
        await tokens.revoke("nobody", "token:boss")
    second, record = await tokens.create("ops", Role.ADMIN, "cli:root")  # the name is free again
    assert record.role is Role.ADMIN and second != first
    with pytest.raises(TokenRejected):
        await tokens.authenticate(first)
    events = [(e.event, e.actor, e.detail.get("name")) for e in await store.audit_events()]
    assert events == [
        ("admin.token.created", "cli:root", "ops"),
        ("admin.token.revoked", "token:boss", "ops"),
        ("admin.token.created", "cli:root", "ops"),
    ]
    assert all(first not in str(e.detail) for e in await store.audit_events())


@pytest.mark.parametrize("name", ["", "-x", "a b", "x" * 65, "ünï"])
async def test_bad_names_are_refused(tokens: AdminTokens, name: str) -> None:
    with pytest.raises(BadRequest):
        await tokens.create(name, Role.VIEWER, "cli:root")


async def test_an_expiry_beyond_the_calendar_is_a_bad_request(tokens: AdminTokens) -> None:
    with pytest.raises(BadRequest):
        await tokens.create("far", Role.VIEWER, "cli:root", timedelta(days=3_000_000))


def test_csrf_is_the_hmac_of_the_token() -> None:
    expected = hmac.new(b"cg_abc", b"certgate-csrf", hashlib.sha256).hexdigest()
    assert csrf_token("cg_abc") == expected and csrf_token("cg_abd") != expected


# --- parameters, bodies, cursors ------------------------------------------------------------

LIMIT = {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 9}}
STATE = {"name": "state", "in": "query", "schema": {"type": "string", "enum": ["a", "b"]}}
SINCE = {"name": "since", "in": "query", "schema": {"type": "string", "format": "date-time"}}
ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}


@pytest.mark.parametrize(
    ("query", "path", "named"),
    [
        ({"limit": "0"}, {"id": "x"}, "limit"),
        ({"limit": "ten"}, {"id": "x"}, "limit"),
        ({"limit": "1" * 5000}, {"id": "x"}, "limit"),
        ({"state": "c"}, {"id": "x"}, "state"),
        ({"since": "yesterday"}, {"id": "x"}, "since"),
        ({"since": "9999-12-31T23:00:00-14:00"}, {"id": "x"}, "since"),
        ({}, {"id": "a\x00b"}, "id"),
        ({}, {"id": "\ud800"}, "id"),
        ({}, {}, "id"),
    ],
)
def test_bad_parameters_are_a_400_naming_them(
    query: dict[str, str], path: dict[str, str], named: str
) -> None:
    with pytest.raises(AdminProblem) as caught:
        check_parameters([LIMIT, STATE, SINCE, ID], query, path)
    assert caught.value.status == 400 and caught.value.detail.startswith(f"{named}: ")


def test_good_parameters_pass() -> None:
    query = {"limit": "9", "state": "b", "since": "2026-01-31T08:00:00Z", "other": "ignored"}
    check_parameters([LIMIT, STATE, SINCE, ID], query, {"id": "x"})


BODY = {
    "type": "object",
    "required": ["reason"],
    "properties": {"reason": {"type": "string", "minLength": 1, "maxLength": 5}},
    "additionalProperties": False,
}


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ([], "body"),
        ({}, "body.reason"),
        ({"reason": 5}, "body.reason"),
        ({"reason": ""}, "body.reason"),
        ({"reason": "toolong"}, "body.reason"),
        ({"reason": "a\x00"}, "body.reason"),
        ({"reason": "ok", "extra": 1}, "body.extra"),
    ],
)
def test_bad_bodies_are_a_400_naming_the_member(body: object, named: str) -> None:
    with pytest.raises(AdminProblem) as caught:
        check_body(BODY, body)
    assert caught.value.status == 400 and caught.value.detail.startswith(f"{named}: ")


@pytest.mark.parametrize("raw", [b"{", b"\xff\xfe", b"[" * 100_000, b"nul"])
def test_unparsable_bodies_are_a_400(raw: bytes) -> None:
    with pytest.raises(AdminProblem) as caught:
        parse_json_body(raw)
    assert caught.value.status == 400 and caught.value.detail.startswith("body: ")


def test_cursors_round_trip_and_foreign_ones_are_a_400() -> None:
    cursor = encode_cursor(T0, "abc")
    assert decode_cursor({"cursor": cursor}, (datetime, str)) == [T0, "abc"]
    assert decode_cursor({}, (int,)) is None
    for bad in ["!!", encode_cursor("x"), encode_cursor(1, 2), "W10"]:
        with pytest.raises(AdminProblem) as caught:
            decode_cursor({"cursor": bad}, (datetime, str))
        assert caught.value.detail.startswith("cursor: ")


def test_digest_is_sha256_hex() -> None:
    assert token_digest("cg_x") == hashlib.sha256(b"cg_x").hexdigest()
