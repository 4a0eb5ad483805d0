"""ACME orders, authorizations and challenges: transaction bodies (see :mod:`state`).

On SQLite the per-request bodies run their statements on the raw cursor
(:mod:`protocols.acme.sqlite_rows`); the Core statements below serve PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from protocols.acme import sqlite_rows as raw
from protocols.acme.ratelimit import Limit, OverLimit, count_hit

# Re-exported: order.py builds these through this module.
from protocols.acme.records import NewAuthz as NewAuthz
from protocols.acme.state import (
    Authz,
    Challenge,
    Order,
    _challenge,
    _order,
)
from protocols.acme.tables import acme_authorizations, acme_challenges, acme_orders

_B = sa.bindparam
_AUTHZ_BY_IDS = sa.select(acme_authorizations).where(
    acme_authorizations.c.id.in_(_B("ids", expanding=True))
)
_AUTHZ_INSERT = sa.insert(acme_authorizations)
_CHALLENGES_BY_AUTHZ = (
    sa.select(acme_challenges)
    .where(acme_challenges.c.authz_id.in_(_B("ids", expanding=True)))
    .order_by(acme_challenges.c.type)
)
_CHALLENGE_BY_ID = sa.select(acme_challenges).where(acme_challenges.c.id == _B("id"))
_CHALLENGE_INSERT = sa.insert(acme_challenges)
_CHALLENGE_START = (
    sa.update(acme_challenges)
    .where(acme_challenges.c.id == _B("cid"), acme_challenges.c.status == "pending")
    .values(status="processing", lease_until=_B("lease"))
)
_ORDER_BY_ID = sa.select(acme_orders).where(acme_orders.c.id == _B("id"))
_ORDER_INSERT = sa.insert(acme_orders)
_REUSABLE_AUTHZ = (
    sa.select(acme_authorizations.c.id)
    .where(
        acme_authorizations.c.account_id == _B("account_id"),
        acme_authorizations.c.type == _B("type"),
        acme_authorizations.c.value == _B("value"),
        acme_authorizations.c.wildcard == _B("wildcard"),
        acme_authorizations.c.status == "valid",
        acme_authorizations.c.expires_at > _B("now"),
    )
    .limit(1)
)


# --- orders, authorizations, challenges --------------------------------------------------------


def reusable_authzs(
    conn: Connection, account_id: str, wanted: Sequence[tuple[str, str, bool]], now: datetime
) -> list[str | None]:
    """For each (type, value, wildcard): a valid, unexpired authorization of the account."""
    if raw.applies(conn):
        return raw.reusable_authzs(conn, account_id, wanted, now)
    found: list[str | None] = []
    for type_, value, wildcard in wanted:
        row = conn.execute(
            _REUSABLE_AUTHZ,
            {
                "account_id": account_id,
                "type": type_,
                "value": value,
                "wildcard": wildcard,
                "now": now,
            },
        ).first()
        found.append(None if row is None else str(row.id))
    return found


def create_order(
    conn: Connection,
    order: Order,
    new_authzs: Sequence[NewAuthz],
    now: datetime,
    limit: Limit | None = None,
) -> Order | OverLimit:
    """Insert the order with its new authorizations and challenges; first count it against
    ``limit`` (new orders per account, shared by all instances), writing nothing if over."""
    if limit is not None and not count_hit(conn, limit):
        return OverLimit(limit)
    if raw.applies(conn):
        raw.create_order(conn, order, new_authzs, now)
        return order
    if new_authzs:
        conn.execute(
            _AUTHZ_INSERT,
            [
                {
                    "id": a.id,
                    "account_id": order.account_id,
                    "type": a.type,
                    "value": a.value,
                    "wildcard": a.wildcard,
                    "status": a.status,
                    "expires_at": a.expires_at,
                    "created_at": now,
                }
                for a in new_authzs
            ],
        )
    challenges = [
        {
            "id": cid,
            "authz_id": a.id,
            "type": ctype,
            "token": token,
            "status": "pending",
            "attempts": 0,
            "validated_at": None,
            "error": None,
            "lease_until": None,
        }
        for a in new_authzs
        for cid, ctype, token in a.challenges
    ]
    if challenges:
        conn.execute(_CHALLENGE_INSERT, challenges)
    conn.execute(
        _ORDER_INSERT,
        {
            "id": order.id,
            "account_id": order.account_id,
            "status": order.status,
            "template": order.template,
            "profile": order.profile,
            "identifiers": order.identifiers,
            "authz_ids": order.authz_ids,
            "not_before": order.not_before,
            "not_after": order.not_after,
            "expires_at": order.expires_at,
            "error": None,
            "replaces": order.replaces,
            "finalize_attempt": 0,
            "request_id": None,
            "certificate_serial": None,
            "created_at": now,
        },
    )
    return order


def get_order(conn: Connection, order_id: str) -> tuple[Order, list[Authz]] | None:
    """The order (RFC 8555 §7.1.3) with its authorizations (without their challenges)."""
    if raw.applies(conn):
        found = raw.get_order(conn, order_id)
        if found is None:
            return None
        return found, raw.get_authzs(conn, found.authz_ids, with_challenges=False)
    row = conn.execute(_ORDER_BY_ID, {"id": order_id}).first()
    if row is None:
        return None
    order = _order(row)
    return order, get_authzs(conn, order.authz_ids, with_challenges=False)


def get_authzs(conn: Connection, ids: Sequence[str], *, with_challenges: bool) -> list[Authz]:
    """The authorizations with these ids that exist, in the order of ``ids``."""
    if raw.applies(conn):
        return raw.get_authzs(conn, ids, with_challenges=with_challenges)
    if not ids:
        return []
    rows = conn.execute(_AUTHZ_BY_IDS, {"ids": list(ids)})
    found = {r.id: r for r in rows}
    chall: dict[str, list[Challenge]] = {}
    if with_challenges:
        for r in conn.execute(_CHALLENGES_BY_AUTHZ, {"ids": list(ids)}):
            chall.setdefault(r.authz_id, []).append(_challenge(r))
    return [
        Authz(
            r.id,
            r.account_id,
            r.type,
            r.value,
            bool(r.wildcard),
            r.status,
            r.expires_at,
            tuple(chall.get(r.id, ())),
        )
        for r in (found[i] for i in ids if i in found)
    ]


def orders_of(conn: Connection, account_id: str) -> list[str]:
    rows = conn.execute(
        sa.select(acme_orders.c.id)
        .where(acme_orders.c.account_id == account_id)
        .order_by(acme_orders.c.created_at)
    )
    return [r.id for r in rows]


def set_order(conn: Connection, order_id: str, expect: str | None, **values: Any) -> bool:
    """Conditional order update (``expect``: the status it must still have)."""
    if values and raw.applies(conn):
        return raw.set_order(conn, order_id, expect, values)
    stmt = sa.update(acme_orders).where(acme_orders.c.id == order_id)
    if expect is not None:
        stmt = stmt.where(acme_orders.c.status == expect)
    return bool(conn.execute(stmt.values(**values)).rowcount)


def older_awaiting_core(conn: Connection, order: Order) -> list[Order]:
    """The account's orders for the same template created before ``order`` that are still
    ``processing`` with a core request (pending approval or at the CA)."""
    created = (
        sa.select(acme_orders.c.created_at).where(acme_orders.c.id == order.id).scalar_subquery()
    )
    rows = conn.execute(
        sa.select(acme_orders).where(
            acme_orders.c.account_id == order.account_id,
            acme_orders.c.template == order.template,
            acme_orders.c.status == "processing",
            acme_orders.c.request_id.is_not(None),
            acme_orders.c.id != order.id,
            acme_orders.c.created_at < created,
        )
    )
    return [_order(r) for r in rows]


def order_replacing(conn: Connection, cert_id: str) -> list[Order]:
    rows = conn.execute(sa.select(acme_orders).where(acme_orders.c.replaces == cert_id))
    return [_order(r) for r in rows]


def order_for_certificate(conn: Connection, serial: str) -> Order | None:
    """The order that issued the certificate with this serial (download, revocation)."""
    if raw.applies(conn):
        return raw.order_for_certificate(conn, serial)
    row = conn.execute(
        sa.select(acme_orders).where(acme_orders.c.certificate_serial == serial).limit(1)
    ).first()
    return None if row is None else _order(row)


def get_challenge(conn: Connection, challenge_id: str) -> tuple[Challenge, Authz] | None:
    """The challenge with its authorization (without the authorization's challenges)."""
    if raw.applies(conn):
        challenge = raw.get_challenge(conn, challenge_id)
        if challenge is None:
            return None
        found = raw.get_authzs(conn, [challenge.authz_id], with_challenges=False)
        return (challenge, found[0]) if found else None
    row = conn.execute(_CHALLENGE_BY_ID, {"id": challenge_id}).first()
    if row is None:
        return None
    authzs = get_authzs(conn, [row.authz_id], with_challenges=False)
    return (_challenge(row), authzs[0]) if authzs else None


def start_challenge(conn: Connection, challenge_id: str, lease_until: datetime) -> bool:
    """pending -> processing (RFC 8555 §7.5.1); False if it was not pending."""
    if raw.applies(conn):
        return raw.start_challenge(conn, challenge_id, lease_until)
    return bool(
        conn.execute(_CHALLENGE_START, {"cid": challenge_id, "lease": lease_until}).rowcount
    )


def accept_challenge(
    conn: Connection, challenge_id: str, authz_id: str, now: datetime, valid_until: datetime
) -> bool:
    """``[testing] acme_always_valid``: pending -> valid in one transaction."""
    if not start_challenge(conn, challenge_id, now):
        return False
    finish_challenge(conn, challenge_id, authz_id, True, None, now, valid_until)
    return True


def claim_stale_challenges(conn: Connection, now: datetime, lease_until: datetime) -> list[str]:
    """Challenges left ``processing`` by a crashed or stopped instance (expired lease)."""
    rows = conn.execute(
        sa.select(acme_challenges.c.id)
        .where(acme_challenges.c.status == "processing", acme_challenges.c.lease_until < now)
        .limit(50)
    ).all()
    claimed = []
    for r in rows:
        done = conn.execute(
            sa.update(acme_challenges)
            .where(
                acme_challenges.c.id == r.id,
                acme_challenges.c.status == "processing",
                acme_challenges.c.lease_until < now,
            )
            .values(lease_until=lease_until, attempts=acme_challenges.c.attempts + 1)
        ).rowcount
        if done:
            claimed.append(r.id)
    return claimed


def finish_challenge(
    conn: Connection,
    challenge_id: str,
    authz_id: str,
    ok: bool,
    error: dict[str, Any] | None,
    now: datetime,
    valid_until: datetime,
) -> None:
    """processing -> valid|invalid, and the authorization with it if still pending."""
    if raw.applies(conn):
        raw.finish_challenge(conn, challenge_id, authz_id, ok, error, now, valid_until)
        return
    done = conn.execute(
        sa.update(acme_challenges)
        .where(acme_challenges.c.id == challenge_id, acme_challenges.c.status == "processing")
        .values(
            status="valid" if ok else "invalid",
            validated_at=now if ok else None,
            error=error,
            lease_until=None,
        )
    ).rowcount
    if not done:
        return
    values: dict[str, Any] = {"status": "valid" if ok else "invalid"}
    if ok:
        values["expires_at"] = valid_until
    conn.execute(
        sa.update(acme_authorizations)
        .where(acme_authorizations.c.id == authz_id, acme_authorizations.c.status == "pending")
        .values(**values)
    )


def set_authz_status(conn: Connection, authz_id: str, status: str, allowed: Sequence[str]) -> bool:
    return bool(
        conn.execute(
            sa.update(acme_authorizations)
            .where(acme_authorizations.c.id == authz_id, acme_authorizations.c.status.in_(allowed))
            .values(status=status)
        ).rowcount
    )


def valid_identifiers(conn: Connection, account_id: str, now: datetime) -> set[tuple[str, str]]:
    """(type, value) pairs the account holds valid authorizations for (revocation, §7.6)."""
    rows = conn.execute(
        sa.select(acme_authorizations.c.type, acme_authorizations.c.value).where(
            acme_authorizations.c.account_id == account_id,
            acme_authorizations.c.status == "valid",
            acme_authorizations.c.expires_at > now,
        )
    )
    return {(r.type, r.value) for r in rows}
