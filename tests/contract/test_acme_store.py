"""ACME state bodies on both statement paths (see conftest.py for the two backends).

On SQLite the per-request bodies of ``protocols.acme.state`` / ``state_orders`` use the raw
cursor (``protocols.acme.sqlite_rows``); PostgreSQL uses SQLAlchemy Core. Each behaviour test
below runs on both; then one scripted session of every converted body is replayed on SQLite
raw, on SQLite through Core (``sqlite_rows.ENABLED`` off) and on PostgreSQL, and the answers
and the stored rows must agree (on SQLite: byte for byte).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from gateway.store import SQLStore, default_sqlite_url, open_store
from protocols.acme import sqlite_rows, state, state_orders
from protocols.acme.state_orders import NewAuthz
from protocols.acme.tables import (
    acme_accounts,
    acme_authorizations,
    acme_challenges,
    acme_eab_keys,
    acme_nonces,
    acme_orders,
)
from tests.contract.conftest import StepClock

TABLES = (
    acme_nonces, acme_accounts, acme_eab_keys, acme_orders, acme_authorizations, acme_challenges,
)  # fmt: skip
CHALLENGES = (("http-01", "tok-h"), ("dns-01", "tok-d"), ("tls-alpn-01", "tok-t"))
JWK = {"kty": "EC", "crv": "P-256", "x": "eHg", "y": "eXk"}


def new_authz(aid: str, value: str, expires: datetime, **kw: Any) -> NewAuthz:
    defaults: dict[str, Any] = {"type": "dns", "wildcard": False, "status": "pending"}
    return NewAuthz(
        id=aid,
        value=value,
        expires_at=expires,
        challenges=tuple((f"{aid}-{t}", t, f"{tok}-{aid}") for t, tok in CHALLENGES),
        **{**defaults, **kw},
    )


def order_of(oid: str, account: str, authzs: list[str], t0: datetime, **kw: Any) -> state.Order:
    values: dict[str, Any] = {
        "id": oid,
        "account_id": account,
        "status": "pending",
        "template": "tls-server",
        "profile": None,
        "identifiers": [{"type": "dns", "value": f"{oid}.example.test"}],
        "authz_ids": authzs,
        "not_before": None,
        "not_after": None,
        "expires_at": t0 + timedelta(days=7),
        "error": None,
        "replaces": None,
        "finalize_attempt": 0,
        "request_id": None,
        "certificate_serial": None,
    }
    return state.Order(**{**values, **kw})


async def seed(store: SQLStore, t0: datetime) -> None:
    """Account ``acct-1`` (EAB-bound) with order ``ord-1`` on authorizations ``az-1``
    (``*.example.test``) and ``az-2`` (an IP), and order ``ord-2`` on the pre-authorized
    ``az-3``; every authorization has an http-01, dns-01 and tls-alpn-01 challenge."""
    await store.write(
        state.put_eab_key, "kid-1", "ops@example.test", ["tls-server"], ["example.test"],
        b"\x00secret", t0,
    )  # fmt: skip
    await store.write(state.create_account, "acct-1", "thumb-1", JWK, ["mailto:a@x"], "kid-1", t0)
    await store.write(state.create_account, "acct-2", "thumb-2", JWK, [], None, t0, "tos-v1")
    expires = t0 + timedelta(days=1)
    first = [
        new_authz("az-1", "example.test", expires, wildcard=True),
        new_authz("az-2", "192.0.2.1", expires, type="ip"),
    ]
    await store.write(
        state_orders.create_order, order_of("ord-1", "acct-1", ["az-1", "az-2"], t0), first, t0
    )
    pre = [new_authz("az-3", "pre.example.test", t0 + timedelta(days=30), status="valid")]
    second = order_of(
        "ord-2", "acct-1", ["az-3"], t0, profile="short", not_before=t0.replace(microsecond=0),
        not_after=t0 + timedelta(days=6), replaces="aGk.MDE",
    )  # fmt: skip
    await store.write(state_orders.create_order, second, pre, t0)


# --- behaviour, on both backends ---------------------------------------------------------------


async def test_a_nonce_is_taken_once_and_a_fresh_one_issued(
    store: SQLStore, clock: StepClock
) -> None:
    t0 = clock.now()
    later = t0 + timedelta(minutes=5)
    await store.write(state.issue_nonce, "n-1", later, None)
    first = await store.write(state.with_nonce, "n-1", "n-2", later, t0, state.nothing, (), {})
    replay = await store.write(state.with_nonce, "n-1", "n-3", later, t0, state.nothing, (), {})
    chained = await store.write(state.with_nonce, "n-3", "n-4", later, t0, state.nothing, (), {})
    assert (first, replay, chained) == ((True, None), (False, None), (True, None))


async def test_an_expired_nonce_is_refused_and_the_body_not_run(
    store: SQLStore, clock: StepClock
) -> None:
    t0 = clock.now()
    await seed(store, t0)
    await store.write(state.issue_nonce, "n-old", t0, None)
    got = await store.write(
        state.with_nonce, "n-old", "n-new", t0 + timedelta(minutes=5), t0,
        state_orders.set_order, ("ord-1", "pending"), {"status": "processing"},
    )  # fmt: skip
    assert got == (False, None)
    order = await store.read(state_orders.get_order, "ord-1")
    assert order is not None and order[0].status == "pending"


async def test_account_reads_carry_the_eab_binding(store: SQLStore, clock: StepClock) -> None:
    await seed(store, clock.now())
    by_id = await store.read(state.get_account, "acct-1")
    by_key = await store.read(state.account_by_thumbprint, "thumb-1")
    assert by_id is not None and by_id == by_key
    assert (by_id.principal, by_id.eab_templates, by_id.jwk) == (
        "ops@example.test", ("tls-server",), JWK,
    )  # fmt: skip
    assert await store.read(state.get_account, "acct-none") is None


async def test_get_authzs_follows_the_order_of_ids_and_skips_unknown_ones(
    store: SQLStore, clock: StepClock
) -> None:
    await seed(store, clock.now())
    many = await store.read(
        state_orders.get_authzs, ["az-2", "az-none", "az-1"], with_challenges=True
    )
    one = await store.read(state_orders.get_authzs, ["az-1"], with_challenges=True)
    assert [a.id for a in many] == ["az-2", "az-1"] and many[1] == one[0]
    assert [c.type for c in one[0].challenges] == ["dns-01", "http-01", "tls-alpn-01"]
    assert one[0].wildcard is True and many[0].wildcard is False
    assert await store.read(state_orders.get_authzs, ["az-none"], with_challenges=True) == []


async def test_a_challenge_is_started_once_and_finished_only_while_processing(
    store: SQLStore, clock: StepClock
) -> None:
    t0 = clock.now()
    await seed(store, t0)
    lease, until = t0 + timedelta(seconds=30), t0 + timedelta(days=30)
    finish = state_orders.finish_challenge
    await store.write(finish, "az-1-http-01", "az-1", True, None, t0, until)  # not processing
    assert await store.write(state_orders.start_challenge, "az-1-http-01", lease)
    assert not await store.write(state_orders.start_challenge, "az-1-http-01", lease)
    await store.write(finish, "az-1-http-01", "az-1", True, None, t0, until)
    found = await store.read(state_orders.get_challenge, "az-1-http-01")
    assert found is not None
    challenge, authz = found
    assert (challenge.status, challenge.validated_at) == ("valid", t0)
    assert (authz.status, authz.expires_at) == ("valid", until)
    assert await store.read(state_orders.get_challenge, "nope") is None


async def test_set_order_only_moves_an_order_in_the_expected_state(
    store: SQLStore, clock: StepClock
) -> None:
    await seed(store, clock.now())
    move = state_orders.set_order
    assert await store.write(move, "ord-1", "pending", status="processing")
    assert not await store.write(move, "ord-1", "pending", status="processing")
    assert await store.write(move, "ord-1", "processing", status="valid", certificate_serial="0a")
    found = await store.read(state_orders.order_for_certificate, "0a")
    assert found is not None and (found.id, found.status) == ("ord-1", "valid")
    assert await store.read(state_orders.order_for_certificate, "0b") is None


async def test_only_valid_unexpired_authorizations_are_reused(
    store: SQLStore, clock: StepClock
) -> None:
    t0 = clock.now()
    await seed(store, t0)
    wanted = [("dns", "pre.example.test", False), ("dns", "pre.example.test", True)]
    wanted += [("dns", "example.test", True)]  # az-1 is only pending
    reuse = state_orders.reusable_authzs
    assert await store.read(reuse, "acct-1", wanted, t0) == ["az-3", None, None]
    assert await store.read(reuse, "acct-2", wanted, t0) == [None, None, None]
    assert await store.read(reuse, "acct-1", wanted, t0 + timedelta(days=31)) == [None] * 3


async def test_older_awaiting_core_lists_only_older_processing_orders_of_the_account_and_template(
    store: SQLStore, clock: StepClock
) -> None:
    """Candidates for supersession (protocols.acme.supersede): older, same account and
    template, ``processing`` with a core request; never the order itself or a newer one."""
    t0 = clock.now()
    await seed(store, t0)
    made: dict[str, state.Order] = {}
    for i, (oid, account, template) in enumerate(
        [
            ("o-old", "acct-1", "tls-server"),
            ("o-other-template", "acct-1", "approval"),
            ("o-other-account", "acct-2", "tls-server"),
            ("o-not-processing", "acct-1", "tls-server"),
            ("o-new", "acct-1", "tls-server"),
            ("o-newest", "acct-1", "tls-server"),
        ]
    ):
        at = t0 + timedelta(seconds=i)
        made[oid] = order_of(oid, account, [], at, template=template)
        await store.write(state_orders.create_order, made[oid], [], at)
        if oid != "o-not-processing":
            await store.write(
                state_orders.set_order, oid, "pending", status="processing", request_id=f"r-{oid}"
            )
    older = await store.read(state_orders.older_awaiting_core, made["o-new"])
    assert [o.id for o in older] == ["o-old"] and older[0].request_id == "r-o-old"
    assert await store.read(state_orders.older_awaiting_core, made["o-old"]) == []
    newest = await store.read(state_orders.older_awaiting_core, made["o-newest"])
    assert sorted(o.id for o in newest) == ["o-new", "o-old"]


async def test_naive_datetimes_are_refused_by_the_acme_bodies(store: SQLStore) -> None:
    with pytest.raises(sa.exc.StatementError, match="naive"):
        await store.write(state.issue_nonce, "n-naive", datetime(2030, 1, 1), None)


# --- the raw path: really used, and indistinguishable from Core ----------------------------------


@pytest.fixture
def core_statements() -> Iterator[list[str]]:
    """The SQL every SQLAlchemy engine executes meanwhile (the raw cursor is not seen)."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        seen.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    yield seen
    event.remove(Engine, "before_cursor_execute", record)


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_hot_acme_bodies_bypass_core_on_sqlite(
    store: SQLStore, clock: StepClock, core_statements: list[str]
) -> None:
    t0 = clock.now()
    await seed(store, t0)
    core_statements.clear()
    await session(store, t0)
    acme = [s for s in core_statements if "acme_" in s]
    assert acme == [], acme


