"""The per-request ACME statements on the raw ``sqlite3`` cursor.

Why: every ACME request runs a handful of small statements (take a nonce and issue the next,
load the account, the order and its authorizations, a state-machine UPDATE), and SQLAlchemy
Core's execute machinery (cache-key lookup, bind and result processing, result objects) cost
several times more Python than SQLite itself; ``get_authzs``' expanding IN list was even
re-rendered on every call. As :mod:`gateway.store.sqlite_fast` does for the issuance path,
the bodies in :mod:`protocols.acme.state` and :mod:`protocols.acme.state_orders` call the
functions here on SQLite (:func:`applies`), inside the transaction the store opened, with
pre-rendered SQL and parameter tuples, and decode rows straight into the records of
:mod:`protocols.acme.records`. PostgreSQL keeps the Core statements.

Values are encoded exactly as the SQLAlchemy column types write them on SQLite (``UTCDateTime``:
ISO 8601 text with microseconds; ``JSON``: ``json.dumps``, so ``None`` is the text ``null``;
``Boolean``: 0/1), so a Core read and a raw read see the same rows
(``tests/contract/test_acme_store.py`` compares the stored bytes of both paths). The UPDATEs
keep the state-machine conditions in their WHERE clause, and driver errors surface as
SQLAlchemy's exceptions, as in ``sqlite_fast.execute``, so the store's busy-retry and
savepoint handling treat both paths alike.
"""

# The SQL here is rendered from this module's constant column names, never from input.
# ruff: noqa: S608

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.store.sqlite_fast import (
    column_encoder,
    driver_error,
    execute,
    fetch_all,
    fetch_one,
    raw_cursor,
    run_statements,
)
from gateway.store.sqlite_fast import decode_datetime as _decode_dt
from gateway.store.sqlite_fast import decode_json as _loads
from gateway.store.sqlite_fast import encode_datetime as _dt
from gateway.store.sqlite_fast import encode_json as _json
from protocols.acme.records import Account, Authz, Challenge, NewAuthz, Order
from protocols.acme.tables import (
    acme_accounts,
    acme_authorizations,
    acme_challenges,
    acme_eab_keys,
    acme_nonces,
    acme_orders,
)

#: The raw path needs ``DELETE ... RETURNING`` (SQLite 3.35) for the nonce, as Core does;
#: with an older library everything stays on Core. Tests turn it off to run Core on SQLite.
ENABLED = sqlite3.sqlite_version_info >= (3, 35, 0)


def applies(conn: Connection) -> bool:
    """Whether the bodies should use this module on ``conn`` (SQLite) instead of Core."""
    return ENABLED and conn.dialect.name == "sqlite"


def _columns(table: sa.Table, names: Sequence[str]) -> str:
    """``names`` as a select list, checked against the table (a renamed column fails at
    import, not on the first request)."""
    missing = [n for n in names if n not in table.c]
    if missing:  # pragma: no cover - a schema change must update this module
        raise AssertionError(f"{table.name} has no column(s) {missing}")
    return ", ".join(names)


# --- nonces (RFC 8555 §6.5) -------------------------------------------------------------------

NONCE_INSERT = (
    f"INSERT INTO acme_nonces ({_columns(acme_nonces, ('value', 'expires_at'))}) VALUES (?, ?)"
)
NONCE_TAKE = "DELETE FROM acme_nonces WHERE value = ? AND expires_at > ? RETURNING value"
NONCE_PURGE = "DELETE FROM acme_nonces WHERE expires_at < ?"


def issue_nonce(
    conn: Connection, value: str, expires: datetime, purge_before: datetime | None
) -> None:
    """:func:`protocols.acme.state.issue_nonce`."""
    statements: list[tuple[str, tuple[Any, ...]]] = [(NONCE_INSERT, (value, _dt(expires)))]
    if purge_before is not None:
        statements.append((NONCE_PURGE, (_dt(purge_before),)))
    run_statements(conn, statements)


def purge_nonces(conn: Connection, now: datetime) -> int:
    """:func:`protocols.acme.state.purge_nonces`."""
    return execute(conn, NONCE_PURGE, (_dt(now),))


def swap_nonce(
    conn: Connection, used: str | None, fresh: str, expires: datetime, now: datetime
) -> bool:
    """The nonce half of :func:`protocols.acme.state.with_nonce`: take ``used`` if it is live
    (True), and issue ``fresh`` either way."""
    taken = used is not None and fetch_one(conn, NONCE_TAKE, (used, _dt(now))) is not None
    execute(conn, NONCE_INSERT, (fresh, _dt(expires)))
    return taken


# --- accounts and EAB keys (RFC 8555 §7.3) ----------------------------------------------------

