"""The PostgreSQL statements of :class:`protocols.acme.repository_postgres.PostgresAcmeRepository`
and their row decoders (SQL text, parameter encoding and records only; the repository runs
them on asyncpg).

Each read is one statement, joins included (an account with its EAB key, an order with its
authorizations, a challenge with its authorization), so a request's reads cost one round trip
each. Values are encoded as SQLAlchemy Core binds them on PostgreSQL (``UTCDateTime``: aware
datetimes, naive ones refused; ``JSONB``: ``json.dumps`` text through the codec SQLAlchemy
installs on every pooled connection, so ``None`` is the JSON ``null``), so both repositories
store the same rows (``tests/contract/test_acme_store_postgres.py``).
"""

# The SQL here is rendered from this module's constant column names, never from input.
# ruff: noqa: S608

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql.base import PGDialect

from protocols.acme.records import Account, Authz, Challenge, Order
from protocols.acme.tables import (
    acme_accounts,
    acme_authorizations,
    acme_challenges,
    acme_eab_keys,
    acme_orders,
)


def at(value: datetime | None) -> datetime | None:
    """A datetime as ``UTCDateTime`` binds it: aware, in UTC; a naive one is refused as Core
    refuses it (``StatementError`` around ``ValueError``)."""
    if value is None:
        return None
    if value.tzinfo is None:
        text = "naive datetime given to the store; use timezone-aware UTC"
        raise sa.exc.StatementError(text, None, None, ValueError(text))  # type: ignore[arg-type]
    return value.astimezone(UTC)


def _columns(table: sa.Table, names: Sequence[str], alias: str) -> str:
    """``names`` as ``alias.name`` select list, checked against the table at import."""
    missing = [n for n in names if n not in table.c]
    if missing:  # pragma: no cover - a schema change must update this module
        raise AssertionError(f"{table.name} has no column(s) {missing}")
    return ", ".join(f"{alias}.{n}" for n in names)


def _cast(table: sa.Table, name: str) -> str:
    """The PostgreSQL type of a column, for ``$n::type`` where a value has no column to take
    its type from (an ``INSERT ... SELECT``); without a length, which a cast would truncate to
    where the column refuses an overlong value."""
    compiled = table.c[name].type.compile(dialect=PGDialect())  # type: ignore[no-untyped-call]
    return str(compiled).split("(")[0]


def encoder(column: sa.Column[Any]) -> Callable[[Any], Any]:
    """How a value of ``column`` is sent: JSON as text, datetimes checked, the rest as is."""
    kind = _cast(column.table, column.name)  # type: ignore[arg-type]
    if kind == "JSONB":
        return json.dumps
    if kind.startswith("TIMESTAMP"):
        return at
    return lambda value: value


# --- nonces (RFC 8555 §6.5) -------------------------------------------------------------------

#: A replayed statement (the engine sends a driver body again after a dropped connection)
#: finds its fresh nonce recorded; random 128-bit values never collide otherwise.
_FRESH = "INSERT INTO acme_nonces (value, expires_at) VALUES ({v}, {e}) ON CONFLICT DO NOTHING"
NONCE_ISSUE = _FRESH.format(v="$1", e="$2")
NONCE_ISSUE_PURGING = "WITH p AS (DELETE FROM acme_nonces WHERE expires_at < $3) " + _FRESH.format(
    v="$1", e="$2"
)
NONCE_PURGE = "DELETE FROM acme_nonces WHERE expires_at < $1"
#: The CTEs that take ``used`` ($1, live at $2) and record ``fresh`` ($3, until $4): one
#: DELETE removes the row, so under concurrency (any instance) only one statement sees it in
#: ``taken``; the writes folded after these run only ``WHERE EXISTS (SELECT 1 FROM taken)``.
NONCE_SWAP = (
    "taken AS (DELETE FROM acme_nonces WHERE value = $1 AND expires_at > $2 RETURNING 1), "
    "fresh AS (" + _FRESH.format(v="$3", e="$4") + ")"
)
TAKEN = "EXISTS (SELECT 1 FROM taken)"