async def session(store: SQLStore, t0: datetime) -> list[tuple[str, Any]]:
    """Every converted body once or more, with the answers in order (after :func:`seed`)."""
    out: list[tuple[str, Any]] = []
    later = t0 + timedelta(minutes=5)

    async def w(label: str, body: Callable[..., Any], *args: Any, **kw: Any) -> None:
        out.append((label, await store.write(body, *args, **kw)))

    async def r(label: str, body: Callable[..., Any], *args: Any, **kw: Any) -> None:
        out.append((label, await store.read(body, *args, **kw)))

    await w("issue", state.issue_nonce, "n-1", later, None)
    await w("issue-old", state.issue_nonce, "n-old", t0 - timedelta(seconds=1), None)
    await w("take", state.with_nonce, "n-1", "n-2", later, t0, state.nothing, (), {})
    await w("replay", state.with_nonce, "n-1", "n-3", later, t0, state.nothing, (), {})
    await w("expired", state.with_nonce, "n-old", "n-4", later, t0, state.nothing, (), {})
    await w("none", state.with_nonce, None, "n-5", later, t0, state.nothing, (), {})
    await w(
        "take+body", state.with_nonce, "n-2", "n-6", later, t0,
        state_orders.set_order, ("ord-2", "pending"), {"status": "processing"},
    )  # fmt: skip
    await w("issue+purge", state.issue_nonce, "n-7", later, t0)
    await w("purge", state.purge_nonces, t0 + timedelta(minutes=10))
    await r("account", state.get_account, "acct-1")
    await r("account-2", state.get_account, "acct-2")
    await r("no-account", state.get_account, "acct-none")
    await r("by-thumb", state.account_by_thumbprint, "thumb-2")
    await r("eab", state.get_eab_key, "kid-1")
    await r("order-1", state_orders.get_order, "ord-1")
    await r("order-2", state_orders.get_order, "ord-2")
    await r("no-order", state_orders.get_order, "ord-none")
    ids = ["az-3", "az-1", "az-none", "az-2"]
    await r("authzs", state_orders.get_authzs, ids, with_challenges=True)
    await r("authzs-bare", state_orders.get_authzs, ids, with_challenges=False)
    await r("authz-one", state_orders.get_authzs, ["az-2"], with_challenges=True)
    await r("authz-empty", state_orders.get_authzs, [], with_challenges=True)
    wanted = [("dns", "pre.example.test", False), ("dns", "example.test", True)]
    await r("reuse", state_orders.reusable_authzs, "acct-1", wanted, t0)
    await r("challenge", state_orders.get_challenge, "az-2-dns-01")
    # Whole seconds too: stored text keeps ".000000" (fixed width, so text order is time order).
    lease, until = t0.replace(microsecond=0) + timedelta(seconds=30), t0 + timedelta(days=30)
    await w("start", state_orders.start_challenge, "az-1-dns-01", lease)
    await w("start-again", state_orders.start_challenge, "az-1-dns-01", lease)
    await w("finish", state_orders.finish_challenge, "az-1-dns-01", "az-1", True, None, t0, until)
    await w("start-2", state_orders.start_challenge, "az-2-http-01", lease)
    problem = {"type": "urn:ietf:params:acme:error:connection", "detail": "refused"}
    await w(
        "fail", state_orders.finish_challenge, "az-2-http-01", "az-2", False, problem, t0, until
    )
    await w("accept", state_orders.accept_challenge, "az-3-http-01", "az-3", t0, until)
    await r("after", state_orders.get_authzs, ids, with_challenges=True)
    move = state_orders.set_order
    await w("set", move, "ord-1", "pending", status="processing")
    await w("set-stale", move, "ord-1", "pending", status="processing")
    await w("set-request", move, "ord-1", None, request_id="req-1")
    await w("set-valid", move, "ord-1", "processing", status="valid", certificate_serial="0a1b")
    await w("set-retry", move, "ord-2", "processing", status="pending", finalize_attempt=1)
    await w("set-error", move, "ord-2", "pending", status="invalid", error=problem)
    await r("by-serial", state_orders.order_for_certificate, "0a1b")
    await r("no-serial", state_orders.order_for_certificate, "ffff")
    await r("orders-end", state_orders.get_order, "ord-2")
    return out


