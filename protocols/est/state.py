"""EST state in the gateway database: Basic users, one-time enrollment codes, deliveries.

Queries are plain synchronous SQLAlchemy Core functions run through the store's ``read`` /
``write`` (one transaction each; write bodies may re-run on SQLite busy, so they keep no state
outside the database). Secrets are never stored: passwords as salted scrypt hashes
(RFC 7914), enrollment codes as SHA-256 of a 160-bit random code.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import ParamSpec, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.errors import Conflict
from gateway.passwords import hash_password as hash_password
from gateway.passwords import secret_digest
from gateway.passwords import verify_password as verify_password
from gateway.ports import Transactions
from protocols.est.tables import est_codes, est_deliveries, est_users

P = ParamSpec("P")
T = TypeVar("T")

#: How long a successful Basic check is remembered in a worker.
VERIFIED_TTL = timedelta(seconds=60)


#: What EST state needs of the gateway store: :class:`gateway.ports.Transactions`.
StateStore = Transactions


# --- passwords and codes (pure) ---------------------------------------------------------------


def new_code() -> str:
    """A one-time enrollment code: 160 random bits, base32 in groups (easy to type)."""
    raw = base64.b32encode(secrets.token_bytes(20)).decode().rstrip("=")
    return "-".join(raw[i : i + 8] for i in range(0, len(raw), 8))


def code_hash(code: str) -> str:
    """The stored form of a code; codes are random, so an unsalted SHA-256 suffices."""
    return secret_digest(code.strip().upper().replace("-", ""))


# --- records ------------------------------------------------------------------------------


@dataclass(frozen=True)
class User:
    username: str
    password_hash: str
    groups: tuple[str, ...]


@dataclass(frozen=True)
class Code:
    code_hash: str
    label: str
    identity: str
    expires_at: datetime
    used_at: datetime | None
    spki_sha256: str | None


# --- queries (synchronous Core bodies) ----------------------------------------------------


def _put_user(conn: Connection, user: User, now: datetime, replace: bool) -> None:
    exists = conn.execute(
        sa.select(est_users.c.username).where(est_users.c.username == user.username)
    ).first()
    values = {"password_hash": user.password_hash, "groups": list(user.groups)}
    if exists and not replace:
        raise Conflict(f"EST user {user.username!r} exists")
    if exists:
        conn.execute(est_users.update().where(est_users.c.username == user.username), values)
    else:
        conn.execute(est_users.insert(), {**values, "username": user.username, "created_at": now})


def _get_user(conn: Connection, username: str) -> User | None:
    row = conn.execute(sa.select(est_users).where(est_users.c.username == username)).first()
    if row is None:
        return None
    return User(row.username, row.password_hash, tuple(row.groups))


def _list_users(conn: Connection, after: str | None, limit: int | None) -> list[User]:
    query = sa.select(est_users).order_by(est_users.c.username).limit(limit)
    if after is not None:
        query = query.where(est_users.c.username > after)
    rows = conn.execute(query)
    return [User(r.username, r.password_hash, tuple(r.groups)) for r in rows]


def _delete_user(conn: Connection, username: str) -> bool:
    return bool(conn.execute(est_users.delete().where(est_users.c.username == username)).rowcount)


def _put_code(conn: Connection, code: Code, now: datetime) -> None:
    conn.execute(
        est_codes.insert(),
        {
            "code_hash": code.code_hash,
            "label": code.label,
            "identity": code.identity,
            "created_at": now,
            "expires_at": code.expires_at,
        },
    )


def _get_code(conn: Connection, hashed: str) -> Code | None:
    row = conn.execute(sa.select(est_codes).where(est_codes.c.code_hash == hashed)).first()
    if row is None:
        return None
    return Code(
        row.code_hash, row.label, row.identity, row.expires_at, row.used_at, row.spki_sha256
    )


def _bind_code(conn: Connection, hashed: str, spki: str, now: datetime) -> bool:
    """Atomically mark an unused code used by ``spki``; False if someone else won."""
    result = conn.execute(
        est_codes.update()
        .where(est_codes.c.code_hash == hashed, est_codes.c.used_at.is_(None))
        .values(used_at=now, spki_sha256=spki)
    )
    return bool(result.rowcount)


@dataclass(frozen=True)
class Delivery:
    """A transaction that answered 202 at ``pending_at``; ``delivered_at`` is when its final
    answer reached the client (None: not yet)."""

    pending_at: datetime
    delivered_at: datetime | None


def _delivery(conn: Connection, transaction_id: str) -> Delivery | None:
    row = conn.execute(
        sa.select(est_deliveries).where(est_deliveries.c.transaction_id == transaction_id)
    ).first()
    return None if row is None else Delivery(row.pending_at, row.delivered_at)


def _mark_pending(conn: Connection, transaction_id: str, now: datetime) -> None:
    if _delivery(conn, transaction_id) is None:
        conn.execute(est_deliveries.insert(), {"transaction_id": transaction_id, "pending_at": now})


def _mark_delivered(conn: Connection, transaction_id: str, now: datetime) -> None:
    conn.execute(
        est_deliveries.update()
        .where(
            est_deliveries.c.transaction_id == transaction_id,
            est_deliveries.c.delivered_at.is_(None),
        )
        .values(delivered_at=now)
    )


class EstState:
    """Async access to the EST tables through the gateway store."""

    def __init__(self, store: StateStore, clock: Callable[[], datetime]) -> None:
        self.store = store
        self.clock = clock
        # Successful Basic checks: (username, sha256(password)) -> (user, checked at).
        self._verified: dict[tuple[str, bytes], tuple[User, datetime]] = {}

    async def add_user(
        self, username: str, password: str, groups: Sequence[str], replace: bool
    ) -> None:
        hashed = await asyncio.to_thread(hash_password, password)
        user = User(username, hashed, tuple(groups))
        await self.store.write(_put_user, user, self.clock(), replace)

    async def delete_user(self, username: str) -> bool:
        return await self.store.write(_delete_user, username)

    async def list_users(self, after: str | None = None, limit: int | None = None) -> list[User]:
        """Users by name; with ``after``/``limit``, one page of them (the admin API's keyset)."""
        return await self.store.read(_list_users, after, limit)

    async def check_user(self, username: str, password: str) -> User | None:
        """The user if ``password`` is right. A success is remembered for
        :data:`VERIFIED_TTL` per process (keep-alive clients would otherwise pay scrypt and a
        query on every request), so deleting a user or changing a password takes up to that
        long to reach running workers."""
        key = (username, hashlib.sha256(password.encode()).digest())
        now = self.clock()
        cached = self._verified.get(key)
        if cached is not None and now - cached[1] < VERIFIED_TTL:
            return cached[0]
        user = await self.store.read(_get_user, username)
        if user is None:
            return None
        if not await asyncio.to_thread(verify_password, password, user.password_hash):
            return None
        if len(self._verified) > 10_000:
            self._verified.clear()
        self._verified[key] = (user, now)
        return user

    async def create_code(self, label: str, identity: str, ttl: timedelta) -> tuple[str, Code]:
        code = new_code()
        now = self.clock()
        record = Code(code_hash(code), label, identity, now + ttl, None, None)
        await self.store.write(_put_code, record, now)
        return code, record

    async def get_code(self, code: str) -> Code | None:
        return await self.store.read(_get_code, code_hash(code))

    async def get_code_by_hash(self, hashed: str) -> Code | None:
        return await self.store.read(_get_code, hashed)

    async def bind_code(self, code: Code, spki: str) -> bool:
        return await self.store.write(_bind_code, code.code_hash, spki, self.clock())

    async def delivery(self, transaction_id: str) -> Delivery | None:
        """The 202 bookkeeping of an EST transaction (None: it never answered 202)."""
        return await self.store.read(_delivery, transaction_id)

    async def mark_pending(self, transaction_id: str) -> None:
        await self.store.write(_mark_pending, transaction_id, self.clock())

    async def mark_delivered(self, transaction_id: str) -> None:
        await self.store.write(_mark_delivered, transaction_id, self.clock())
