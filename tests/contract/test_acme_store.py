"""The ACME repository's two implementations (``protocols.acme.repository``): SQLAlchemy Core
(``CoreAcmeRepository``: PostgreSQL, and SQLite as the plain path) and raw SQLite
(``SQLiteAcmeRepository``: the per-request statements on the driver's cursor).

Each behaviour test below runs on raw SQLite, Core on SQLite and Core on PostgreSQL (see
conftest.py for the backends); then one scripted session of every per-request body is replayed
on all three, and the answers and the stored rows must agree (on SQLite: byte for byte).
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
from protocols.acme import state
from protocols.acme.ratelimit import Limit, OverLimit
from protocols.acme.records import NewAuthz
from protocols.acme.repository import AcmeRepository, open_repository
from protocols.acme.repository_core import CoreAcmeRepository
from protocols.acme.repository_sqlite import SQLiteAcmeRepository
from protocols.acme.tables import (
    acme_accounts,
    acme_authorizations,
    acme_challenges,
    acme_eab_keys,
    acme_nonces,
    acme_orders,
    acme_rate_counters,
)
from tests.contract.conftest import StepClock

TABLES = (
    acme_nonces, acme_accounts, acme_eab_keys, acme_orders, acme_authorizations, acme_challenges,
    acme_rate_counters,
)  # fmt: skip
IMPLEMENTATIONS: dict[str, type[CoreAcmeRepository]] = {
    "raw": SQLiteAcmeRepository,
    "core": CoreAcmeRepository,
}
#: Every behaviour test: raw SQLite, Core on SQLite, Core on PostgreSQL.
ALL_IMPLEMENTATIONS = pytest.mark.parametrize(
    ("backend", "impl"),
    [
        ("sqlite", "raw"),
        ("sqlite", "core"),
        pytest.param("postgresql", "core", marks=pytest.mark.postgres),
    ],
)


@pytest.fixture
def impl() -> str:
    """Which implementation (overridden by :data:`ALL_IMPLEMENTATIONS`)."""
    return "raw"


@pytest.fixture
def repo(impl: str) -> AcmeRepository:
    return IMPLEMENTATIONS[impl]()


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


async def seed(store: SQLStore, repo: AcmeRepository, t0: datetime) -> None:
    """Account ``acct-1`` (EAB-bound) with order ``ord-1`` on authorizations ``az-1``
    (``*.example.test``) and ``az-2`` (an IP), and order ``ord-2`` on the pre-authorized
    ``az-3``; every authorization has an http-01, dns-01 and tls-alpn-01 challenge."""
    await store.write(
        repo.put_eab_key, "kid-1", "ops@example.test", ["tls-server"], ["example.test"],
        b"\x00secret", t0,
    )  # fmt: skip
    await store.write(repo.create_account, "acct-1", "thumb-1", JWK, ["mailto:a@x"], "kid-1", t0)
    await store.write(repo.create_account, "acct-2", "thumb-2", JWK, [], None, t0, "tos-v1")
    expires = t0 + timedelta(days=1)
    first = [
        new_authz("az-1", "example.test", expires, wildcard=True),
        new_authz("az-2", "192.0.2.1", expires, type="ip"),
    ]
    await store.write(
        repo.create_order, order_of("ord-1", "acct-1", ["az-1", "az-2"], t0), first, t0
    )
    pre = [new_authz("az-3", "pre.example.test", t0 + timedelta(days=30), status="valid")]
    second = order_of(
        "ord-2", "acct-1", ["az-3"], t0, profile="short", not_before=t0.replace(microsecond=0),
        not_after=t0 + timedelta(days=6), replaces="aGk.MDE",
    )  # fmt: skip
    await store.write(repo.create_order, second, pre, t0)


# --- behaviour, on both backends ---------------------------------------------------------------


@ALL_IMPLEMENTATIONS
async def test_a_nonce_is_taken_once_and_a_fresh_one_issued(
    store: SQLStore, repo: AcmeRepository, clock: StepClock
) -> None:
    t0 = clock.now()
    later = t0 + timedelta(minutes=5)
    await store.write(repo.issue_nonce, "n-1", later, None)
    first = await store.write(repo.with_nonce, "n-1", "n-2", later, t0, state.nothing, (), {})
    replay = await store.write(repo.with_nonce, "n-1", "n-3", later, t0, state.nothing, (), {})
    chained = await store.write(repo.with_nonce, "n-3", "n-4", later, t0, state.nothing, (), {})
    assert (first, replay, chained) == ((True, None), (False, None), (True, None))


@ALL_IMPLEMENTATIONS
async def test_an_expired_nonce_is_refused_and_the_body_not_run(
    store: SQLStore, repo: AcmeRepository, clock: StepClock
) -> None:
    t0 = clock.now()
    await seed(store, repo, t0)
    await store.write(repo.issue_nonce, "n-old", t0, None)
    got = await store.write(
        repo.with_nonce, "n-old", "n-new", t0 + timedelta(minutes=5), t0,
        repo.set_order, ("ord-1", "pending"), {"status": "processing"},
    )  # fmt: skip
    assert got == (False, None)
    order = await store.read(repo.get_order, "ord-1")
    assert order is not None and order[0].status == "pending"


@ALL_IMPLEMENTATIONS
async def test_account_reads_carry_the_eab_binding(
    store: SQLStore, repo: AcmeRepository, clock: StepClock
) -> None:
    await seed(store, repo, clock.now())
    by_id = await store.read(repo.get_account, "acct-1")
    by_key = await store.read(repo.account_by_thumbprint, "thumb-1")
    assert by_id is not None and by_id == by_key
    assert (by_id.principal, by_id.eab_templates, by_id.jwk) == (
        "ops@example.test", ("tls-server",), JWK,
    )  # fmt: skip
    assert await store.read(repo.get_account, "acct-none") is None


@ALL_IMPLEMENTATIONS
async def test_get_authzs_follows_the_order_of_ids_and_skips_unknown_ones(
    store: SQLStore, repo: AcmeRepository, clock: StepClock
) -> None:
    await seed(store, repo, clock.now())
    many = await store.read(repo.get_authzs, ["az-2", "az-none", "az-1"], with_challenges=True)
    one = await store.read(repo.get_authzs, ["az-1"], with_challenges=True)
    assert [a.id for a in many] == ["az-2", "az-1"] and many[1] == one[0]
    assert [c.type for c in one[0].challenges] == ["dns-01", "http-01", "tls-alpn-01"]
    assert one[0].wildcard is True and many[0].wildcard is False
    assert await store.read(repo.get_authzs, ["az-none"], with_challenges=True) == []


@ALL_IMPLEMENTATIONS
async def test_a_challenge_is_started_once_and_finished_only_while_processing(
    store: SQLStore, repo: AcmeRepository, clock: StepClock
) -> None:
    t0 = clock.now()
    await seed(store, repo, t0)
    lease, until = t0 + timedelta(seconds=30), t0 + timedelta(days=30)
    finish = repo.finish_challenge
    await store.write(finish, "az-1-http-01", "az-1", True, None, t0, until)  # not processing
    assert await store.write(repo.start_challenge, "az-1-http-01", lease)
    assert not await store.write(repo.start_challenge, "az-1-http-01", lease)
    await store.write(finish, "az-1-http-01", "az-1", True, None, t0, until)
    found = await store.read(repo.get_challenge, "az-1-http-01")
    assert found is not None
    challenge, authz = found
    assert (challenge.status, challenge.validated_at) == ("valid", t0)
    assert (authz.status, authz.expires_at) == ("valid", until)
    assert await store.read(repo.get_challenge, "nope") is None


@ALL_IMPLEMENTATIONS
async def test_set_order_only_moves_an_order_in_the_expected_state(
    store: SQLStore, repo: AcmeRepository, clock: StepClock
) -> None:
    await seed(store, repo, clock.now())
    move = repo.set_order
    assert await store.write(move, "ord-1", "pending", status="processing")
    assert not await store.write(move, "ord-1", "pending", status="processing")
    assert await store.write(move, "ord-1", "processing", status="valid", certificate_serial="0a")
    found = await store.read(repo.order_for_certificate, "0a")
    assert found is not None and (found.id, found.status) == ("ord-1", "valid")
    assert await store.read(repo.order_for_certificate, "0b") is None


@ALL_IMPLEMENTATIONS
async def test_only_valid_unexpired_authorizations_are_reused(
    store: SQLStore, repo: AcmeRepository, clock: StepClock
) -> None:
    t0 = clock.now()
    await seed(store, repo, t0)
    wanted = [("dns", "pre.example.test", False), ("dns", "pre.example.test", True)]
    wanted += [("dns", "example.test", True)]  # az-1 is only pending
    reuse = repo.reusable_authzs
    assert await store.read(reuse, "acct-1", wanted, t0) == ["az-3", None, None]
    assert await store.read(reuse, "acct-2", wanted, t0) == [None, None, None]
    assert await store.read(reuse, "acct-1", wanted, t0 + timedelta(days=31)) == [None] * 3


@ALL_IMPLEMENTATIONS
async def test_older_awaiting_core_lists_only_older_processing_orders_of_the_account_and_template(
    store: SQLStore, repo: AcmeRepository, clock: StepClock
) -> None:
    """Candidates for supersession (protocols.acme.supersede): older, same account and
    template, ``processing`` with a core request; never the order itself or a newer one."""
    t0 = clock.now()
    await seed(store, repo, t0)
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
        await store.write(repo.create_order, made[oid], [], at)
        if oid != "o-not-processing":
            await store.write(
                repo.set_order, oid, "pending", status="processing", request_id=f"r-{oid}"
            )
    older = await store.read(repo.older_awaiting_core, made["o-new"])
    assert [o.id for o in older] == ["o-old"] and older[0].request_id == "r-o-old"
    assert await store.read(repo.older_awaiting_core, made["o-old"]) == []
    newest = await store.read(repo.older_awaiting_core, made["o-newest"])
    assert sorted(o.id for o in newest) == ["o-new", "o-old"]


@ALL_IMPLEMENTATIONS
async def test_naive_datetimes_are_refused_by_the_acme_bodies(
    store: SQLStore, repo: AcmeRepository
) -> None:
    with pytest.raises(sa.exc.StatementError, match="naive"):
        await store.write(repo.issue_nonce, "n-naive", datetime(2030, 1, 1), None)


@ALL_IMPLEMENTATIONS
async def test_creations_over_a_shared_limit_write_nothing(
    store: SQLStore, repo: AcmeRepository, clock: StepClock
) -> None:
    """RFC 8555 §6.6: newAccount and newOrder count against shared limits in their own
    transaction; over the limit nothing is written, and an existing account is not a hit."""
    t0 = clock.now()
    per_ip = Limit("ip:192.0.2.7", 1, 3600, 5)
    made = await store.write(repo.create_account, "a-1", "t-1", JWK, [], None, t0, None, per_ip)
    again = await store.write(repo.create_account, "a-1b", "t-1", JWK, [], None, t0, None, per_ip)
    over = await store.write(repo.create_account, "a-2", "t-2", JWK, [], None, t0, None, per_ip)
    assert not isinstance(made, OverLimit) and made[1] is True
    assert not isinstance(again, OverLimit) and (again[0].id, again[1]) == ("a-1", False)
    assert over == OverLimit(per_ip)
    assert await store.read(repo.get_account, "a-2") is None
    per_account = Limit("acct:a-1", 1, 3600, 5)
    first = order_of("o-1", "a-1", [], t0)
    assert await store.write(repo.create_order, first, [], t0, per_account) == first
    refused = order_of("o-2", "a-1", ["az-9"], t0)
    fresh = [new_authz("az-9", "nine.example.test", t0 + timedelta(days=1))]
    got = await store.write(repo.create_order, refused, fresh, t0, per_account)
    assert got == OverLimit(per_account)
    assert await store.read(repo.get_order, "o-2") is None
    assert await store.read(repo.get_authzs, ["az-9"], with_challenges=True) == []
    assert await store.read(repo.orders_of, "a-1") == ["o-1"]


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
    store: SQLStore, repo: AcmeRepository, clock: StepClock, core_statements: list[str]
) -> None:
    assert isinstance(repo, SQLiteAcmeRepository)
    t0 = clock.now()
    await seed(store, repo, t0)
    core_statements.clear()
    await session(store, repo, t0)
    acme = [s for s in core_statements if "acme_" in s]
    assert acme == [], acme


async def session(store: SQLStore, repo: AcmeRepository, t0: datetime) -> list[tuple[str, Any]]:
    """Every converted body once or more, with the answers in order (after :func:`seed`)."""
    out: list[tuple[str, Any]] = []
    later = t0 + timedelta(minutes=5)

    async def w(label: str, body: Callable[..., Any], *args: Any, **kw: Any) -> None:
        out.append((label, await store.write(body, *args, **kw)))

    async def r(label: str, body: Callable[..., Any], *args: Any, **kw: Any) -> None:
        out.append((label, await store.read(body, *args, **kw)))

    await w("issue", repo.issue_nonce, "n-1", later, None)
    await w("issue-old", repo.issue_nonce, "n-old", t0 - timedelta(seconds=1), None)
    await w("take", repo.with_nonce, "n-1", "n-2", later, t0, state.nothing, (), {})
    await w("replay", repo.with_nonce, "n-1", "n-3", later, t0, state.nothing, (), {})
    await w("expired", repo.with_nonce, "n-old", "n-4", later, t0, state.nothing, (), {})
    await w("none", repo.with_nonce, None, "n-5", later, t0, state.nothing, (), {})
    await w(
        "take+body", repo.with_nonce, "n-2", "n-6", later, t0,
        repo.set_order, ("ord-2", "pending"), {"status": "processing"},
    )  # fmt: skip
    await w("issue+purge", repo.issue_nonce, "n-7", later, t0)
    await w("purge", repo.purge_nonces, t0 + timedelta(minutes=10))
    await r("account", repo.get_account, "acct-1")
    await r("account-2", repo.get_account, "acct-2")
    await r("no-account", repo.get_account, "acct-none")
    await r("by-thumb", repo.account_by_thumbprint, "thumb-2")
    await r("eab", repo.get_eab_key, "kid-1")
    await r("order-1", repo.get_order, "ord-1")
    await r("order-2", repo.get_order, "ord-2")
    await r("no-order", repo.get_order, "ord-none")
    ids = ["az-3", "az-1", "az-none", "az-2"]
    await r("authzs", repo.get_authzs, ids, with_challenges=True)
    await r("authzs-bare", repo.get_authzs, ids, with_challenges=False)
    await r("authz-one", repo.get_authzs, ["az-2"], with_challenges=True)
    await r("authz-empty", repo.get_authzs, [], with_challenges=True)
    wanted = [("dns", "pre.example.test", False), ("dns", "example.test", True)]
    await r("reuse", repo.reusable_authzs, "acct-1", wanted, t0)
    await r("challenge", repo.get_challenge, "az-2-dns-01")
    # Whole seconds too: stored text keeps ".000000" (fixed width, so text order is time order).
    lease, until = t0.replace(microsecond=0) + timedelta(seconds=30), t0 + timedelta(days=30)
    await w("start", repo.start_challenge, "az-1-dns-01", lease)
    await w("start-again", repo.start_challenge, "az-1-dns-01", lease)
    await w("finish", repo.finish_challenge, "az-1-dns-01", "az-1", True, None, t0, until)
    await w("start-2", repo.start_challenge, "az-2-http-01", lease)
    problem = {"type": "urn:ietf:params:acme:error:connection", "detail": "refused"}
    await w("fail", repo.finish_challenge, "az-2-http-01", "az-2", False, problem, t0, until)
    await w("accept", repo.accept_challenge, "az-3-http-01", "az-3", t0, until)
    await r("after", repo.get_authzs, ids, with_challenges=True)
    move = repo.set_order
    await w("set", move, "ord-1", "pending", status="processing")
    await w("set-stale", move, "ord-1", "pending", status="processing")
    await w("set-request", move, "ord-1", None, request_id="req-1")
    await w("set-valid", move, "ord-1", "processing", status="valid", certificate_serial="0a1b")
    await w("set-retry", move, "ord-2", "processing", status="pending", finalize_attempt=1)
    await w("set-error", move, "ord-2", "pending", status="invalid", error=problem)
    await r("by-serial", repo.order_for_certificate, "0a1b")
    await r("no-serial", repo.order_for_certificate, "ffff")
    await r("orders-end", repo.get_order, "ord-2")
    hourly = Limit("acct:acct-1", 2, 3600, 10)
    for i in range(3):
        await w(f"hit-{i}", repo.count_hit, hourly)
    await w("hit-next-window", repo.count_hit, Limit("acct:acct-1", 2, 3600, 11))
    await w("hit-other", repo.count_hit, Limit("ip:192.0.2.9", 1, 60, 10))
    return out


def _raw_rows(conn: Connection) -> dict[str, list[tuple[Any, ...]]]:
    return {
        t.name: [tuple(r) for r in conn.exec_driver_sql(f"SELECT * FROM {t.name}")] for t in TABLES
    }


def _decoded_rows(conn: Connection) -> dict[str, list[tuple[Any, ...]]]:
    return {t.name: sorted(tuple(r) for r in conn.execute(sa.select(t))) for t in TABLES}


async def replay(
    store: SQLStore, repo: AcmeRepository, clock: StepClock
) -> tuple[list[tuple[str, Any]], Any, Any]:
    t0 = clock.now()
    await seed(store, repo, t0)
    answers = await session(store, repo, t0)
    raw = await store.read(_raw_rows) if store.dialect_name == "sqlite" else None
    return answers, raw, await store.read(_decoded_rows)


async def test_sqlite_raw_and_core_implementations_store_the_same_bytes(
    tmp_path: Path, clock: StepClock
) -> None:
    results = []
    for name, implementation in IMPLEMENTATIONS.items():
        store = open_store(default_sqlite_url(tmp_path / name), clock=clock.now)
        try:
            await store.migrate()
            results.append(await replay(store, implementation(), clock))
        finally:
            await store.close()
    (raw_answers, raw_bytes, raw_rows), (core_answers, core_bytes, core_rows) = results
    assert raw_answers == core_answers
    assert raw_bytes == core_bytes
    assert raw_rows == core_rows


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgresql"])
async def test_sqlite_raw_and_postgresql_core_implementations_agree(
    store: SQLStore, tmp_path: Path, clock: StepClock
) -> None:
    assert store.dialect_name == "postgresql"
    lite = open_store(default_sqlite_url(tmp_path), clock=clock.now)
    try:
        await lite.migrate()
        lite_repo = open_repository(lite.dialect_name)
        assert isinstance(lite_repo, SQLiteAcmeRepository)
        lite_answers, _, lite_rows = await replay(lite, lite_repo, clock)
    finally:
        await lite.close()
    pg_repo = open_repository(store.dialect_name)
    assert type(pg_repo) is CoreAcmeRepository
    pg_answers, _, pg_rows = await replay(store, pg_repo, clock)
    assert lite_answers == pg_answers
    assert lite_rows == pg_rows


def test_the_implementation_is_chosen_once_by_dialect() -> None:
    assert type(open_repository("sqlite")) is SQLiteAcmeRepository
    assert type(open_repository("sqlite", raw_sqlite=False)) is CoreAcmeRepository
    assert type(open_repository("postgresql")) is CoreAcmeRepository