def _raw_rows(conn: Connection) -> dict[str, list[tuple[Any, ...]]]:
    return {
        t.name: [tuple(r) for r in conn.exec_driver_sql(f"SELECT * FROM {t.name}")] for t in TABLES
    }


def _decoded_rows(conn: Connection) -> dict[str, list[tuple[Any, ...]]]:
    return {t.name: sorted(tuple(r) for r in conn.execute(sa.select(t))) for t in TABLES}


async def replay(store: SQLStore, clock: StepClock) -> tuple[list[tuple[str, Any]], Any, Any]:
    t0 = clock.now()
    await seed(store, t0)
    answers = await session(store, t0)
    raw = await store.read(_raw_rows) if store.dialect_name == "sqlite" else None
    return answers, raw, await store.read(_decoded_rows)


async def test_sqlite_raw_path_stores_the_bytes_core_stores(
    tmp_path: Path, clock: StepClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    results = []
    for name, enabled in (("raw", True), ("core", False)):
        monkeypatch.setattr(sqlite_rows, "ENABLED", enabled)
        store = open_store(default_sqlite_url(tmp_path / name), clock=clock.now)
        try:
            await store.migrate()
            results.append(await replay(store, clock))
        finally:
            await store.close()
    (raw_answers, raw_bytes, raw_rows), (core_answers, core_bytes, core_rows) = results
    assert raw_answers == core_answers
    assert raw_bytes == core_bytes
    assert raw_rows == core_rows


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgresql"])
async def test_sqlite_raw_path_and_postgresql_core_agree(
    store: SQLStore, tmp_path: Path, clock: StepClock
) -> None:
    assert store.dialect_name == "postgresql"
    lite = open_store(default_sqlite_url(tmp_path), clock=clock.now)
    try:
        await lite.migrate()
        assert sqlite_rows.ENABLED
        lite_answers, _, lite_rows = await replay(lite, clock)
    finally:
        await lite.close()
    pg_answers, _, pg_rows = await replay(store, clock)
    assert lite_answers == pg_answers
    assert lite_rows == pg_rows
