"""Raw SQLite implementation of the ACME repository: the per-request statements on the
driver's cursor (SQL and row decoders in :mod:`protocols.acme.sqlite_rows`, run through the
store's public seam :mod:`gateway.store.raw`), everything else inherited from SQLAlchemy Core.

Chosen once by :func:`protocols.acme.repository.open_repository` for an SQLite store whose
library has ``RETURNING``; it stores the same bytes as the Core implementation and answers the
same (``tests/contract/test_acme_store.py``). Driver errors surface as SQLAlchemy's exceptions,
so the store's busy retry and savepoint handling treat both implementations alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from gateway.store.raw import encode_datetime as _dt
from gateway.store.raw import encode_json as _json
from gateway.store.raw import execute, fetch_all, fetch_each, fetch_one, run_statements
from protocols.acme import sqlite_rows as q
from protocols.acme.ratelimit import Limit
from protocols.acme.records import Account, Authz, Challenge, NewAuthz, Order
from protocols.acme.repository_core import CoreAcmeRepository


class SQLiteAcmeRepository(CoreAcmeRepository):
    """:class:`protocols.acme.repository.AcmeRepository` on SQLite's raw cursor for the
    statements every ACME request runs (finalize's supersession check included); cold paths
    (administration, sweeps, withdrawing a superseded order)
    are the inherited Core ones."""

    # --- nonces (RFC 8555 §6.5) ------------------------------------------------------------

    def issue_nonce(
        self, conn: Connection, value: str, expires: datetime, purge_before: datetime | None
    ) -> None:
        statements: list[tuple[str, tuple[Any, ...]]] = [(q.NONCE_INSERT, (value, _dt(expires)))]
        if purge_before is not None:
            statements.append((q.NONCE_PURGE, (_dt(purge_before),)))
        run_statements(conn, statements)

    def purge_nonces(self, conn: Connection, now: datetime) -> int:
        return execute(conn, q.NONCE_PURGE, (_dt(now),))

    def _swap_nonce(
        self, conn: Connection, used: str | None, fresh: str, expires: datetime, now: datetime
    ) -> bool:
        taken = used is not None and fetch_one(conn, q.NONCE_TAKE, (used, _dt(now))) is not None
        execute(conn, q.NONCE_INSERT, (fresh, _dt(expires)))
        return taken

    # --- accounts and EAB keys (RFC 8555 §7.3) ---------------------------------------------

    def _account_by_id(self, conn: Connection, account_id: str) -> Account | None:
        row = fetch_one(conn, q.ACCOUNT_BY_ID, (account_id,))
        return None if row is None else q.account_from_row(row)

    def _account_by_key(self, conn: Connection, thumbprint: str) -> Account | None:
        row = fetch_one(conn, q.ACCOUNT_BY_THUMBPRINT, (thumbprint,))
        return None if row is None else q.account_from_row(row)

    def get_eab_key(self, conn: Connection, kid: str) -> dict[str, Any] | None:
        row = fetch_one(conn, q.EAB_BY_KID, (kid,))
        return None if row is None else q.eab_key_from_row(row)

    # --- rate counters (RFC 8555 §6.6) -----------------------------------------------------

    def count_hit(self, conn: Connection, limit: Limit) -> bool:
        row = fetch_one(conn, q.COUNT_HIT, (limit.key, limit.slot))
        assert row is not None
        return int(row[0]) <= limit.limit

    # --- orders (RFC 8555 §7.1.3) ----------------------------------------------------------

    def _insert_order(
        self, conn: Connection, order: Order, new_authzs: Sequence[NewAuthz], now: datetime
    ) -> None:
        at = _dt(now)
        statements: list[tuple[str, tuple[Any, ...]]] = [
            (q.AUTHZ_INSERT, (a.id, order.account_id, a.type, a.value, bool(a.wildcard),
                              a.status, _dt(a.expires_at), at))
            for a in new_authzs
        ]  # fmt: skip
        null = _json(None)  # Core writes a JSON column's None as the JSON text "null"
        statements.extend(
            (q.CHALLENGE_INSERT, (cid, a.id, ctype, token, "pending", None, null, None, 0))
            for a in new_authzs
            for cid, ctype, token in a.challenges
        )
        statements.append(
            (
                q.ORDER_INSERT,
                (order.id, order.account_id, order.status, order.template, order.profile,
                 _json(order.identifiers), _json(order.authz_ids), _dt(order.not_before),
                 _dt(order.not_after), _dt(order.expires_at), null, order.replaces, 0, None,
                 None, at),
            )
        )  # fmt: skip
        run_statements(conn, statements)

    def _order_row(self, conn: Connection, order_id: str) -> Order | None:
        row = fetch_one(conn, q.ORDER_BY_ID, (order_id,))
        return None if row is None else q.order_from_row(row)

    def order_for_certificate(self, conn: Connection, serial: str) -> Order | None:
        row = fetch_one(conn, q.ORDER_BY_SERIAL, (serial,))
        return None if row is None else q.order_from_row(row)

    def older_awaiting_core(self, conn: Connection, order: Order) -> list[Order]:
        params = (order.account_id, order.template, order.id, order.id)
        return [q.order_from_row(r) for r in fetch_all(conn, q.ORDERS_OLDER_AWAITING_CORE, params)]

    def set_order(
        self, conn: Connection, /, order_id: str, expect: str | None, **values: Any
    ) -> bool:
        if not values:
            return super().set_order(conn, order_id, expect)
        keys = tuple(values)
        sql = q.set_order_sql(keys, expect is not None)
        encoders = q.ORDER_ENCODERS
        params = tuple(encoders[k](values[k]) for k in keys)
        params += (order_id,) if expect is None else (order_id, expect)
        return bool(execute(conn, sql, params))

    # --- authorizations and challenges (RFC 8555 §7.1.4, §7.1.5) ---------------------------

    def reusable_authzs(
        self,
        conn: Connection,
        account_id: str,
        wanted: Sequence[tuple[str, str, bool]],
        now: datetime,
    ) -> list[str | None]:
        at = _dt(now)
        params = [(account_id, type_, value, bool(wild), at) for type_, value, wild in wanted]
        rows = fetch_each(conn, q.REUSABLE_AUTHZ, params)
        return [None if row is None else str(row[0]) for row in rows]

    def get_authzs(
        self, conn: Connection, ids: Sequence[str], *, with_challenges: bool
    ) -> list[Authz]:
        """One id (an authorization or challenge URL, most orders) is a plain primary-key
        lookup; several are one IN list, rendered as a plain string join."""
        if not ids:
            return []
        if len(ids) == 1:
            (only,) = ids
            row = fetch_one(conn, q.AUTHZ_BY_ID, (only,))
            if row is None:
                return []
            challenges: tuple[Challenge, ...] = ()
            if with_challenges:
                rows = fetch_all(conn, q.CHALLENGES_OF_AUTHZ, (only,))
                challenges = tuple(q.challenge_from_row(r) for r in rows)
            return [q.authz_from_row(row, challenges)]
        params = tuple(ids)
        found = {r[0]: r for r in fetch_all(conn, q.authz_by_ids_sql(len(params)), params)}
        chall: dict[str, list[Challenge]] = {}
        if with_challenges:
            for r in fetch_all(conn, q.challenges_of_authzs_sql(len(params)), params):
                chall.setdefault(r[1], []).append(q.challenge_from_row(r))
        return [q.authz_from_row(found[i], tuple(chall.get(i, ()))) for i in ids if i in found]

    def _challenge_row(self, conn: Connection, challenge_id: str) -> Challenge | None:
        row = fetch_one(conn, q.CHALLENGE_BY_ID, (challenge_id,))
        return None if row is None else q.challenge_from_row(row)

    def start_challenge(self, conn: Connection, challenge_id: str, lease_until: datetime) -> bool:
        return bool(execute(conn, q.CHALLENGE_START, (_dt(lease_until), challenge_id)))

    def finish_challenge(
        self,
        conn: Connection,
        challenge_id: str,
        authz_id: str,
        ok: bool,
        error: dict[str, Any] | None,
        now: datetime,
        valid_until: datetime,
    ) -> None:
        params = (
            "valid" if ok else "invalid",
            _dt(now) if ok else None,
            _json(error),
            challenge_id,
        )
        if not execute(conn, q.CHALLENGE_FINISH, params):
            return
        if ok:
            execute(conn, q.AUTHZ_FINISH_VALID, (_dt(valid_until), authz_id))
        else:
            execute(conn, q.AUTHZ_FINISH_INVALID, (authz_id,))