_ACCOUNT_COLUMNS = _columns(
    acme_accounts, ("id", "key_thumbprint", "jwk", "status", "contact", "eab_kid", "tos_agreed")
)
ACCOUNT_BY_ID = f"SELECT {_ACCOUNT_COLUMNS} FROM acme_accounts WHERE id = ?"
ACCOUNT_BY_THUMBPRINT = f"SELECT {_ACCOUNT_COLUMNS} FROM acme_accounts WHERE key_thumbprint = ?"
_EAB_NAMES = ("kid", "principal", "templates", "domains", "secret", "created_at")
EAB_BY_KID = f"SELECT {_columns(acme_eab_keys, _EAB_NAMES)} FROM acme_eab_keys WHERE kid = ?"


def account_from_row(row: tuple[Any, ...]) -> Account:
    """An ``_ACCOUNT_COLUMNS`` row as an :class:`Account` (without its EAB fields)."""
    aid, thumbprint, jwk, status, contact, eab_kid, tos_agreed = row
    return Account(
        aid,
        thumbprint,
        dict(json.loads(jwk)),
        status,
        list(json.loads(contact)),
        eab_kid,
        tos_agreed=tos_agreed,
    )


def get_account(conn: Connection, account_id: str) -> Account | None:
    """The account row with id ``account_id`` (the caller adds the EAB binding)."""
    row = fetch_one(conn, ACCOUNT_BY_ID, (account_id,))
    return None if row is None else account_from_row(row)


def account_by_thumbprint(conn: Connection, thumbprint: str) -> Account | None:
    """The account row holding the key with this RFC 7638 thumbprint."""
    row = fetch_one(conn, ACCOUNT_BY_THUMBPRINT, (thumbprint,))
    return None if row is None else account_from_row(row)


def get_eab_key(conn: Connection, kid: str) -> dict[str, Any] | None:
    """:func:`protocols.acme.state.get_eab_key`: every column, decoded."""
    row = fetch_one(conn, EAB_BY_KID, (kid,))
    if row is None:
        return None
    kid_, principal, templates, domains, secret, created_at = row
    return {
        "kid": kid_,
        "principal": principal,
        "templates": json.loads(templates),
        "domains": json.loads(domains),
        "secret": secret,
        "created_at": _decode_dt(created_at),
    }


# --- orders -------------------------------------------------------------------------------------

_ORDER_NAMES = (
    "id", "account_id", "status", "template", "profile", "identifiers", "authz_ids",
    "not_before", "not_after", "expires_at", "error", "replaces", "finalize_attempt",
    "request_id", "certificate_serial",
)  # fmt: skip
_ORDER_COLUMNS = _columns(acme_orders, _ORDER_NAMES)
ORDER_BY_ID = f"SELECT {_ORDER_COLUMNS} FROM acme_orders WHERE id = ?"
ORDER_BY_SERIAL = f"SELECT {_ORDER_COLUMNS} FROM acme_orders WHERE certificate_serial = ? LIMIT 1"
_ORDER_INSERT_NAMES = (*_ORDER_NAMES, "created_at")
ORDER_INSERT = (
    f"INSERT INTO acme_orders ({_columns(acme_orders, _ORDER_INSERT_NAMES)}) "
    f"VALUES ({', '.join('?' for _ in _ORDER_INSERT_NAMES)})"
)


def order_from_row(row: tuple[Any, ...]) -> Order:
    """An ``_ORDER_COLUMNS`` row as an :class:`Order`."""
    (
        oid, account_id, status, template, profile, identifiers, authz_ids, not_before,
        not_after, expires_at, error, replaces, finalize_attempt, request_id, serial,
    ) = row  # fmt: skip
    return Order(
        oid,
        account_id,
        status,
        template,
        profile,
        list(json.loads(identifiers)),
        list(json.loads(authz_ids)),
        _decode_dt(not_before),
        _decode_dt(not_after),
        _decode_dt(expires_at),  # type: ignore[arg-type]
        _loads(error),
        replaces,
        finalize_attempt,
        request_id,
        serial,
    )


def get_order(conn: Connection, order_id: str) -> Order | None:
    """The order row (the caller loads its authorizations)."""
    row = fetch_one(conn, ORDER_BY_ID, (order_id,))
    return None if row is None else order_from_row(row)


def order_for_certificate(conn: Connection, serial: str) -> Order | None:
    """:func:`protocols.acme.state_orders.order_for_certificate`."""
    row = fetch_one(conn, ORDER_BY_SERIAL, (serial,))
    return None if row is None else order_from_row(row)


_ORDER_ENCODERS = {c.name: column_encoder(c) for c in acme_orders.columns}
_SET_ORDER_SQL: dict[tuple[tuple[str, ...], bool], str] = {}


