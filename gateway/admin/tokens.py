"""Admin API tokens: made by an operator, sent as ``Authorization: Bearer cg_...`` (issue #16).

A token is ``cg_`` + 32 random bytes (URL-safe base64): 256 bits, shown once when it is made.
The database keeps only its SHA-256 (:func:`gateway.passwords.secret_digest`), so a copy of the
database grants nothing; a presented token is looked up by that digest (a unique index) and the
stored digest is compared again in constant time. A token has a role
(:class:`gateway.admin.plugin.Role`), may expire, can be revoked (kept, for the audit trail:
``list`` shows it as revoked), and records when it was last used, at most once a minute so that
a busy client costs no write per call. Making and revoking a token are audit events.
"""

from __future__ import annotations

import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from gateway.admin.plugin import Role
from gateway.admin.tables import admin_tokens
from gateway.clock import Clock
from gateway.errors import BadRequest, Conflict, NotFound
from gateway.passwords import secret_digest
from gateway.ports import Store, Transactions

#: Every token starts with this, so a leaked one is recognisable (secret scanners, logs).
TOKEN_PREFIX = "cg_"  # noqa: S105 (a prefix, not a secret)
#: ``last_used_at`` is written at most this often per token.
LAST_USED_RESOLUTION = timedelta(minutes=1)
#: Token names: what ``token:<name>`` in the audit trail and the CLI show.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")

EVENT_CREATED = "admin.token.created"
EVENT_REVOKED = "admin.token.revoked"

_T = admin_tokens.c


def new_token() -> str:
    """A fresh token: ``cg_`` + 256 random bits, URL-safe base64 without padding."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    """The stored form of a token (hex SHA-256)."""
    return secret_digest(token)


def role_named(text: str) -> Role:
    """``viewer``/``approver``/``admin`` -> :class:`Role`; ``BadRequest`` otherwise."""
    try:
        return Role[text.upper()]
    except KeyError:
        raise BadRequest(f"role {text!r}: expected viewer, approver or admin") from None


def check_name(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name):
        raise BadRequest(
            f"token name {name!r}: 1-64 letters, digits, '.', '_', '@' or '-', "
            "starting with a letter or digit"
        )
    return name


@dataclass(frozen=True)
class AdminToken:
    """A token's record (never its secret)."""

    name: str
    role: Role
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    @property
    def actor(self) -> str:
        """Who the audit trail names for this token's calls."""
        return f"token:{self.name}"

    def state(self, now: datetime) -> str:
        """``active``, ``expired`` or ``revoked``."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and now >= self.expires_at:
            return "expired"
        return "active"

    def as_dict(self, now: datetime) -> dict[str, Any]:
        """JSON data (ISO 8601 timestamps) for the API and ``--json``."""

        def iso(value: datetime | None) -> str | None:
            return None if value is None else value.isoformat()

        return {
            "name": self.name,
            "role": self.role.name.lower(),
            "state": self.state(now),
            "created_at": iso(self.created_at),
            "created_by": self.created_by,
            "expires_at": iso(self.expires_at),
            "revoked_at": iso(self.revoked_at),
            "last_used_at": iso(self.last_used_at),
        }


class TokenRejected(Exception):
    """A presented token that grants nothing; ``reason`` is safe to show the caller."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _token(row: Row[Any]) -> AdminToken:
    return AdminToken(
        name=row.name,
        role=Role[row.role.upper()],
        created_at=row.created_at,
        created_by=row.created_by,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
    )


# --- transaction bodies (synchronous Core; may re-run on SQLite busy) ----------------------


def _insert(conn: Connection, values: dict[str, Any]) -> None:
    """A new name, or the name of a revoked token (replaced); ``Conflict`` for a live one."""
    row = conn.execute(sa.select(admin_tokens).where(_T.name == values["name"])).first()
    if row is not None and row.revoked_at is None:
        raise Conflict(f"a token named {values['name']!r} exists; revoke it first")
    if row is not None:
        conn.execute(admin_tokens.delete().where(_T.name == values["name"]))
    conn.execute(admin_tokens.insert(), values)


