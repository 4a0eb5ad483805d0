"""PostgreSQL implementation of the ACME repository: the statements every ACME request runs
sent straight to asyncpg (:func:`gateway.store.engine.driver_body`: no SQLAlchemy connection,
greenlet, compilation or result processing), and each request's write folded into *one*
statement with its nonce, so no BEGIN/COMMIT round trips either.

Why: on the Core path a POST cost a BEGIN, the nonce DELETE and INSERT, the body's statements
and a COMMIT, each a round trip with SQLAlchemy's per-statement machinery around it; that was
most of what an ACME flow cost the gateway on PostgreSQL over SQLite (issue #18). Here
:meth:`PostgresAcmeRepository.with_nonce` sends ``WITH taken AS (DELETE nonce ...), fresh AS
(INSERT nonce ...), <the body's writes, each only WHERE EXISTS (SELECT 1 FROM taken)> SELECT
...``: PostgreSQL runs it atomically, and only one statement's DELETE removes a nonce, so a
nonce is still taken once across instances and nothing is written with a bad one. The writes
that take several dependent statements (new account, key change, account update, a rate-limited
new order) run in one asyncpg transaction instead.

Reads are one statement each, joins included, and a POST-as-GET's read goes in its nonce's
statement too (SQL and decoders in :mod:`protocols.acme.postgres_rows`, the folded writes in
:mod:`protocols.acme.postgres_writes`). Cold paths (administration, sweeps, EAB key
management) are the inherited Core ones. ``tests/contract/test_acme_store_postgres.py`` runs
the contract's script through this and the Core repository and compares answers and rows.

A driver body may be sent again after a dropped connection (the engine cannot know whether it
committed): a replayed nonce swap finds its nonce gone and answers ``badNonce`` (the fresh
nonce's INSERT is ``ON CONFLICT DO NOTHING``), which clients retry, as after any lost answer.
"""

# The SQL here is built from this module's constant names, never from input (values are $n).
# ruff: noqa: S608

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from gateway.store.engine import driver_body
from protocols.acme import postgres_rows as q
from protocols.acme import postgres_writes as w
from protocols.acme import state
from protocols.acme.postgres_rows import at
from protocols.acme.postgres_writes import Fold, Sql
from protocols.acme.ratelimit import Limit, OverLimit
from protocols.acme.records import Account, Authz, Challenge, NewAuthz, Order
from protocols.acme.repository_core import CoreAcmeRepository


