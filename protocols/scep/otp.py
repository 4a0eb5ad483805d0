"""NDES-style one-time challenge passwords (RFC 8894 §2.4, §7.3): high entropy, single use,
expiring, stored only as SHA-256 (:func:`gateway.passwords.secret_digest`).

A password is consumed atomically by the first PKCSReq that presents it; the same
transaction may present it again (a client retry, RFC 8894 §3.2.1.1) but no other may.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.passwords import secret_digest
from gateway.ports import Transactions
from protocols.scep.ports import OtpStore
from protocols.scep.tables import scep_otps

#: 20 random bytes as base32 without padding: 32 characters, 160 bits.
_OTP_BYTES = 20


@dataclass(frozen=True)
class OneTimePassword:
    """A freshly created password: ``password`` is shown once and never stored."""

    password: str
    endpoint: str
    identity: str | None
    expires_at: datetime


def _new_password() -> str:
    # Upper-case letters and digits only: survives every PrintableString and copy-paste.
    return secrets.token_hex(_OTP_BYTES).upper()


#: The audit event of a password made (by the CLI here, by the admin API's shell there).
EVENT_CREATED = "scep.otp.created"


async def create(
    store: OtpStore,
    endpoint: str,
    identity: str | None,
    ttl: timedelta,
    actor: str,
    now: datetime,
) -> OneTimePassword:
    """Create and store (hashed) one password for ``endpoint``; audit event ``scep.otp.created``."""
    created = await issue(store, endpoint, identity, ttl, actor, now)
    await store.audit(
        EVENT_CREATED,
        actor,
        detail={"endpoint": endpoint, "identity": identity, "expires_at": (now + ttl).isoformat()},
    )
    return created


async def issue(
    store: Transactions,
    endpoint: str,
    identity: str | None,
    ttl: timedelta,
    actor: str,
    now: datetime,
) -> OneTimePassword:
    """Create and store (hashed) one password for ``endpoint``, recording no audit event: the
    admin API's shell records the call's event itself (:mod:`protocols.scep.admin`)."""
    password = _new_password()
    row = {
        "password_sha256": secret_digest(password),
        "endpoint": endpoint,
        "identity": identity,
        "created_by": actor,
        "created_at": now,
        "expires_at": now + ttl,
        "used_at": None,
        "used_by": None,
    }

    def insert(conn: Connection) -> None:
        conn.execute(sa.insert(scep_otps).values(**row))

    await store.write(insert)
    return OneTimePassword(password, endpoint, identity, now + ttl)


@dataclass(frozen=True)
class Challenge:
    """What may be shown of a stored password (never the password): ``id`` is the first 16
    hex digits of its SHA-256, enough to tell passwords apart and useless to redeem one."""

    id: str
    endpoint: str
    identity: str | None
    created_by: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None
    used_by: str | None


async def listed(
    store: Transactions,
    endpoint: str | None,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[Challenge]:
    """Stored passwords, newest first (optionally of one ``endpoint``): metadata only, at most
    ``limit`` of them after ``after``, the (``created_at``, ``id``) of the last one seen."""
    t = scep_otps.c
    query = sa.select(scep_otps).order_by(t.created_at.desc(), t.password_sha256).limit(limit)
    if endpoint is not None:
        query = query.where(t.endpoint == endpoint)
    if after is not None:
        at, prefix = after
        # Past every digest that starts with ``prefix`` (an id is the first 16 hex digits).
        beyond = prefix + "f" * (64 - len(prefix))
        query = query.where(
            sa.or_(t.created_at < at, sa.and_(t.created_at == at, t.password_sha256 > beyond))
        )

    def select(conn: Connection) -> list[Challenge]:
        return [
            Challenge(
                r.password_sha256[:16],
                r.endpoint,
                r.identity,
                r.created_by,
                r.created_at,
                r.expires_at,
                r.used_at,
                r.used_by,
            )
            for r in conn.execute(query)
        ]

    return await store.read(select)


@dataclass(frozen=True)
class Redeemed:
    """A password accepted for a transaction, with the identity it was created for."""

    identity: str | None


async def redeem(
    store: Transactions, endpoint: str, password: str, transaction_id: str, now: datetime
) -> Redeemed | None:
    """Consume ``password`` for ``transaction_id``; ``None`` if unknown, expired, for another
    endpoint, or already used by another transaction."""
    digest = secret_digest(password)

    def consume(conn: Connection) -> Redeemed | None:
        table = scep_otps
        result = conn.execute(
            sa.update(table)
            .where(
                table.c.password_sha256 == digest,
                table.c.endpoint == endpoint,
                table.c.expires_at > now,
                sa.or_(table.c.used_at.is_(None), table.c.used_by == transaction_id),
            )
            .values(used_at=now, used_by=transaction_id)
        )
        if result.rowcount != 1:
            return None
        identity = conn.execute(
            sa.select(table.c.identity).where(table.c.password_sha256 == digest)
        ).scalar_one()
        return Redeemed(identity)

    return await store.write(consume)
