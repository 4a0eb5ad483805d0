"""The writes of :class:`protocols.acme.repository_postgres.PostgresAcmeRepository` as CTEs of
one PostgreSQL statement (SQL text and parameters only; the repository runs them).

A *fold* of a write is its data-modifying CTEs, each only ``WHERE guard`` (``TRUE`` on its own;
``EXISTS (SELECT 1 FROM taken)`` after a POST's nonce swap, :data:`postgres_rows.NONCE_SWAP`),
the one whose rows answer named ``done`` (``RETURNING 1``), and how the count of ``done``'s
rows becomes the body's answer. The UPDATEs keep Core's state-machine conditions in their WHERE
clause; values are encoded as Core binds them (see :mod:`protocols.acme.postgres_rows`).
"""

# The SQL here is built from constant names, never from input (every value is a $n parameter).
# ruff: noqa: S608

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from protocols.acme import postgres_rows as q
from protocols.acme.postgres_rows import at
from protocols.acme.ratelimit import COUNT_HIT_SQL, Limit
from protocols.acme.records import NewAuthz, Order
from protocols.acme.tables import acme_authorizations, acme_challenges, acme_orders

COUNT_HIT = COUNT_HIT_SQL.format(key="$1", slot="$2")
NULL = "null"  # Core writes a JSON column's None as the JSON null


class Sql:
    """Parameters of one statement being built: ``s(value)`` appends one and gives its ``$n``."""

    def __init__(self, *params: Any) -> None:
        self.params = list(params)

    def __call__(self, value: Any) -> str:
        self.params.append(value)
        return f"${len(self.params)}"


#: A folded write: its CTEs (the answering one named ``done``, ``RETURNING 1``) and how the
#: count of ``done``'s rows becomes the body's answer.
Fold = tuple[list[str], Callable[[int], Any]]


def fold_create_order(
    s: Sql, guard: str, order: Order, new_authzs: Sequence[NewAuthz], now: datetime,
    limit: Limit | None = None,
) -> Fold:  # fmt: skip
    assert limit is None  # a limited one counts first, in a transaction
    ctes: list[str] = []
    if new_authzs:
        first = len(s.params) + 1
        for a in new_authzs:
            s.params += (a.id, order.account_id, a.type, a.value, bool(a.wildcard), a.status,
                         at(a.expires_at), at(now))  # fmt: skip
        rows = len(new_authzs)
        insert = q.insert_select(acme_authorizations, q.AUTHZ_INSERT_NAMES, rows, first, guard)
        ctes.append(f"wa AS ({insert})")
    challenges = [
        (cid, a.id, ctype, token) for a in new_authzs for cid, ctype, token in a.challenges
    ]
    if challenges:
        first = len(s.params) + 1
        for cid, aid, ctype, token in challenges:
            s.params += (cid, aid, ctype, token, "pending", None, NULL, None, 0)
        rows = len(challenges)
        insert = q.insert_select(acme_challenges, q.CHALLENGE_INSERT_NAMES, rows, first, guard)
        ctes.append(f"wc AS ({insert})")
    first = len(s.params) + 1
    enc = q.ORDER_ENCODERS
    s.params += (
        order.id, order.account_id, order.status, order.template, order.profile,
        enc["identifiers"](order.identifiers), enc["authz_ids"](order.authz_ids),
        at(order.not_before), at(order.not_after), at(order.expires_at), NULL,
        order.replaces, 0, None, None, at(now),
    )  # fmt: skip
    insert = q.insert_select(acme_orders, q.ORDER_INSERT_NAMES, 1, first, guard)
    ctes.append(f"done AS ({insert} RETURNING 1)")
    return ctes, lambda n: order


def fold_set_order(s: Sql, guard: str, order_id: str, expect: str | None, **values: Any) -> Fold:
    unknown = [k for k in values if k not in q.ORDER_ENCODERS]
    if unknown or not values:  # what Core says for a SET of a column the table does not have
        raise sa.exc.CompileError(f"Unconsumed column names: {', '.join(unknown)}")
    sets = ", ".join(f"{k} = {s(q.ORDER_ENCODERS[k](v))}" for k, v in values.items())
    where = f"id = {s(order_id)}"
    if expect is not None:
        where += f" AND status = {s(expect)}"
    return [f"done AS (UPDATE acme_orders SET {sets} WHERE {where} AND {guard} RETURNING 1)"], bool


def fold_set_authz_status(
    s: Sql, guard: str, authz_id: str, status: str, allowed: Sequence[str]
) -> Fold:
    cte = (
        f"done AS (UPDATE acme_authorizations SET status = {s(status)} "
        f"WHERE id = {s(authz_id)} AND status = ANY({s(list(allowed))}::text[]) "
        f"AND {guard} RETURNING 1)"
    )
    return [cte], bool