#: The signer's account still reads as the caller's copy (``expect`` of ``with_nonce``): its
#: row and its EAB key's columns (all ``NULL`` when unbound or the key is gone), ``$5``-``$14``
#: (:func:`expect_params`). JSONB compares by value.
ACCOUNT_UNCHANGED = (
    "EXISTS (SELECT 1 FROM acme_accounts a LEFT JOIN acme_eab_keys k ON k.kid = a.eab_kid "
    "WHERE a.id = $5 AND a.key_thumbprint = $6 AND a.jwk = $7::jsonb AND a.status = $8 "
    "AND a.contact = $9::jsonb AND a.eab_kid IS NOT DISTINCT FROM $10 "
    "AND a.tos_agreed IS NOT DISTINCT FROM $11 AND k.principal IS NOT DISTINCT FROM $12 "
    "AND k.templates IS NOT DISTINCT FROM $13::jsonb "
    "AND k.domains IS NOT DISTINCT FROM $14::jsonb)"
)
#: :data:`NONCE_SWAP` that takes the nonce only while :data:`ACCOUNT_UNCHANGED` holds.
NONCE_SWAP_EXPECTING = NONCE_SWAP.replace(
    "expires_at > $2 RETURNING", f"expires_at > $2 AND {ACCOUNT_UNCHANGED} RETURNING"
)
assert NONCE_SWAP_EXPECTING != NONCE_SWAP
#: A POST's nonce swap alone (either form): 1 when ``used`` was taken.
SWAP_ONLY = {x: f"WITH {x} SELECT count(*) FROM taken" for x in (NONCE_SWAP, NONCE_SWAP_EXPECTING)}


def expect_params(account: Account) -> tuple[Any, ...]:
    """``$5``-``$14`` of :data:`ACCOUNT_UNCHANGED`: the columns :func:`account_from_row`
    read ``account`` from."""
    bound = account.principal is not None
    return (
        account.id, account.thumbprint, json.dumps(account.jwk), account.status,
        json.dumps(account.contact), account.eab_kid, account.tos_agreed, account.principal,
        json.dumps(list(account.eab_templates)) if bound else None,
        json.dumps(list(account.eab_domains)) if bound else None,
    )  # fmt: skip


# --- accounts (RFC 8555 §7.3) -------------------------------------------------------------------

_ACCOUNT_NAMES = ("id", "key_thumbprint", "jwk", "status", "contact", "eab_kid", "tos_agreed")
_ACCOUNT_SELECT = (
    f"SELECT {_columns(acme_accounts, _ACCOUNT_NAMES, 'a')}, "
    f"{_columns(acme_eab_keys, ('principal', 'templates', 'domains'), 'k')} "
    "FROM acme_accounts a LEFT JOIN acme_eab_keys k ON k.kid = a.eab_kid"
)
ACCOUNT_BY_ID = f"{_ACCOUNT_SELECT} WHERE a.id = $1"
ACCOUNT_BY_THUMBPRINT = f"{_ACCOUNT_SELECT} WHERE a.key_thumbprint = $1"
ACCOUNT_INSERT = (
    "INSERT INTO acme_accounts (id, key_thumbprint, jwk, status, contact, eab_kid, created_at, "
    "tos_agreed) VALUES ($1, $2, $3, 'valid', $4, $5, $6, $7)"
)
ACCOUNT_CHANGE_KEY = (
    "UPDATE acme_accounts SET key_thumbprint = $3, jwk = $4 WHERE id = $1 AND key_thumbprint = $2"
)


def account_from_row(row: Sequence[Any]) -> Account:
    """An account row with its EAB key's columns (``NULL`` when unbound or the key is gone)."""
    aid, thumbprint, jwk, status, contact, eab_kid, tos_agreed, principal, templates, domains = row
    if principal is None:
        return Account(aid, thumbprint, dict(jwk), status, list(contact), eab_kid, None, (), (),
                       tos_agreed)  # fmt: skip
    return Account(aid, thumbprint, dict(jwk), status, list(contact), eab_kid, principal,
                   tuple(templates), tuple(domains), tos_agreed)  # fmt: skip


# --- orders (RFC 8555 §7.1.3) -------------------------------------------------------------------

_ORDER_NAMES = (
    "id", "account_id", "status", "template", "profile", "identifiers", "authz_ids",
    "not_before", "not_after", "expires_at", "error", "replaces", "finalize_attempt",
    "request_id", "certificate_serial",
)  # fmt: skip
_ORDER_COLUMNS = _columns(acme_orders, _ORDER_NAMES, "o")
_AUTHZ_NAMES = ("id", "account_id", "type", "value", "wildcard", "status", "expires_at")
_AUTHZ_COLUMNS = _columns(acme_authorizations, _AUTHZ_NAMES, "a")
_CHALLENGE_NAMES = ("id", "authz_id", "type", "token", "status", "validated_at", "error")
_CHALLENGE_COLUMNS = _columns(acme_challenges, _CHALLENGE_NAMES, "c")
N_ORDER, N_AUTHZ = len(_ORDER_NAMES), len(_AUTHZ_NAMES)

