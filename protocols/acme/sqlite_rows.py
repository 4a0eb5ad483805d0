"""The raw SQLite statements of :class:`protocols.acme.repository_sqlite.SQLiteAcmeRepository`
and their row decoders (SQL text and tuples only; the repository runs them).

Why a raw path: every ACME request runs a handful of small statements (take a nonce and issue
the next, load the account, the order and its authorizations, a state-machine UPDATE), and
SQLAlchemy Core's execute machinery (cache-key lookup, bind and result processing, result
objects) costs several times more Python than SQLite itself; ``get_authzs``' expanding IN list
was even re-rendered on every call. So on SQLite the per-request statements are pre-rendered
here, run with parameter tuples on the raw cursor (:mod:`gateway.store.raw`), inside the
transaction the store opened, and their rows decoded straight into the records of
:mod:`protocols.acme.records`.

Values are encoded exactly as the SQLAlchemy column types write them on SQLite (``UTCDateTime``:
ISO 8601 text with microseconds; ``JSON``: ``json.dumps``, so ``None`` is the text ``null``;
``Boolean``: 0/1), so a Core read and a raw read see the same rows
(``tests/contract/test_acme_store.py`` compares the stored bytes of both implementations). The
UPDATEs keep the state-machine conditions in their WHERE clause.
"""

# The SQL here is rendered from this module's constant column names, never from input.
# ruff: noqa: S608

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import sqlalchemy as sa

from gateway.store.raw import column_encoder
from gateway.store.raw import decode_datetime as _decode_dt
from gateway.store.raw import decode_json as _loads
from protocols.acme.ratelimit import COUNT_HIT_SQL
from protocols.acme.records import Account, Authz, Challenge, Order
from protocols.acme.tables import (
    acme_accounts,
    acme_authorizations,
    acme_challenges,
    acme_eab_keys,
    acme_nonces,
    acme_orders,
)


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


# --- accounts and EAB keys (RFC 8555 §7.3) ----------------------------------------------------

_ACCOUNT_COLUMNS = _columns(
    acme_accounts, ("id", "key_thumbprint", "jwk", "status", "contact", "eab_kid", "tos_agreed")
)
ACCOUNT_BY_ID = f"SELECT {_ACCOUNT_COLUMNS} FROM acme_accounts WHERE id = ?"
ACCOUNT_BY_THUMBPRINT = f"SELECT {_ACCOUNT_COLUMNS} FROM acme_accounts WHERE key_thumbprint = ?"
_EAB_NAMES = ("kid", "principal", "templates", "domains", "secret", "created_at")
EAB_BY_KID = f"SELECT {_columns(acme_eab_keys, _EAB_NAMES)} FROM acme_eab_keys WHERE kid = ?"


def account_from_row(row: tuple[Any, ...]) -> Account:
    """An ``_ACCOUNT_COLUMNS`` row as an :class:`Account` (without its EAB fields), decoded
    once per distinct row (:func:`_decoded_account`)."""
    return _decoded_account(tuple(row))


@lru_cache(maxsize=1024)
def _decoded_account(row: tuple[Any, ...]) -> Account:
    """Why cached: every request signed with a ``kid`` reads its account, whose row rarely
    changes, and decoding it (two JSON columns, a frozen dataclass) costs more than the
    lookup. Keyed by the whole row as stored, so a changed row (deactivated, new key, new
    contact) is decoded afresh; the result is never mutated (a frozen record)."""
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


def eab_key_from_row(row: tuple[Any, ...]) -> dict[str, Any]:
    """An ``EAB_BY_KID`` row as Core's ``dict(row._mapping)``, every column decoded."""
    kid, principal, templates, domains, secret, created_at = row
    return {
        "kid": kid,
        "principal": principal,
        "templates": json.loads(templates),
        "domains": json.loads(domains),
        "secret": secret,
        "created_at": _decode_dt(created_at),
    }


# --- rate counters (RFC 8555 §6.6) --------------------------------------------------------------

COUNT_HIT = COUNT_HIT_SQL.format(key="?", slot="?")


# --- orders -------------------------------------------------------------------------------------

_ORDER_NAMES = (
    "id", "account_id", "status", "template", "profile", "identifiers", "authz_ids",
    "not_before", "not_after", "expires_at", "error", "replaces", "finalize_attempt",
    "request_id", "certificate_serial",
)  # fmt: skip
_ORDER_COLUMNS = _columns(acme_orders, _ORDER_NAMES)
ORDER_BY_ID = f"SELECT {_ORDER_COLUMNS} FROM acme_orders WHERE id = ?"
ORDER_BY_SERIAL = f"SELECT {_ORDER_COLUMNS} FROM acme_orders WHERE certificate_serial = ? LIMIT 1"
# finalize's supersession check (protocols/acme/supersede.py): the Core statement's WHERE
ORDERS_OLDER_AWAITING_CORE = (
    f"SELECT {_ORDER_COLUMNS} FROM acme_orders WHERE account_id = ? AND template = ? "
    "AND status = 'processing' AND request_id IS NOT NULL AND id != ? "
    "AND created_at < (SELECT created_at FROM acme_orders WHERE id = ?)"
)
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


ORDER_ENCODERS = {c.name: column_encoder(c) for c in acme_orders.columns}
_SET_ORDER_SQL: dict[tuple[tuple[str, ...], bool], str] = {}


def set_order_sql(keys: tuple[str, ...], conditional: bool) -> str:
    """UPDATE of these order columns by id (and expected status when ``conditional``);
    a column the table does not have fails as Core fails (``CompileError``)."""
    sql = _SET_ORDER_SQL.get((keys, conditional))
    if sql is None:
        unknown = [k for k in keys if k not in ORDER_ENCODERS]
        if unknown:  # what Core says for a SET of a column the table does not have
            raise sa.exc.CompileError(f"Unconsumed column names: {', '.join(unknown)}")
        sets = ", ".join(f"{k} = ?" for k in keys)
        where = "id = ? AND status = ?" if conditional else "id = ?"
        sql = f"UPDATE acme_orders SET {sets} WHERE {where}"
        _SET_ORDER_SQL[(keys, conditional)] = sql  # callers use a handful of column sets
    return sql


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


def authz_from_row(row: tuple[Any, ...], challenges: tuple[Challenge, ...]) -> Authz:
    """An ``_AUTHZ_COLUMNS`` row as an :class:`Authz` with these challenges."""
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
