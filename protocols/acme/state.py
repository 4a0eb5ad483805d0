"""ACME state transaction bodies (run by ``store.read`` / ``store.write``): nonces, accounts,
EAB keys; the records they return live in :mod:`protocols.acme.records` (re-exported here).

Bodies are synchronous functions ``fn(conn, ...)``: no clock, no randomness, no awaits (a
write body may run twice when SQLite is busy), so callers pass ``now`` and ids. They use
SQLAlchemy Core, except the per-request statements on SQLite, which go to the raw cursor
through :mod:`protocols.acme.sqlite_rows` (same rows, same conditions; see there why).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from protocols.acme import sqlite_rows as raw
from protocols.acme.ratelimit import Limit, OverLimit, count_hit

# The records are defined apart so that sqlite_rows can build them too; re-exported here.
from protocols.acme.records import Account as Account
from protocols.acme.records import Authz as Authz
from protocols.acme.records import Challenge as Challenge
from protocols.acme.records import Order as Order
from protocols.acme.tables import (
    acme_accounts,
    acme_eab_keys,
    acme_nonces,
)

#: Authorization states that make an order invalid (RFC 8555 §7.1.6).
DEAD_AUTHZ = ("invalid", "deactivated", "expired", "revoked")

# Hot statements are built once (SQLAlchemy then reuses their compiled form and cache key);
# parameters travel as bind values. On SQLite the per-request bodies below use the raw
# cursor instead (protocols/acme/sqlite_rows.py); these serve PostgreSQL.
_B = sa.bindparam
_NONCE_INSERT = sa.insert(acme_nonces)
_NONCE_TAKE = (
    sa.delete(acme_nonces)
    .where(acme_nonces.c.value == _B("used"), acme_nonces.c.expires_at > _B("now"))
    .returning(acme_nonces.c.value)
)
_ACCOUNT_BY_ID = sa.select(acme_accounts).where(acme_accounts.c.id == _B("id"))
_ACCOUNT_BY_THUMB = sa.select(acme_accounts).where(acme_accounts.c.key_thumbprint == _B("t"))
_EAB_BY_KID = sa.select(acme_eab_keys).where(acme_eab_keys.c.kid == _B("kid"))


def effective_order_status(order: Order, authzs: Sequence[Authz], now: datetime) -> str:
    """RFC 8555 §7.1.6: a stored ``pending`` order is ``invalid`` once expired or once an
    authorization died, ``ready`` once all are valid, else ``pending``."""
    if order.status != "pending":
        return order.status
    if order.expires_at <= now:
        return "invalid"
    states = [a.effective_status(now) for a in authzs]
    if any(s in DEAD_AUTHZ for s in states):
        return "invalid"
    if states and all(s == "valid" for s in states):
        return "ready"
    return "pending"


def _account(row: Any) -> Account:
    return Account(
        row.id,
        row.key_thumbprint,
        dict(row.jwk),
        row.status,
        list(row.contact),
        row.eab_kid,
        tos_agreed=row.tos_agreed,
    )


def _order(row: Any) -> Order:
    return Order(
        row.id,
        row.account_id,
        row.status,
        row.template,
        row.profile,
        list(row.identifiers),
        list(row.authz_ids),
        row.not_before,
        row.not_after,
        row.expires_at,
        row.error,
        row.replaces,
        row.finalize_attempt,
        row.request_id,
        row.certificate_serial,
    )


def _challenge(row: Any) -> Challenge:
    return Challenge(
        row.id, row.authz_id, row.type, row.token, row.status, row.validated_at, row.error
    )


# --- nonces ----------------------------------------------------------------------------------


def issue_nonce(
    conn: Connection, value: str, expires: datetime, purge_before: datetime | None
) -> None:
    """Store a fresh nonce (RFC 8555 §7.2), now and then purging expired ones."""
    if raw.applies(conn):
        raw.issue_nonce(conn, value, expires, purge_before)
        return
    conn.execute(_NONCE_INSERT, {"value": value, "expires_at": expires})
    if purge_before is not None:
        conn.execute(sa.delete(acme_nonces).where(acme_nonces.c.expires_at < purge_before))


def purge_nonces(conn: Connection, now: datetime) -> int:
    """Forget nonces that expired unused."""
    if raw.applies(conn):
        return raw.purge_nonces(conn, now)
    return int(conn.execute(sa.delete(acme_nonces).where(acme_nonces.c.expires_at < now)).rowcount)


def nothing(conn: Connection) -> None:
    """A write body that writes nothing (a read-only POST only takes its nonce)."""
    return None


def with_nonce(
    conn: Connection,
    used: str | None,
    fresh: str,
    expires: datetime,
    now: datetime,
    body: Any,
    args: Sequence[Any],
    kw: dict[str, Any],
) -> tuple[bool, Any]:
    """Take ``used`` (only one DELETE can remove the row, on any instance), issue ``fresh``,
    and run ``body`` only if ``used`` was a live nonce, all in one transaction."""
    if raw.applies(conn):
        taken = raw.swap_nonce(conn, used, fresh, expires, now)
    else:
        taken = (
            used is not None
            and conn.execute(_NONCE_TAKE, {"used": used, "now": now}).first() is not None
        )
        conn.execute(_NONCE_INSERT, {"value": fresh, "expires_at": expires})
    if not taken:
        return False, None
    return True, body(conn, *args, **kw)


# --- accounts and EAB keys -------------------------------------------------------------------


def get_account(conn: Connection, account_id: str) -> Account | None:
    """The account at ``kid`` (RFC 8555 §6.2), with its EAB binding."""
    if raw.applies(conn):
        account = raw.get_account(conn, account_id)
        return None if account is None else _with_eab(conn, account)
    row = conn.execute(_ACCOUNT_BY_ID, {"id": account_id}).first()
    return None if row is None else _with_eab(conn, _account(row))


def account_by_thumbprint(conn: Connection, thumbprint: str) -> Account | None:
    """The account holding the key with this RFC 7638 thumbprint, with its EAB binding."""
    if raw.applies(conn):
        account = raw.account_by_thumbprint(conn, thumbprint)
        return None if account is None else _with_eab(conn, account)
    row = conn.execute(_ACCOUNT_BY_THUMB, {"t": thumbprint}).first()
    return None if row is None else _with_eab(conn, _account(row))


def _with_eab(conn: Connection, account: Account) -> Account:
    if account.eab_kid is None:
        return account
    key = get_eab_key(conn, account.eab_kid)
    if key is None:
        return account
    return replace(
        account,
        principal=key["principal"],
        eab_templates=tuple(key["templates"]),
        eab_domains=tuple(key["domains"]),
    )


def create_account(
    conn: Connection,
    account_id: str,
    thumbprint: str,
    jwk: dict[str, Any],
    contact: list[str],
    eab_kid: str | None,
    now: datetime,
    tos_agreed: str | None = None,
    limit: Limit | None = None,
) -> tuple[Account, bool] | OverLimit:
    """Insert, or return the account that already holds this key (RFC 8555 §7.3.1). Only
    a creation counts against ``limit`` (new accounts per client address)."""
    existing = account_by_thumbprint(conn, thumbprint)
    if existing is not None:
        return existing, False
    if limit is not None and not count_hit(conn, limit):
        return OverLimit(limit)
    conn.execute(
        sa.insert(acme_accounts).values(
            id=account_id,
            key_thumbprint=thumbprint,
            jwk=jwk,
            status="valid",
            contact=contact,
            eab_kid=eab_kid,
            created_at=now,
            tos_agreed=tos_agreed,
        )
    )
    account = get_account(conn, account_id)
    assert account is not None
    return account, True


def update_account(
    conn: Connection,
    account_id: str,
    contact: list[str] | None,
    status: str | None,
    tos_agreed: str | None = None,
) -> Account | None:
    """Contact, deactivation, and agreement to the current terms (RFC 8555 §7.3.2, §7.3.3,
    §7.3.6) of a ``valid`` account."""
    values: dict[str, Any] = {}
    if contact is not None:
        values["contact"] = contact
    if status is not None:
        values["status"] = status
    if tos_agreed is not None:
        values["tos_agreed"] = tos_agreed
    if values:
        conn.execute(
            sa.update(acme_accounts)
            .where(acme_accounts.c.id == account_id, acme_accounts.c.status == "valid")
            .values(**values)
        )
    return get_account(conn, account_id)


def change_key(
    conn: Connection, account_id: str, old_thumbprint: str, thumbprint: str, jwk: dict[str, Any]
) -> Account | None:
    """Roll the key over (RFC 8555 §7.3.5); returns the account already holding the new key
    instead when there is one (-> 409)."""
    holder = account_by_thumbprint(conn, thumbprint)
    if holder is not None:
        return holder
    conn.execute(
        sa.update(acme_accounts)
        .where(acme_accounts.c.id == account_id, acme_accounts.c.key_thumbprint == old_thumbprint)
        .values(key_thumbprint=thumbprint, jwk=jwk)
    )
    return None


def get_eab_key(conn: Connection, kid: str) -> dict[str, Any] | None:
    """The EAB key ``kid`` (RFC 8555 §7.3.4), every column."""
    if raw.applies(conn):
        return raw.get_eab_key(conn, kid)
    row = conn.execute(_EAB_BY_KID, {"kid": kid}).first()
    return None if row is None else dict(row._mapping)


def put_eab_key(
    conn: Connection,
    kid: str,
    principal: str,
    templates: list[str],
    domains: list[str],
    secret: bytes,
    now: datetime,
) -> None:
    conn.execute(
        sa.insert(acme_eab_keys).values(
            kid=kid,
            principal=principal,
            templates=templates,
            domains=domains,
            secret=secret,
            created_at=now,
        )
    )


def list_eab_keys(conn: Connection) -> list[dict[str, Any]]:
    rows = conn.execute(sa.select(acme_eab_keys).order_by(acme_eab_keys.c.created_at))
    return [{k: v for k, v in r._mapping.items() if k != "secret"} for r in rows]


def delete_eab_key(conn: Connection, kid: str) -> bool:
    return bool(conn.execute(sa.delete(acme_eab_keys).where(acme_eab_keys.c.kid == kid)).rowcount)


def revoke_account(conn: Connection, account_id: str) -> bool:
    """valid -> revoked, by the server operator (RFC 8555 §7.1.6)."""
    done = conn.execute(
        sa.update(acme_accounts)
        .where(acme_accounts.c.id == account_id, acme_accounts.c.status == "valid")
        .values(status="revoked")
    ).rowcount
    return bool(done)


def list_accounts(conn: Connection) -> list[dict[str, Any]]:
    rows = conn.execute(sa.select(acme_accounts).order_by(acme_accounts.c.created_at))
    return [
        {
            "id": r.id,
            "status": r.status,
            "contact": r.contact,
            "eab_kid": r.eab_kid,
            "created_at": r.created_at,
        }
        for r in rows
    ]
