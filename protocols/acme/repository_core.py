"""SQLAlchemy Core implementation of the ACME repository (PostgreSQL; also runs on SQLite):
nonces, accounts and EAB keys here, on top of challenges
(:mod:`protocols.acme.repository_core_challenges`) and orders, authorizations and rate
counters (:mod:`protocols.acme.repository_core_orders`). The contracts are on
:class:`protocols.acme.repository.AcmeRepository`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from protocols.acme.ratelimit import Limit, OverLimit
from protocols.acme.records import Account
from protocols.acme.repository_core_challenges import CoreChallenges
from protocols.acme.tables import acme_accounts, acme_eab_keys, acme_nonces

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


def account_of_row(row: Any) -> Account:
    """A Core row of ``acme_accounts`` as an :class:`Account` (without its EAB fields)."""
    return Account(
        row.id,
        row.key_thumbprint,
        dict(row.jwk),
        row.status,
        list(row.contact),
        row.eab_kid,
        tos_agreed=row.tos_agreed,
    )


class CoreAcmeRepository(CoreChallenges):
    """:class:`protocols.acme.repository.AcmeRepository` through SQLAlchemy Core.

    The composite bodies (:meth:`with_nonce`, :meth:`create_account`, :meth:`get_order`...)
    call the single-statement ones through ``self``, so a subclass that reimplements those
    (:class:`protocols.acme.repository_sqlite.SQLiteAcmeRepository`) keeps the composites."""

    # --- nonces ----------------------------------------------------------------------------

    def issue_nonce(
        self, conn: Connection, value: str, expires: datetime, purge_before: datetime | None
    ) -> None:
        conn.execute(_NONCE_INSERT, {"value": value, "expires_at": expires})
        if purge_before is not None:
            self.purge_nonces(conn, purge_before)

    def purge_nonces(self, conn: Connection, now: datetime) -> int:
        stmt = sa.delete(acme_nonces).where(acme_nonces.c.expires_at < now)
        return int(conn.execute(stmt).rowcount)

    def with_nonce(
        self,
        conn: Connection,
        used: str | None,
        fresh: str,
        expires: datetime,
        now: datetime,
        body: Callable[..., Any],
        args: Sequence[Any],
        kw: dict[str, Any],
        expect: Account | None = None,
    ) -> tuple[bool, Any]:
        if expect is not None and self.get_account(conn, expect.id) != expect:
            return False, None  # a stale copy: nothing taken, nothing written
        if not self._swap_nonce(conn, used, fresh, expires, now):
            return False, None
        return True, body(conn, *args, **kw)

    def _swap_nonce(
        self, conn: Connection, used: str | None, fresh: str, expires: datetime, now: datetime
    ) -> bool:
        """Take ``used`` if it is live (True), and record ``fresh`` either way."""
        taken = (
            used is not None
            and conn.execute(_NONCE_TAKE, {"used": used, "now": now}).first() is not None
        )
        conn.execute(_NONCE_INSERT, {"value": fresh, "expires_at": expires})
        return taken

    # --- accounts --------------------------------------------------------------------------

    def get_account(self, conn: Connection, account_id: str) -> Account | None:
        account = self._account_by_id(conn, account_id)
        return None if account is None else self._with_eab(conn, account)

    def account_by_thumbprint(self, conn: Connection, thumbprint: str) -> Account | None:
        account = self._account_by_key(conn, thumbprint)
        return None if account is None else self._with_eab(conn, account)

    def _account_by_id(self, conn: Connection, account_id: str) -> Account | None:
        """The account row (without its EAB binding)."""
        row = conn.execute(_ACCOUNT_BY_ID, {"id": account_id}).first()
        return None if row is None else account_of_row(row)

    def _account_by_key(self, conn: Connection, thumbprint: str) -> Account | None:
        """The account row holding this key (without its EAB binding)."""
        row = conn.execute(_ACCOUNT_BY_THUMB, {"t": thumbprint}).first()
        return None if row is None else account_of_row(row)

    def _with_eab(self, conn: Connection, account: Account) -> Account:
        if account.eab_kid is None:
            return account
        key = self.get_eab_key(conn, account.eab_kid)
        if key is None:
            return account
        return replace(
            account,
            principal=key["principal"],
            eab_templates=tuple(key["templates"]),
            eab_domains=tuple(key["domains"]),
        )

    def create_account(
        self,
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
        existing = self.account_by_thumbprint(conn, thumbprint)
        if existing is not None:
            return existing, False
        if limit is not None and not self.count_hit(conn, limit):
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
        account = self.get_account(conn, account_id)
        assert account is not None
        return account, True

    def update_account(
        self,
        conn: Connection,
        account_id: str,
        contact: list[str] | None,
        status: str | None,
        tos_agreed: str | None = None,
    ) -> Account | None:
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
        return self.get_account(conn, account_id)

    def change_key(
        self,
        conn: Connection,
        account_id: str,
        old_thumbprint: str,
        thumbprint: str,
        jwk: dict[str, Any],
    ) -> Account | None:
        holder = self.account_by_thumbprint(conn, thumbprint)
        if holder is not None:
            return holder
        conn.execute(
            sa.update(acme_accounts)
            .where(
                acme_accounts.c.id == account_id, acme_accounts.c.key_thumbprint == old_thumbprint
            )
            .values(key_thumbprint=thumbprint, jwk=jwk)
        )
        return None

    def revoke_account(self, conn: Connection, account_id: str) -> bool:
        done = conn.execute(
            sa.update(acme_accounts)
            .where(acme_accounts.c.id == account_id, acme_accounts.c.status == "valid")
            .values(status="revoked")
        ).rowcount
        return bool(done)

    def list_accounts(self, conn: Connection) -> list[dict[str, Any]]:
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

    # --- EAB keys --------------------------------------------------------------------------

    def get_eab_key(self, conn: Connection, kid: str) -> dict[str, Any] | None:
        row = conn.execute(_EAB_BY_KID, {"kid": kid}).first()
        return None if row is None else dict(row._mapping)

    def put_eab_key(
        self,
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

    def list_eab_keys(self, conn: Connection) -> list[dict[str, Any]]:
        rows = conn.execute(sa.select(acme_eab_keys).order_by(acme_eab_keys.c.created_at))
        return [{k: v for k, v in r._mapping.items() if k != "secret"} for r in rows]

    def delete_eab_key(self, conn: Connection, kid: str) -> bool:
        stmt = sa.delete(acme_eab_keys).where(acme_eab_keys.c.kid == kid)
        return bool(conn.execute(stmt).rowcount)