ORDER_BY_ID = f"SELECT {_ORDER_COLUMNS} FROM acme_orders o WHERE o.id = $1"
#: An order with its authorizations in the order of ``authz_ids`` (unknown ids skipped, as
#: Core's two statements do): one row per authorization, the order's columns on each.
ORDER_WITH_AUTHZS = (
    f"SELECT {_ORDER_COLUMNS}, {_AUTHZ_COLUMNS}, t.n AS k1 FROM acme_orders o "
    "LEFT JOIN LATERAL jsonb_array_elements_text(o.authz_ids) WITH ORDINALITY t(id, n) ON true "
    "LEFT JOIN acme_authorizations a ON a.id = t.id WHERE o.id = $1 ORDER BY t.n"
)
ORDER_BY_SERIAL = (
    f"SELECT {_ORDER_COLUMNS} FROM acme_orders o WHERE o.certificate_serial = $1 LIMIT 1"
)


def older_awaiting_sql(account: str, template: str, order: str) -> str:
    """The orders older than ``order`` of its account and template still waiting for the core,
    the three given as ``$n`` placeholders."""
    return (
        f"SELECT {_ORDER_COLUMNS} FROM acme_orders o WHERE o.account_id = {account} "
        f"AND o.template = {template} AND o.status = 'processing' AND o.request_id IS NOT NULL "
        f"AND o.id != {order} AND o.created_at < (SELECT created_at FROM acme_orders "
        f"WHERE id = {order})"
    )


ORDERS_OLDER_AWAITING_CORE = older_awaiting_sql("$1", "$2", "$3")
ORDERS_OF_ACCOUNT = "SELECT id FROM acme_orders WHERE account_id = $1 ORDER BY created_at"
ORDERS_REPLACING = f"SELECT {_ORDER_COLUMNS} FROM acme_orders o WHERE o.replaces = $1"
ORDER_ENCODERS = {c.name: encoder(c) for c in acme_orders.columns}


def order_from_row(row: Sequence[Any]) -> Order:
    """The first :data:`N_ORDER` columns of a row as an :class:`Order`."""
    (
        oid, account_id, status, template, profile, identifiers, authz_ids, not_before,
        not_after, expires_at, error, replaces, finalize_attempt, request_id, serial,
    ) = row[:N_ORDER]  # fmt: skip
    return Order(oid, account_id, status, template, profile, list(identifiers), list(authz_ids),
                 not_before, not_after, expires_at, error, replaces, finalize_attempt, request_id,
                 serial)  # fmt: skip


# --- authorizations and challenges (RFC 8555 §7.1.4, §7.1.5) ---------------------------------

#: The reads' sort keys are also columns ``k1``, ``k2`` (see :func:`after_nonce`).
#: Authorizations by id in the order of the ids (duplicates repeated, unknown ones skipped).
AUTHZS = (
    f"SELECT {_AUTHZ_COLUMNS}, t.n AS k1 FROM unnest($1::text[]) WITH ORDINALITY t(id, n) "
    "JOIN acme_authorizations a ON a.id = t.id ORDER BY t.n"
)
#: The same with each authorization's challenges, ordered by type: one row per challenge.
AUTHZS_WITH_CHALLENGES = (
    f"SELECT {_AUTHZ_COLUMNS}, t.n AS k1, {_CHALLENGE_COLUMNS}, c.type AS k2 "
    "FROM unnest($1::text[]) WITH ORDINALITY t(id, n) "
    "JOIN acme_authorizations a ON a.id = t.id "
    "LEFT JOIN acme_challenges c ON c.authz_id = a.id ORDER BY t.n, c.type"
)
CHALLENGE_WITH_AUTHZ = (
    f"SELECT {_CHALLENGE_COLUMNS}, {_AUTHZ_COLUMNS} FROM acme_challenges c "
    "JOIN acme_authorizations a ON a.id = c.authz_id WHERE c.id = $1"
)
VALID_IDENTIFIERS = (
    "SELECT type, value FROM acme_authorizations WHERE account_id = $1 AND status = 'valid' "
    "AND expires_at > $2"
)
EAB_BY_KID = (
    "SELECT kid, principal, templates, domains, secret, created_at FROM acme_eab_keys "
    "WHERE kid = $1"
)
#: For each wanted (type, value, wildcard), in order: a valid unexpired authorization's id.
REUSABLE_AUTHZS = (
    "SELECT (SELECT a.id FROM acme_authorizations a WHERE a.account_id = $1 AND a.type = w.type "
    "AND a.value = w.value AND a.wildcard = w.wildcard AND a.status = 'valid' "
    "AND a.expires_at > $2 LIMIT 1) FROM unnest($3::text[], $4::text[], $5::boolean[]) "
    "WITH ORDINALITY w(type, value, wildcard, n) ORDER BY w.n"
)