def _set_order_sql(keys: tuple[str, ...], conditional: bool) -> str:
    sql = _SET_ORDER_SQL.get((keys, conditional))
    if sql is None:
        unknown = [k for k in keys if k not in _ORDER_ENCODERS]
        if unknown:  # what Core says for a SET of a column the table does not have
            raise sa.exc.CompileError(f"Unconsumed column names: {', '.join(unknown)}")
        sets = ", ".join(f"{k} = ?" for k in keys)
        where = "id = ? AND status = ?" if conditional else "id = ?"
        sql = f"UPDATE acme_orders SET {sets} WHERE {where}"
        _SET_ORDER_SQL[(keys, conditional)] = sql  # callers use a handful of column sets
    return sql


def set_order(
    conn: Connection, order_id: str, expect: str | None, values: Mapping[str, Any]
) -> bool:
    """:func:`protocols.acme.state_orders.set_order` (``values`` not empty)."""
    keys = tuple(values)
    sql = _set_order_sql(keys, expect is not None)
    params = tuple(_ORDER_ENCODERS[k](values[k]) for k in keys)
    params += (order_id,) if expect is None else (order_id, expect)
    return bool(execute(conn, sql, params))


# --- authorizations and challenges (RFC 8555 §7.1.4, §7.1.5) ---------------------------------

_AUTHZ_NAMES = ("id", "account_id", "type", "value", "wildcard", "status", "expires_at")
_AUTHZ_COLUMNS = _columns(acme_authorizations, _AUTHZ_NAMES)
AUTHZ_BY_ID = f"SELECT {_AUTHZ_COLUMNS} FROM acme_authorizations WHERE id = ?"
_AUTHZ_INSERT_NAMES = (*_AUTHZ_NAMES, "created_at")
AUTHZ_INSERT = (
    f"INSERT INTO acme_authorizations ({_columns(acme_authorizations, _AUTHZ_INSERT_NAMES)}) "
    f"VALUES ({', '.join('?' for _ in _AUTHZ_INSERT_NAMES)})"
)
REUSABLE_AUTHZ = (
    "SELECT id FROM acme_authorizations WHERE account_id = ? AND type = ? AND value = ? "
    "AND wildcard = ? AND status = 'valid' AND expires_at > ? LIMIT 1"
)
AUTHZ_FINISH_VALID = (
    "UPDATE acme_authorizations SET status = 'valid', expires_at = ? "
    "WHERE id = ? AND status = 'pending'"
)
AUTHZ_FINISH_INVALID = (
    "UPDATE acme_authorizations SET status = 'invalid' WHERE id = ? AND status = 'pending'"
)

_CHALLENGE_NAMES = ("id", "authz_id", "type", "token", "status", "validated_at", "error")
_CHALLENGE_COLUMNS = _columns(acme_challenges, _CHALLENGE_NAMES)
CHALLENGE_BY_ID = f"SELECT {_CHALLENGE_COLUMNS} FROM acme_challenges WHERE id = ?"
CHALLENGES_OF_AUTHZ = (
    f"SELECT {_CHALLENGE_COLUMNS} FROM acme_challenges WHERE authz_id = ? ORDER BY type"
)
_CHALLENGE_INSERT_NAMES = (*_CHALLENGE_NAMES, "lease_until", "attempts")
CHALLENGE_INSERT = (
    f"INSERT INTO acme_challenges ({_columns(acme_challenges, _CHALLENGE_INSERT_NAMES)}) "
    f"VALUES ({', '.join('?' for _ in _CHALLENGE_INSERT_NAMES)})"
)
CHALLENGE_START = (
    "UPDATE acme_challenges SET status = 'processing', lease_until = ? "
    "WHERE id = ? AND status = 'pending'"
)
CHALLENGE_FINISH = (
    "UPDATE acme_challenges SET status = ?, validated_at = ?, error = ?, lease_until = NULL "
    "WHERE id = ? AND status = 'processing'"
)


def _in_list(n: int) -> str:
    return ", ".join("?" * n)


def authz_by_ids_sql(n: int) -> str:
    """SELECT of ``n`` authorizations by id (a plain string join, nothing to compile)."""
    return f"SELECT {_AUTHZ_COLUMNS} FROM acme_authorizations WHERE id IN ({_in_list(n)})"


def challenges_of_authzs_sql(n: int) -> str:
    """The challenges of ``n`` authorizations, ordered by type as Core orders them."""
    return (
        f"SELECT {_CHALLENGE_COLUMNS} FROM acme_challenges "
        f"WHERE authz_id IN ({_in_list(n)}) ORDER BY type"
    )


def challenge_from_row(row: tuple[Any, ...]) -> Challenge:
    """A ``_CHALLENGE_COLUMNS`` row as a :class:`Challenge`."""
    cid, authz_id, type_, token, status, validated_at, error = row
    return Challenge(cid, authz_id, type_, token, status, _decode_dt(validated_at), _loads(error))