class PostgresAcmeRepository(CoreAcmeRepository):
    """:class:`protocols.acme.repository.AcmeRepository` on asyncpg for the per-request
    statements (PostgreSQL only: the engine must be :class:`gateway.store.postgres.AsyncDatabase`).
    Its driver bodies are coroutines on the asyncpg connection; the bodies ``with_nonce`` runs
    must be this repository's driver bodies or :func:`protocols.acme.state.nothing` (a
    synchronous Core body cannot run on the driver's connection, so it is refused)."""

    # --- nonces (RFC 8555 §6.5) ------------------------------------------------------------

    @driver_body
    async def issue_nonce(  # type: ignore[override]
        self, conn: Any, value: str, expires: datetime, purge_before: datetime | None
    ) -> None:
        if purge_before is None:
            await conn.execute(q.NONCE_ISSUE, value, at(expires))
        else:
            await conn.execute(q.NONCE_ISSUE_PURGING, value, at(expires), at(purge_before))

    @driver_body
    async def purge_nonces(self, conn: Any, now: datetime) -> int:  # type: ignore[override]
        status = await conn.execute(q.NONCE_PURGE, at(now))
        return int(status.split()[-1])

    @driver_body
    async def with_nonce(  # type: ignore[override]
        self,
        conn: Any,
        used: str | None,
        fresh: str,
        expires: datetime,
        now: datetime,
        body: Callable[..., Any],
        args: Sequence[Any],
        kw: dict[str, Any],
        expect: Account | None = None,
    ) -> tuple[bool, Any]:
        ours = body is state.nothing or (
            getattr(body, "__self__", None) is self and getattr(body, "driver_body", False)
        )
        if not ours:
            raise TypeError(f"{body!r} has no PostgreSQL form (PostgresAcmeRepository)")
        if used is None:  # nothing to take: only the next nonce is issued
            await conn.execute(q.NONCE_ISSUE, fresh, at(expires))
            return False, None
        s = Sql(used, at(now), fresh, at(expires))
        swap = q.NONCE_SWAP
        if expect is not None:  # the nonce is taken only while the account reads as expected
            s.params.extend(q.expect_params(expect))
            swap = q.NONCE_SWAP_EXPECTING
        name = "" if body is state.nothing else body.__name__
        if name in _IN_TRANSACTION and (name != "create_order" or w.limit_of(args, kw)):
            async with conn.transaction():  # several dependent statements
                if not await conn.fetchval(q.SWAP_ONLY[swap], *s.params):
                    return False, None
                return True, await getattr(self, _IN_TRANSACTION[name])(conn, *args, **kw)
        if name in q.READS:  # a POST-as-GET: the nonce and the read in one statement
            sql, order, params, decode = q.READS[name](*args, **kw)
            statement = q.after_nonce(sql, order, expect is not None)
            rows = await conn.fetch(statement, *s.params, *params)
            if not rows[0][0]:
                return False, None
            return True, decode([r[1:] for r in rows if r[1] is not None])
        if name in w.FOLDS:  # a write: the nonce and the write in one statement
            ctes, answer = w.FOLDS[name](s, q.TAKEN, *args, **kw)
            sql = (
                f"WITH {swap}, {', '.join(ctes)} "
                "SELECT (SELECT count(*) FROM taken), (SELECT count(*) FROM done)"
            )
            taken, done = await conn.fetchrow(sql, *s.params)
            return (True, answer(done)) if taken else (False, None)
        # nothing, or another body of this repository (one statement, or its own transaction):
        # the nonce first, then the body
        if not await conn.fetchval(q.SWAP_ONLY[swap], *s.params):
            return False, None
        return True, None if body is state.nothing else await body(conn, *args, **kw)

    async def _run(self, conn: Any, s: Sql, fold: Fold) -> Any:
        """A folded write on its own (no nonce): one statement."""
        ctes, answer = fold
        sql = f"WITH {', '.join(ctes)} SELECT count(*) FROM done"
        return answer(await conn.fetchval(sql, *s.params))

    # --- accounts (RFC 8555 §7.3) ----------------------------------------------------------

    @driver_body
    async def get_account(self, conn: Any, account_id: str) -> Account | None:  # type: ignore[override]
        row = await conn.fetchrow(q.ACCOUNT_BY_ID, account_id)
        return None if row is None else q.account_from_row(row)

    @driver_body
    async def account_by_thumbprint(self, conn: Any, thumbprint: str) -> Account | None:  # type: ignore[override]
        row = await conn.fetchrow(q.ACCOUNT_BY_THUMBPRINT, thumbprint)
        return None if row is None else q.account_from_row(row)

    @driver_body
    async def get_eab_key(self, conn: Any, kid: str) -> dict[str, Any] | None:  # type: ignore[override]
        row = await conn.fetchrow(q.EAB_BY_KID, kid)
        return None if row is None else dict(row.items())

    @driver_body
    async def create_account(  # type: ignore[override]
        self,
        conn: Any,
        account_id: str,
        thumbprint: str,
        jwk: dict[str, Any],
        contact: list[str],
        eab_kid: str | None,
        now: datetime,
        tos_agreed: str | None = None,
        limit: Limit | None = None,
    ) -> tuple[Account, bool] | OverLimit:
        async with conn.transaction():
            return await self._create_account(
                conn, account_id, thumbprint, jwk, contact, eab_kid, now, tos_agreed, limit
            )

    async def _create_account(
        self,
        conn: Any,
        account_id: str,
        thumbprint: str,
        jwk: dict[str, Any],
        contact: list[str],
        eab_kid: str | None,
        now: datetime,
        tos_agreed: str | None = None,
        limit: Limit | None = None,
    ) -> tuple[Account, bool] | OverLimit:
        row = await conn.fetchrow(q.ACCOUNT_BY_THUMBPRINT, thumbprint)
        if row is not None:
            return q.account_from_row(row), False
        if limit is not None and not await w.hit(conn, limit):
            return OverLimit(limit)
        await conn.execute(
            q.ACCOUNT_INSERT, account_id, thumbprint, json.dumps(jwk), json.dumps(contact),
            eab_kid, at(now), tos_agreed,
        )  # fmt: skip
        row = await conn.fetchrow(q.ACCOUNT_BY_ID, account_id)
        return q.account_from_row(row), True

    @driver_body
    async def update_account(  # type: ignore[override]
        self,
        conn: Any,
        account_id: str,
        contact: list[str] | None,
        status: str | None,
        tos_agreed: str | None = None,
    ) -> Account | None:
        async with conn.transaction():
            return await self._update_account(conn, account_id, contact, status, tos_agreed)

    async def _update_account(
        self,
        conn: Any,
        account_id: str,
        contact: list[str] | None,
        status: str | None,
        tos_agreed: str | None = None,
    ) -> Account | None:
        s = Sql(account_id)
        sql = w.account_update_sql(s, contact, status, tos_agreed)
        if sql is not None:
            await conn.execute(sql, *s.params)
        row = await conn.fetchrow(q.ACCOUNT_BY_ID, account_id)
        return None if row is None else q.account_from_row(row)

    @driver_body
    async def change_key(  # type: ignore[override]
        self,
        conn: Any,
        account_id: str,
        old_thumbprint: str,
        thumbprint: str,
        jwk: dict[str, Any],
    ) -> Account | None:
        async with conn.transaction():
            return await self._change_key(conn, account_id, old_thumbprint, thumbprint, jwk)

    async def _change_key(
        self,
        conn: Any,
        account_id: str,
        old_thumbprint: str,
        thumbprint: str,
        jwk: dict[str, Any],
    ) -> Account | None:
        row = await conn.fetchrow(q.ACCOUNT_BY_THUMBPRINT, thumbprint)
        if row is not None:
            return q.account_from_row(row)
        await conn.execute(
            q.ACCOUNT_CHANGE_KEY, account_id, old_thumbprint, thumbprint, json.dumps(jwk)
        )
        return None

    # --- orders (RFC 8555 §7.1.3) ----------------------------------------------------------

    @driver_body
    async def create_order(  # type: ignore[override]
        self,
        conn: Any,
        order: Order,
        new_authzs: Sequence[NewAuthz],
        now: datetime,
        limit: Limit | None = None,
    ) -> Order | OverLimit:
        if limit is None:
            s = Sql()
            await self._run(conn, s, w.fold_create_order(s, "TRUE", order, new_authzs, now))
            return order
        async with conn.transaction():
            return await self._create_order_limited(conn, order, new_authzs, now, limit)

    async def _create_order_limited(
        self, conn: Any, order: Order, new_authzs: Sequence[NewAuthz], now: datetime,
        limit: Limit | None = None,
    ) -> Order | OverLimit:  # fmt: skip
        """The rate-limited :meth:`create_order`, in the caller's transaction."""
        if limit is not None and not await w.hit(conn, limit):
            return OverLimit(limit)
        s = Sql()
        await self._run(conn, s, w.fold_create_order(s, "TRUE", order, new_authzs, now))
        return order

    @driver_body
    async def get_order(self, conn: Any, order_id: str) -> tuple[Order, list[Authz]] | None:  # type: ignore[override]
        found: tuple[Order, list[Authz]] | None = await _read(conn, q.order_read(order_id))
        return found

    @driver_body
    async def order_for_certificate(self, conn: Any, serial: str) -> Order | None:  # type: ignore[override]
        found: Order | None = await _read(conn, q.serial_read(serial))
        return found

    @driver_body
    async def orders_of(self, conn: Any, account_id: str) -> list[str]:  # type: ignore[override]
        return [r[0] for r in await conn.fetch(q.ORDERS_OF_ACCOUNT, account_id)]

    @driver_body
    async def order_replacing(self, conn: Any, cert_id: str) -> list[Order]:  # type: ignore[override]
        return [q.order_from_row(r) for r in await conn.fetch(q.ORDERS_REPLACING, cert_id)]

    @driver_body
    async def older_awaiting_core(self, conn: Any, order: Order) -> list[Order]:  # type: ignore[override]
        rows = await conn.fetch(
            q.ORDERS_OLDER_AWAITING_CORE, order.account_id, order.template, order.id
        )
        return [q.order_from_row(r) for r in rows]

    @driver_body
    async def set_order(  # type: ignore[override]
        self, conn: Any, /, order_id: str, expect: str | None, **values: Any
    ) -> bool:
        s = Sql()
        return bool(
            await self._run(conn, s, w.fold_set_order(s, "TRUE", order_id, expect, **values))
        )

    @driver_body
    async def set_order_and_older(  # type: ignore[override]
        self, conn: Any, /, order: Order, expect: str | None, **values: Any
    ) -> list[Order]:
        """One statement (:func:`protocols.acme.postgres_writes.set_order_then_older`)."""
        s = Sql()
        rows = await conn.fetch(w.set_order_then_older(s, order, expect, **values), *s.params)
        return [q.order_from_row(r) for r in rows]

    # --- authorizations and challenges (RFC 8555 §7.1.4, §7.1.5, §7.5) ---------------------

    @driver_body
    async def reusable_authzs(  # type: ignore[override]
        self, conn: Any, account_id: str, wanted: Sequence[tuple[str, str, bool]], now: datetime
    ) -> list[str | None]:
        types = [t for t, _, _ in wanted]
        values = [v for _, v, _ in wanted]
        wild = [bool(w) for _, _, w in wanted]
        rows = await conn.fetch(q.REUSABLE_AUTHZS, account_id, at(now), types, values, wild)
        return [None if r[0] is None else str(r[0]) for r in rows]

    @driver_body
    async def get_authzs(  # type: ignore[override]
        self, conn: Any, ids: Sequence[str], *, with_challenges: bool
    ) -> list[Authz]:
        if not ids:
            return []
        found: list[Authz] = await _read(conn, q.authzs_read(ids, with_challenges=with_challenges))
        return found

    @driver_body
    async def set_authz_status(  # type: ignore[override]
        self, conn: Any, authz_id: str, status: str, allowed: Sequence[str]
    ) -> bool:
        s = Sql()
        return bool(
            await self._run(conn, s, w.fold_set_authz_status(s, "TRUE", authz_id, status, allowed))
        )

    @driver_body
    async def valid_identifiers(  # type: ignore[override]
        self, conn: Any, account_id: str, now: datetime
    ) -> set[tuple[str, str]]:
        rows = await conn.fetch(q.VALID_IDENTIFIERS, account_id, at(now))
        return {(r[0], r[1]) for r in rows}

    @driver_body
    async def get_challenge(  # type: ignore[override]
        self, conn: Any, challenge_id: str
    ) -> tuple[Challenge, Authz] | None:
        row = await conn.fetchrow(q.CHALLENGE_WITH_AUTHZ, challenge_id)
        return None if row is None else (q.challenge_from_row(row[:7]), q.authz_from_row(row[7:]))

    @driver_body
    async def start_challenge(  # type: ignore[override]
        self, conn: Any, challenge_id: str, lease_until: datetime
    ) -> bool:
        s = Sql()
        return bool(
            await self._run(conn, s, w.fold_start_challenge(s, "TRUE", challenge_id, lease_until))
        )

    @driver_body
    async def finish_challenge(  # type: ignore[override]
        self, conn: Any, challenge_id: str, authz_id: str, ok: bool,
        error: dict[str, Any] | None, now: datetime, valid_until: datetime,
    ) -> None:  # fmt: skip
        s = Sql()
        fold = w.fold_finish_challenge(s, challenge_id, authz_id, ok, error, now, valid_until)
        await self._run(conn, s, fold)

    @driver_body
    async def accept_challenge(  # type: ignore[override]
        self, conn: Any, challenge_id: str, authz_id: str, now: datetime, valid_until: datetime
    ) -> bool:
        s = Sql()
        fold = w.fold_accept_challenge(s, "TRUE", challenge_id, authz_id, now, valid_until)
        return bool(await self._run(conn, s, fold))


#: The writes :meth:`PostgresAcmeRepository.with_nonce` runs in a transaction (several
#: dependent statements), by name: their coroutine without a transaction of its own.
_IN_TRANSACTION = {
    "create_account": "_create_account",
    "update_account": "_update_account",
    "change_key": "_change_key",
    "create_order": "_create_order_limited",
}


async def _read(conn: Any, read: q.Read) -> Any:
    """A read on its own."""
    sql, _, params, decode = read
    return decode(await conn.fetch(sql, *params))