def fold_start_challenge(s: Sql, guard: str, challenge_id: str, lease_until: datetime) -> Fold:
    cte = (
        f"done AS (UPDATE acme_challenges SET status = 'processing', lease_until = "
        f"{s(at(lease_until))} WHERE id = {s(challenge_id)} AND status = 'pending' "
        f"AND {guard} RETURNING 1)"
    )
    return [cte], bool


def _challenge_ends(
    s: Sql, challenge_id: str, was: str, ok: bool, error: dict[str, Any] | None,
    now: datetime, guard: str = "TRUE",
) -> str:  # fmt: skip
    """The ``done`` CTE ending a challenge still ``was``: ``valid`` (``ok``) or ``invalid``
    with ``error``, its lease cleared, if ``guard`` holds too."""
    return (
        f"done AS (UPDATE acme_challenges SET status = {s('valid' if ok else 'invalid')}, "
        f"validated_at = {s(at(now) if ok else None)}, error = {s(json.dumps(error))}, "
        f"lease_until = NULL WHERE id = {s(challenge_id)} AND status = '{was}' AND {guard} "
        "RETURNING 1)"
    )


def fold_accept_challenge(
    s: Sql, guard: str, challenge_id: str, authz_id: str, now: datetime,
    valid_until: datetime,
) -> Fold:  # fmt: skip
    """Core's start then finish, as one UPDATE: ``pending`` -> ``valid``."""
    challenge = _challenge_ends(s, challenge_id, "pending", True, None, now, guard)
    return [challenge, authz_follows(s, authz_id, True, valid_until)], bool


def fold_finish_challenge(
    s: Sql, challenge_id: str, authz_id: str, ok: bool, error: dict[str, Any] | None,
    now: datetime, valid_until: datetime,
) -> Fold:  # fmt: skip
    """A validation's end, as one UPDATE: ``processing`` -> ``valid`` or ``invalid``."""
    challenge = _challenge_ends(s, challenge_id, "processing", ok, error, now)
    return [challenge, authz_follows(s, authz_id, ok, valid_until)], bool


def account_update_sql(
    s: Sql, contact: list[str] | None, status: str | None, tos_agreed: str | None
) -> str | None:
    """Core's ``update_account`` UPDATE of the given fields of a ``valid`` account (its id is
    ``$1``), or ``None`` when none is given."""
    sets = []
    if contact is not None:
        sets.append(f"contact = {s(json.dumps(contact))}")
    if status is not None:
        sets.append(f"status = {s(status)}")
    if tos_agreed is not None:
        sets.append(f"tos_agreed = {s(tos_agreed)}")
    if not sets:
        return None
    return f"UPDATE acme_accounts SET {', '.join(sets)} WHERE id = $1 AND status = 'valid'"


def set_order_then_older(s: Sql, order: Order, expect: str | None, **values: Any) -> str:
    """:func:`fold_set_order` of ``order`` as a CTE (PostgreSQL runs it whether or not the
    SELECT reads it), then the older twins awaiting the core from the snapshot before it (the
    updated order is not one of them: ``id`` differs)."""
    ctes, _ = fold_set_order(s, "TRUE", order.id, expect, **values)
    older = q.older_awaiting_sql(s(order.account_id), s(order.template), s(order.id))
    return f"WITH {', '.join(ctes)} {older}"


def authz_follows(s: Sql, authz_id: str, ok: bool, valid_until: datetime) -> str:
    """The authorization follows its challenge (the ``done`` CTE) if still ``pending``:
    ``valid`` until ``valid_until``, or ``invalid``."""
    sets = f"status = 'valid', expires_at = {s(at(valid_until))}" if ok else "status = 'invalid'"
    return (
        f"az AS (UPDATE acme_authorizations SET {sets} WHERE id = {s(authz_id)} "
        "AND status = 'pending' AND EXISTS (SELECT 1 FROM done))"
    )


async def hit(conn: Any, limit: Limit) -> bool:
    """Core's ``count_hit`` on asyncpg."""
    return int(await conn.fetchval(COUNT_HIT, limit.key, limit.slot)) <= limit.limit


def limit_of(args: Sequence[Any], kw: dict[str, Any]) -> Limit | None:
    """``create_order``'s ``limit`` argument."""
    return kw["limit"] if "limit" in kw else (args[3] if len(args) > 3 else None)


#: The writes that fold into one statement, by the repository method's name.
FOLDS: dict[str, Callable[..., Fold]] = {
    "create_order": fold_create_order,
    "set_order": fold_set_order,
    "set_authz_status": fold_set_authz_status,
    "start_challenge": fold_start_challenge,
    "accept_challenge": fold_accept_challenge,
}