def _authz(row: tuple[Any, ...], challenges: tuple[Challenge, ...]) -> Authz:
    aid, account_id, type_, value, wildcard, status, expires_at = row
    return Authz(
        aid,
        account_id,
        type_,
        value,
        bool(wildcard),
        status,
        _decode_dt(expires_at),  # type: ignore[arg-type]
        challenges,
    )


def get_authzs(conn: Connection, ids: Sequence[str], *, with_challenges: bool) -> list[Authz]:
    """:func:`protocols.acme.state_orders.get_authzs`: the authorizations found, in the order
    of ``ids``. One id (an authorization or challenge URL, most orders) is a plain
    primary-key lookup."""
    if not ids:
        return []
    if len(ids) == 1:
        (only,) = ids
        row = fetch_one(conn, AUTHZ_BY_ID, (only,))
        if row is None:
            return []
        challenges: tuple[Challenge, ...] = ()
        if with_challenges:
            rows = fetch_all(conn, CHALLENGES_OF_AUTHZ, (only,))
            challenges = tuple(challenge_from_row(r) for r in rows)
        return [_authz(row, challenges)]
    params = tuple(ids)
    found = {r[0]: r for r in fetch_all(conn, authz_by_ids_sql(len(params)), params)}
    chall: dict[str, list[Challenge]] = {}
    if with_challenges:
        for r in fetch_all(conn, challenges_of_authzs_sql(len(params)), params):
            chall.setdefault(r[1], []).append(challenge_from_row(r))
    return [_authz(found[i], tuple(chall.get(i, ()))) for i in ids if i in found]


def reusable_authzs(
    conn: Connection, account_id: str, wanted: Sequence[tuple[str, str, bool]], now: datetime
) -> list[str | None]:
    """:func:`protocols.acme.state_orders.reusable_authzs`."""
    at = _dt(now)
    cur = raw_cursor(conn)
    found: list[str | None] = []
    params: tuple[Any, ...] = ()
    try:
        for type_, value, wildcard in wanted:
            params = (account_id, type_, value, bool(wildcard), at)
            row = cur.execute(REUSABLE_AUTHZ, params).fetchone()
            found.append(None if row is None else str(row[0]))
    except sqlite3.Error as exc:
        raise driver_error(REUSABLE_AUTHZ, params, exc) from exc
    finally:
        cur.close()
    return found


def create_order(
    conn: Connection, order: Order, new_authzs: Sequence[NewAuthz], now: datetime
) -> None:
    """The rows of :func:`protocols.acme.state_orders.create_order` (after its rate limit)."""
    at = _dt(now)
    statements: list[tuple[str, tuple[Any, ...]]] = [
        (AUTHZ_INSERT, (a.id, order.account_id, a.type, a.value, bool(a.wildcard), a.status,
                        _dt(a.expires_at), at))
        for a in new_authzs
    ]  # fmt: skip
    null = _json(None)  # Core writes a JSON column's None as the JSON text "null"
    statements.extend(
        (CHALLENGE_INSERT, (cid, a.id, ctype, token, "pending", None, null, None, 0))
        for a in new_authzs
        for cid, ctype, token in a.challenges
    )
    statements.append(
        (
            ORDER_INSERT,
            (order.id, order.account_id, order.status, order.template, order.profile,
             _json(order.identifiers), _json(order.authz_ids), _dt(order.not_before),
             _dt(order.not_after), _dt(order.expires_at), null, order.replaces, 0, None, None,
             at),
        )
    )  # fmt: skip
    run_statements(conn, statements)


def get_challenge(conn: Connection, challenge_id: str) -> Challenge | None:
    """The challenge row (the caller loads its authorization)."""
    row = fetch_one(conn, CHALLENGE_BY_ID, (challenge_id,))
    return None if row is None else challenge_from_row(row)


def start_challenge(conn: Connection, challenge_id: str, lease_until: datetime) -> bool:
    """:func:`protocols.acme.state_orders.start_challenge`: pending -> processing."""
    return bool(execute(conn, CHALLENGE_START, (_dt(lease_until), challenge_id)))


def finish_challenge(
    conn: Connection,
    challenge_id: str,
    authz_id: str,
    ok: bool,
    error: dict[str, Any] | None,
    now: datetime,
    valid_until: datetime,
) -> None:
    """:func:`protocols.acme.state_orders.finish_challenge`: processing -> valid|invalid, and
    the authorization with it if still pending."""
    params = (
        "valid" if ok else "invalid",
        _dt(now) if ok else None,
        _json(error),
        challenge_id,
    )
    if not execute(conn, CHALLENGE_FINISH, params):
        return
    if ok:
        execute(conn, AUTHZ_FINISH_VALID, (_dt(valid_until), authz_id))
    else:
        execute(conn, AUTHZ_FINISH_INVALID, (authz_id,))
