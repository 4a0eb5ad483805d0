"""What the ACME repository contract tests share (test_acme_store.py, test_acme_store_paths.py):
the implementations by name, the ``impl``/``repo`` fixtures and the parametrization over
raw SQLite, Core on SQLite and Core on PostgreSQL, ACME's tables, and the records and seed
data the tests start from."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from gateway.store import SQLStore
from protocols.acme import state
from protocols.acme.records import NewAuthz
from protocols.acme.repository import AcmeRepository
from protocols.acme.repository_core import CoreAcmeRepository
from protocols.acme.repository_postgres import PostgresAcmeRepository
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

TABLES = (
    acme_nonces, acme_accounts, acme_eab_keys, acme_orders, acme_authorizations, acme_challenges,
    acme_rate_counters,
)  # fmt: skip


IMPLEMENTATIONS: dict[str, type[CoreAcmeRepository]] = {
    "raw": SQLiteAcmeRepository,
    "core": CoreAcmeRepository,
}
#: PostgreSQL only: the driver bodies on asyncpg (protocols.acme.repository_postgres).
POSTGRES_ONLY: dict[str, type[CoreAcmeRepository]] = {"pg": PostgresAcmeRepository}


#: Every behaviour test: raw SQLite, Core on SQLite, Core on PostgreSQL.
ALL_IMPLEMENTATIONS = pytest.mark.parametrize(
    ("backend", "impl"),
    [
        ("sqlite", "raw"),
        ("sqlite", "core"),
        pytest.param("postgresql", "core", marks=pytest.mark.postgres),
        pytest.param("postgresql", "pg", marks=pytest.mark.postgres),
    ],
)


@pytest.fixture
def impl() -> str:
    """Which implementation (overridden by :data:`ALL_IMPLEMENTATIONS`)."""
    return "raw"


@pytest.fixture
def repo(impl: str) -> AcmeRepository:
    return {**IMPLEMENTATIONS, **POSTGRES_ONLY}[impl]()


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
