"""Username/password accounts for the CES ``UsernamePassword`` endpoint (WS-Security
UsernameToken profile 1.0 §4, PasswordText over TLS).

Passwords are stored as scrypt hashes (:mod:`gateway.passwords`, the one password-hashing
module; ``hash_password`` and ``check_password`` are its functions). Verifying one
costs ~40 ms of CPU, so a successful check is remembered for a short time, keyed by a SHA-256
of the stored hash and the presented password: a changed password or a removed account misses
the cache because the stored hash is re-read on every request.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.errors import BadRequest, Conflict, NotFound
from gateway.passwords import hash_password as hash_password
from gateway.passwords import verify_password as check_password
from gateway.ports import Transactions
from protocols.wstep.tables import wstep_users

_CACHE_SECONDS = 300
_CACHE_SIZE = 4096


#: What this package needs of the gateway store: :class:`gateway.ports.Transactions`.
SQLRunner = Transactions


@dataclass(frozen=True)
class Account:
    username: str
    principal: str
    groups: tuple[str, ...]
    password_hash: str


class PasswordVerifier:
    """Checks UsernameTokens against the ``wstep_users`` table."""

    def __init__(self, store: SQLRunner) -> None:
        self._store = store
        self._ok: OrderedDict[bytes, float] = OrderedDict()

    async def verify(self, username: str, password: str) -> Account | None:
        """The account if ``password`` is right, else ``None`` (unknown user or wrong password
        cost the same scrypt run, so timing does not tell which)."""
        if not username or len(username) > 255 or len(password) > 1024:
            return None
        account: Account | None = await self._store.read(get_account, username)
        stored = account.password_hash if account else _DUMMY_HASH
        key = hashlib.sha256(f"{stored}\0{password}".encode()).digest()
        seen = self._ok.get(key)
        if seen is not None and seen > time.monotonic() and account is not None:
            return account
        ok = await asyncio.to_thread(check_password, password, stored)
        if not ok or account is None:
            return None
        self._ok[key] = time.monotonic() + _CACHE_SECONDS
        while len(self._ok) > _CACHE_SIZE:
            self._ok.popitem(last=False)
        return account


_DUMMY_HASH = hash_password("certgate-no-such-user", salt=b"\0" * 16)


# -- store bodies (synchronous Core, run by SQLStore.read/write) --------------------------


def get_account(conn: Connection, username: str) -> Account | None:
    row = conn.execute(sa.select(wstep_users).where(wstep_users.c.username == username)).first()
    if row is None:
        return None
    return Account(row.username, row.principal, tuple(row.groups or ()), row.password_hash)


def add_account(conn: Connection, account: Account, now: datetime) -> None:
    if get_account(conn, account.username) is not None:
        raise Conflict(f"user {account.username!r} already exists")
    conn.execute(
        sa.insert(wstep_users).values(
            username=account.username,
            password_hash=account.password_hash,
            principal=account.principal,
            groups=list(account.groups),
            created_at=now,
        )
    )


def remove_account(conn: Connection, username: str) -> None:
    result = conn.execute(sa.delete(wstep_users).where(wstep_users.c.username == username))
    if result.rowcount == 0:
        raise NotFound(f"no user {username!r}")


def list_accounts(conn: Connection) -> list[Account]:
    rows = conn.execute(sa.select(wstep_users).order_by(wstep_users.c.username)).all()
    return [Account(r.username, r.principal, tuple(r.groups or ()), r.password_hash) for r in rows]


def validate_username(username: str) -> str:
    if not username or len(username) > 255 or not username.isprintable() or ":" in username:
        raise BadRequest("a username is 1..255 printable characters without ':'")
    return username