def _by_digest(conn: Connection, digest: str) -> AdminToken | None:
    row = conn.execute(sa.select(admin_tokens).where(_T.token_sha256 == digest)).first()
    if row is None or not hmac.compare_digest(row.token_sha256, digest):
        return None
    return _token(row)


def _by_name(conn: Connection, name: str) -> AdminToken | None:
    row = conn.execute(sa.select(admin_tokens).where(_T.name == name)).first()
    return None if row is None else _token(row)


def _all(conn: Connection) -> list[AdminToken]:
    return [_token(r) for r in conn.execute(sa.select(admin_tokens).order_by(_T.name))]


def _revoke(conn: Connection, name: str, now: datetime) -> AdminToken:
    done = conn.execute(
        admin_tokens.update()
        .where(_T.name == name, _T.revoked_at.is_(None))
        .values(revoked_at=now)
        .returning(*admin_tokens.c)
    ).first()
    if done is not None:
        return _token(done)
    if _by_name(conn, name) is None:
        raise NotFound(f"no token named {name!r}")
    raise Conflict(f"token {name!r} is already revoked")


def _touch(conn: Connection, name: str, now: datetime, before: datetime) -> None:
    conn.execute(
        admin_tokens.update()
        .where(_T.name == name, sa.or_(_T.last_used_at.is_(None), _T.last_used_at <= before))
        .values(last_used_at=now)
    )


class AdminTokens:
    """Make, list, revoke and check tokens (the CLI, the API's ``/tokens`` and its auth)."""

    def __init__(self, transactions: Transactions, store: Store, clock: Clock) -> None:
        self._tx = transactions
        self._store = store
        self._clock = clock

    async def create(
        self, name: str, role: Role, actor: str, expires_in: timedelta | None = None
    ) -> tuple[str, AdminToken]:
        """A new token: (the secret, shown only now; its record). ``Conflict`` when a live
        token has the name."""
        check_name(name)
        secret = new_token()
        now = self._clock.now()
        try:
            expires_at = None if expires_in is None else now + expires_in
        except OverflowError:
            raise BadRequest("the token's expiry is too far in the future") from None
        record = AdminToken(
            name=name,
            role=role,
            created_at=now,
            created_by=actor,
            expires_at=expires_at,
            revoked_at=None,
            last_used_at=None,
        )
        values = {
            "name": name,
            "role": role.name.lower(),
            "token_sha256": token_digest(secret),
            "created_at": now,
            "created_by": actor,
            "expires_at": record.expires_at,
        }
        await self._tx.write(_insert, values)
        detail = {"name": name, "role": role.name.lower()}
        if record.expires_at is not None:
            detail["expires_at"] = record.expires_at.isoformat()
        await self._store.audit(EVENT_CREATED, actor, detail=detail)
        return secret, record

    async def list_all(self) -> list[AdminToken]:
        """Every token by name, revoked and expired ones included."""
        return await self._tx.read(_all)

    async def get(self, name: str) -> AdminToken | None:
        return await self._tx.read(_by_name, name)

    async def revoke(self, name: str, actor: str) -> AdminToken:
        """Revoke at once; ``NotFound`` / ``Conflict`` (already revoked)."""
        record = await self._tx.write(_revoke, name, self._clock.now())
        await self._store.audit(EVENT_REVOKED, actor, detail={"name": name})
        return record

    async def authenticate(self, presented: str) -> AdminToken:
        """The live token ``presented`` is, or :class:`TokenRejected` (unknown, expired,
        revoked). Records its use (at most once a minute)."""
        if not presented.startswith(TOKEN_PREFIX) or len(presented) > 256:
            raise TokenRejected("not a certgate API token")
        record = await self._tx.read(_by_digest, token_digest(presented))
        if record is None:
            raise TokenRejected("unknown token")
        now = self._clock.now()
        state = record.state(now)
        if state != "active":
            raise TokenRejected(f"token {record.name!r} is {state}")
        before = now - LAST_USED_RESOLUTION
        if record.last_used_at is None or record.last_used_at <= before:
            await self._tx.write(_touch, record.name, now, before)
        return record
