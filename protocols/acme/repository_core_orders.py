"""SQLAlchemy Core implementation of the ACME repository, part one: orders, authorizations
and the shared rate counters their creation counts against. Challenges build on it in
:mod:`protocols.acme.repository_core_challenges`, nonces and accounts on those in
:mod:`protocols.acme.repository_core`; the contracts are on
:class:`protocols.acme.repository.AcmeRepository`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from protocols.acme.ratelimit import COUNT_HIT_SQL, Limit, OverLimit
from protocols.acme.records import Authz, Challenge, NewAuthz, Order
from protocols.acme.tables import acme_authorizations, acme_challenges, acme_orders

# Hot statements are built once (SQLAlchemy then reuses their compiled form and cache key);
# parameters travel as bind values.
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
_CHALLENGE_INSERT = sa.insert(acme_challenges)
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
#: Plain SQL because SQLAlchemy cannot cache the compiled form of ``on_conflict_do_update``
#: (compiling it on every newOrder cost ~0.2 ms).
_COUNT_HIT = sa.text(COUNT_HIT_SQL.format(key=":key", slot=":slot"))


def order_of_row(row: Any) -> Order:
    """A Core row of ``acme_orders`` as an :class:`Order`."""
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


def challenge_of_row(row: Any) -> Challenge:
    """A Core row of ``acme_challenges`` as a :class:`Challenge`."""
    return Challenge(
        row.id, row.authz_id, row.type, row.token, row.status, row.validated_at, row.error
    )


class CoreOrders:
    """Orders, authorizations, challenges and rate counters through SQLAlchemy Core."""

    # --- rate counters ---------------------------------------------------------------------

    def count_hit(self, conn: Connection, limit: Limit) -> bool:
        count = conn.execute(_COUNT_HIT, {"key": limit.key, "slot": limit.slot}).scalar_one()
        return int(count) <= limit.limit

    # --- orders ----------------------------------------------------------------------------

    def create_order(
        self,
        conn: Connection,
        order: Order,
        new_authzs: Sequence[NewAuthz],
        now: datetime,
        limit: Limit | None = None,
    ) -> Order | OverLimit:
        if limit is not None and not self.count_hit(conn, limit):
            return OverLimit(limit)
        self._insert_order(conn, order, new_authzs, now)
        return order

    def _insert_order(
        self, conn: Connection, order: Order, new_authzs: Sequence[NewAuthz], now: datetime
    ) -> None:
        """The rows of :meth:`create_order` (after its rate limit)."""
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

    def get_order(self, conn: Connection, order_id: str) -> tuple[Order, list[Authz]] | None:
        order = self._order_row(conn, order_id)
        if order is None:
            return None
        return order, self.get_authzs(conn, order.authz_ids, with_challenges=False)

    def _order_row(self, conn: Connection, order_id: str) -> Order | None:
        row = conn.execute(_ORDER_BY_ID, {"id": order_id}).first()
        return None if row is None else order_of_row(row)

    def orders_of(self, conn: Connection, account_id: str) -> list[str]:
        rows = conn.execute(
            sa.select(acme_orders.c.id)
            .where(acme_orders.c.account_id == account_id)
            .order_by(acme_orders.c.created_at)
        )
        return [r.id for r in rows]

    def set_order(
        self, conn: Connection, /, order_id: str, expect: str | None, **values: Any
    ) -> bool:
        stmt = sa.update(acme_orders).where(acme_orders.c.id == order_id)
        if expect is not None:
            stmt = stmt.where(acme_orders.c.status == expect)
        return bool(conn.execute(stmt.values(**values)).rowcount)

    def set_order_and_older(
        self, conn: Connection, /, order: Order, expect: str | None, **values: Any
    ) -> list[Order]:
        self.set_order(conn, order.id, expect, **values)
        return self.older_awaiting_core(conn, order)

    def older_awaiting_core(self, conn: Connection, order: Order) -> list[Order]:
        created = (
            sa.select(acme_orders.c.created_at)
            .where(acme_orders.c.id == order.id)
            .scalar_subquery()
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
        return [order_of_row(r) for r in rows]

    def order_replacing(self, conn: Connection, cert_id: str) -> list[Order]:
        rows = conn.execute(sa.select(acme_orders).where(acme_orders.c.replaces == cert_id))
        return [order_of_row(r) for r in rows]

    def order_for_certificate(self, conn: Connection, serial: str) -> Order | None:
        row = conn.execute(
            sa.select(acme_orders).where(acme_orders.c.certificate_serial == serial).limit(1)
        ).first()
        return None if row is None else order_of_row(row)

    # --- authorizations --------------------------------------------------------------------

    def reusable_authzs(
        self,
        conn: Connection,
        account_id: str,
        wanted: Sequence[tuple[str, str, bool]],
        now: datetime,
    ) -> list[str | None]:
        found: list[str | None] = []
        for type_, value, wildcard in wanted:
            params = {
                "account_id": account_id,
                "type": type_,
                "value": value,
                "wildcard": wildcard,
                "now": now,
            }
            row = conn.execute(_REUSABLE_AUTHZ, params).first()
            found.append(None if row is None else str(row.id))
        return found

    def get_authzs(
        self, conn: Connection, ids: Sequence[str], *, with_challenges: bool
    ) -> list[Authz]:
        if not ids:
            return []
        rows = conn.execute(_AUTHZ_BY_IDS, {"ids": list(ids)})
        found = {r.id: r for r in rows}
        chall: dict[str, list[Challenge]] = {}
        if with_challenges:
            for r in conn.execute(_CHALLENGES_BY_AUTHZ, {"ids": list(ids)}):
                chall.setdefault(r.authz_id, []).append(challenge_of_row(r))
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

    def set_authz_status(
        self, conn: Connection, authz_id: str, status: str, allowed: Sequence[str]
    ) -> bool:
        table = acme_authorizations
        stmt = sa.update(table).where(table.c.id == authz_id, table.c.status.in_(allowed))
        return bool(conn.execute(stmt.values(status=status)).rowcount)

    def valid_identifiers(
        self, conn: Connection, account_id: str, now: datetime
    ) -> set[tuple[str, str]]:
        rows = conn.execute(
            sa.select(acme_authorizations.c.type, acme_authorizations.c.value).where(
                acme_authorizations.c.account_id == account_id,
                acme_authorizations.c.status == "valid",
                acme_authorizations.c.expires_at > now,
            )
        )
        return {(r.type, r.value) for r in rows}
