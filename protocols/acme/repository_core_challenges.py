"""SQLAlchemy Core implementation of the ACME repository, part two: challenges (RFC 8555
§7.1.5, §7.5.1) and the authorization state they move; the contracts are on
:class:`protocols.acme.repository.AcmeRepository`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from protocols.acme.records import Authz, Challenge
from protocols.acme.repository_core_orders import CoreOrders, challenge_of_row
from protocols.acme.tables import acme_authorizations, acme_challenges

_B = sa.bindparam
_CHALLENGE_BY_ID = sa.select(acme_challenges).where(acme_challenges.c.id == _B("id"))
_CHALLENGE_START = (
    sa.update(acme_challenges)
    .where(acme_challenges.c.id == _B("cid"), acme_challenges.c.status == "pending")
    .values(status="processing", lease_until=_B("lease"))
)


class CoreChallenges(CoreOrders):
    """Challenges through SQLAlchemy Core (orders and authorizations inherited)."""

    def get_challenge(self, conn: Connection, challenge_id: str) -> tuple[Challenge, Authz] | None:
        challenge = self._challenge_row(conn, challenge_id)
        if challenge is None:
            return None
        found = self.get_authzs(conn, [challenge.authz_id], with_challenges=False)
        return (challenge, found[0]) if found else None

    def _challenge_row(self, conn: Connection, challenge_id: str) -> Challenge | None:
        row = conn.execute(_CHALLENGE_BY_ID, {"id": challenge_id}).first()
        return None if row is None else challenge_of_row(row)

    def start_challenge(self, conn: Connection, challenge_id: str, lease_until: datetime) -> bool:
        params = {"cid": challenge_id, "lease": lease_until}
        return bool(conn.execute(_CHALLENGE_START, params).rowcount)

    def accept_challenge(
        self,
        conn: Connection,
        challenge_id: str,
        authz_id: str,
        now: datetime,
        valid_until: datetime,
    ) -> bool:
        if not self.start_challenge(conn, challenge_id, now):
            return False
        self.finish_challenge(conn, challenge_id, authz_id, True, None, now, valid_until)
        return True

    def claim_stale_challenges(
        self, conn: Connection, now: datetime, lease_until: datetime
    ) -> list[str]:
        table = acme_challenges
        rows = conn.execute(
            sa.select(table.c.id)
            .where(table.c.status == "processing", table.c.lease_until < now)
            .limit(50)
        ).all()
        claimed = []
        for r in rows:
            done = conn.execute(
                sa.update(table)
                .where(
                    table.c.id == r.id,
                    table.c.status == "processing",
                    table.c.lease_until < now,
                )
                .values(lease_until=lease_until, attempts=table.c.attempts + 1)
            ).rowcount
            if done:
                claimed.append(r.id)
        return claimed

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