@functools.lru_cache(maxsize=32)
def after_nonce(read: str, order: str, expecting: bool = False) -> str:
    """The statement that takes a POST's nonce (:data:`NONCE_SWAP`, ``$1``-``$4``; with
    ``expecting``, :data:`NONCE_SWAP_EXPECTING`, ``$1``-``$14``) and runs the read-only ``read``
    (a POST-as-GET): the count of nonces taken, then ``read``'s columns, one row per row of it
    (one row of NULLs when it has none) in ``order``; ``read``'s parameters follow the
    nonce's."""
    swap, width = (NONCE_SWAP_EXPECTING, 14) if expecting else (NONCE_SWAP, 4)
    shifted = re.sub(r"\$(\d+)", lambda m: f"${int(m[1]) + width}", read)
    return (
        f"WITH {swap} SELECT k.taken, r.* FROM (SELECT count(*) AS taken FROM taken) k "
        f"LEFT JOIN LATERAL ({shifted}) r ON true{' ORDER BY ' + order if order else ''}"
    )


@functools.lru_cache(maxsize=64)
def insert_select(
    table: sa.Table, names: tuple[str, ...], rows: int, first: int, guard: str
) -> str:
    """``INSERT`` of ``rows`` rows of ``names`` from ``$first`` on, only ``WHERE guard``
    (``TRUE``, or a taken nonce): typed ``VALUES`` under a ``SELECT``. Built once per shape
    (a handful: orders have one or a few authorizations of three challenges each)."""
    width, casts = len(names), [_cast(table, n) for n in names]
    values = ", ".join(
        "(" + ", ".join(f"${first + r * width + i}::{casts[i]}" for i in range(width)) + ")"
        for r in range(rows)
    )
    return (
        f"INSERT INTO {table.name} ({', '.join(names)}) "
        f"SELECT * FROM (VALUES {values}) v WHERE {guard}"
    )


AUTHZ_INSERT_NAMES = (*_AUTHZ_NAMES, "created_at")
CHALLENGE_INSERT_NAMES = (*_CHALLENGE_NAMES, "lease_until", "attempts")
ORDER_INSERT_NAMES = (*_ORDER_NAMES, "created_at")


def challenge_from_row(row: Sequence[Any]) -> Challenge:
    """Seven challenge columns as a :class:`Challenge`."""
    cid, authz_id, type_, token, status, validated_at, error = row
    return Challenge(cid, authz_id, type_, token, status, validated_at, error)


def authz_from_row(row: Sequence[Any], challenges: tuple[Challenge, ...] = ()) -> Authz:
    """Seven authorization columns as an :class:`Authz` with these challenges."""
    aid, account_id, type_, value, wildcard, status, expires_at = row
    return Authz(aid, account_id, type_, value, bool(wildcard), status, expires_at, challenges)


#: A read as one statement: (SQL, its ORDER BY over the sort-key columns ``r.k1``/``r.k2``
#: when :func:`postgres_rows.after_nonce` wraps it, parameters, rows -> answer).
Read = tuple[str, str, tuple[Any, ...], Callable[[Sequence[Any]], Any]]


def order_read(order_id: str) -> Read:
    def decode(rows: Sequence[Any]) -> tuple[Order, list[Authz]] | None:
        if not rows:
            return None
        n = N_ORDER
        authzs = [authz_from_row(r[n : n + 7]) for r in rows if r[n] is not None]
        return order_from_row(rows[0]), authzs

    return ORDER_WITH_AUTHZS, "r.k1", (order_id,), decode


def serial_read(serial: str) -> Read:
    def decode(rows: Sequence[Any]) -> Order | None:
        return order_from_row(rows[0]) if rows else None

    return ORDER_BY_SERIAL, "", (serial,), decode


def authzs_read(ids: Sequence[str], *, with_challenges: bool) -> Read:
    if not with_challenges:
        return AUTHZS, "r.k1", (list(ids),), _authzs

    return AUTHZS_WITH_CHALLENGES, "r.k1, r.k2", (list(ids),), _authzs_with_challenges


def _authzs(rows: Sequence[Any]) -> list[Authz]:
    return [authz_from_row(r[:7]) for r in rows]


def _authzs_with_challenges(rows: Sequence[Any]) -> list[Authz]:
    """One row per challenge (NULLs for an authorization without any), by position in ids."""
    heads: dict[int, Any] = {}
    challenges: dict[int, list[Challenge]] = {}
    for r in rows:
        if r[7] not in heads:
            heads[r[7]], challenges[r[7]] = r[:7], []
        if r[8] is not None:
            challenges[r[7]].append(challenge_from_row(r[8:15]))
    return [authz_from_row(head, tuple(challenges[n])) for n, head in heads.items()]


#: The reads a POST-as-GET runs with its nonce, folded into the nonce's statement (by the
#: repository method's name).
READS: dict[str, Callable[..., Read]] = {
    "get_order": order_read,
    "order_for_certificate": serial_read,
    "get_authzs": authzs_read,
}
