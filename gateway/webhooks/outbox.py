"""The outbox's statements: fan-out from the audit trail, the certificate.due queue, claims,
and recording each attempt's result.

``request.pending``, ``certificate.issued``, ``request.denied`` and ``certificate.revoked`` are
audit events written in the same transaction as their fact, with increasing ids. The fan-out
reads the rows after a durable cursor, inserts one outbox row per (event, subscribed receiver)
and moves the cursor in the same transaction; rows are unique on ``(event_key, webhook)``, so
a crash or a second instance can neither lose nor duplicate an event.

The one hazard is PostgreSQL's: ids come from a sequence when a row is inserted, not when its
transaction commits, so a reader may see id 12 committed while id 11 is still in flight. A
cursor moved past 12 would skip 11 for good. The fan-out therefore looks for a hole in the ids
it read; when it finds one it takes ``LOCK TABLE audit_events IN SHARE MODE`` (which waits for
every transaction still inserting there and holds new ones back for the few milliseconds the
fan-out takes), reads again, and only then moves past the hole: what is still missing was
rolled back. Holes are rare (a transaction that wrote an audit event and then rolled back), so
the barrier is too. On SQLite a write transaction (``BEGIN IMMEDIATE``) already excludes every
other writer: nothing is in flight, no barrier. The two repositories are chosen once from the
store's dialect (:func:`queries_for`), never per statement.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from gateway.store import UTCDateTime
from gateway.store.tables import audit_events, certificates, requests
from gateway.webhooks.payloads import DueEvent, audit_data, body, event_key, iso, new_event_id
from gateway.webhooks.tables import webhook_cursor, webhook_outbox

__all__ = ["AUDITED_EVENTS", "EVENT_ABANDONED", "Claimed", "DueEvent", "OutboxQueries"]
__all__ += ["PostgresOutboxQueries", "Subscription", "queries_for"]

#: The webhook events the audit trail records (``certificate.due`` comes from the inventory).
AUDITED_EVENTS = frozenset(
    {"request.pending", "certificate.issued", "request.denied", "certificate.revoked"}
)
#: The audit event written when a delivery is given up.
EVENT_ABANDONED = "webhook.abandoned"
CURSOR = "audit"
SYSTEM_ACTOR = "certgate"

_O = webhook_outbox.c
_A = audit_events.c

_INSERT_IGNORE = sa.text(
    "INSERT INTO webhook_outbox (id, webhook, event_key, event, payload, state, attempts, "
    "created_at, next_attempt_at) VALUES (:id, :webhook, :event_key, :event, :payload, "
    "'pending', 0, :created_at, :created_at) ON CONFLICT (event_key, webhook) DO NOTHING"
).bindparams(sa.bindparam("created_at", type_=UTCDateTime()))
_INSERT_CURSOR = sa.text(
    "INSERT INTO webhook_cursor (name, position, updated_at) VALUES (:name, :position, :at) "
    "ON CONFLICT (name) DO NOTHING"
).bindparams(sa.bindparam("at", type_=UTCDateTime()))


@dataclass(frozen=True)
class Subscription:
    """A receiver as the fan-out sees it: its name, events and how old an event may be."""

    name: str
    events: frozenset[str]
    max_age: timedelta


@dataclass(frozen=True)
class Claimed:
    """An outbox row claimed for one attempt."""

    id: str
    webhook: str
    event: str
    payload: str
    attempts: int
    created_at: datetime
    claim: str


class OutboxQueries:
    """Transaction bodies on SQLAlchemy Core (SQLite; PostgreSQL adds the barrier)."""

    def barrier(self, conn: Connection) -> None:
        """Wait until no transaction is still inserting audit events. SQLite: nothing to do,
        this write transaction already excludes every other writer."""

    # -- fan-out ------------------------------------------------------------------------

    def fan_out(
        self, conn: Connection, now: datetime, subscriptions: Sequence[Subscription], batch: int
    ) -> tuple[int, int]:
        """Queue the audit events after the cursor (at most ``batch``) for their
        subscribers and move the cursor past them: ``(audit rows read, outbox rows)``.
        ``(0, 0)`` when another instance holds the cursor (it is fanning out now)."""
        locked = sa.select(webhook_cursor.c.position).where(webhook_cursor.c.name == CURSOR)
        position = conn.execute(locked.with_for_update(skip_locked=True)).scalar_one_or_none()
        if position is None:
            if conn.execute(locked).first() is None:  # first start: from the present on
                start = conn.execute(sa.select(sa.func.max(_A.id))).scalar_one_or_none() or 0
                conn.execute(_INSERT_CURSOR, {"name": CURSOR, "position": start, "at": now})
            return 0, 0
        query = sa.select(audit_events).where(_A.id > position).order_by(_A.id).limit(batch)
        rows = conn.execute(query).all()
        if not rows:
            return 0, 0
        if [r.id for r in rows] != list(range(position + 1, position + 1 + len(rows))):
            self.barrier(conn)  # a hole: an insert still in flight, or rolled back
            rows = conn.execute(query).all()
        queued = self._queue_audited(conn, now, subscriptions, rows)
        conn.execute(
            sa.update(webhook_cursor)
            .where(webhook_cursor.c.name == CURSOR)
            .values(position=rows[-1].id, updated_at=now)
        )
        return len(rows), queued

    def _queue_audited(
        self,
        conn: Connection,
        now: datetime,
        subscriptions: Sequence[Subscription],
        rows: Sequence[Row[Any]],
    ) -> int:
        wanted = [r for r in rows if r.event in AUDITED_EVENTS]
        if not wanted:
            return 0
        request_ids = {r.request_id for r in wanted if r.request_id}
        serials = {r.serial for r in wanted if r.serial}
        found_requests = (
            {
                r.id: r
                for r in conn.execute(sa.select(requests).where(requests.c.id.in_(request_ids)))
            }
            if request_ids
            else {}
        )
        found_certs = (
            {
                c.serial: c
                for c in conn.execute(
                    sa.select(certificates).where(certificates.c.serial.in_(serials))
                )
            }
            if serials
            else {}
        )
        values = []
        for row in wanted:
            data = audit_data(row, found_requests.get(row.request_id), found_certs.get(row.serial))
            for sub in subscriptions:
                # An event older than the receiver's max_age would only be given up at once
                # (a cursor left behind while no webhook was configured, say).
                if row.event in sub.events and row.at >= now - sub.max_age:
                    event_id = new_event_id()
                    values.append(
                        {
                            "id": event_id,
                            "webhook": sub.name,
                            "event_key": event_key(row),
                            "event": row.event,
                            "payload": body(row.event, event_id, row.at, data),
                            "created_at": now,
                        }
                    )
        if values:
            conn.execute(_INSERT_IGNORE, values)
        return len(values)

    def has_news(self, conn: Connection) -> bool:
        """Whether the fan-out has anything to do (audit events after the cursor, or no
        cursor yet): a read, so an idle gateway takes no write lock every round."""
        position = (
            sa.select(webhook_cursor.c.position)
            .where(webhook_cursor.c.name == CURSOR)
            .scalar_subquery()
        )
        after = sa.select(_A.id).where(_A.id > sa.func.coalesce(position, -1)).limit(1)
        return conn.execute(after).first() is not None or (
            conn.execute(sa.select(webhook_cursor.c.name)).first() is None
        )

    def any_due(self, conn: Connection, now: datetime, webhooks: Iterable[str]) -> bool:
        """Whether a pending row of ``webhooks`` is due (a read before claiming)."""
        stmt = (
            sa.select(_O.id)
            .where(_O.state == "pending", _O.next_attempt_at <= now, _O.webhook.in_(list(webhooks)))
            .limit(1)
        )
        return conn.execute(stmt).first() is not None

    def queue_due(
        self,
        conn: Connection,
        now: datetime,
        subscriptions: Sequence[Subscription],
        due: Sequence[DueEvent],
    ) -> int:
        """Queue ``certificate.due`` once per (certificate, receiver): keyed ``due:<serial>``,
        so the next scan finds the row and queues nothing."""
        subs = [s for s in subscriptions if "certificate.due" in s.events]
        if not subs or not due:
            return 0
        keys = [f"due:{d.serial}" for d in due]
        known = set(
            conn.execute(sa.select(_O.event_key, _O.webhook).where(_O.event_key.in_(keys))).tuples()
        )
        missing = [d for d in due if any((f"due:{d.serial}", s.name) not in known for s in subs)]
        if not missing:
            return 0
        request_ids = {d.request_id for d in missing if d.request_id}
        protocols: dict[str, str] = {}
        if request_ids:
            stmt = sa.select(requests.c.id, requests.c.protocol).where(
                requests.c.id.in_(request_ids)
            )
            protocols = {rid: protocol for rid, protocol in conn.execute(stmt).tuples()}
        values = []
        for d in missing:
            data = {
                "serial": d.serial,
                "request_id": d.request_id,
                "subject": d.subject,
                "template": d.template,
                "protocol": protocols.get(d.request_id or ""),
                "not_after": iso(d.not_after),
                "window_start": iso(d.window_start),
                "reason": d.reason,
            }
            for sub in subs:
                if (f"due:{d.serial}", sub.name) in known:
                    continue
                event_id = new_event_id()
                values.append(
                    {
                        "id": event_id,
                        "webhook": sub.name,
                        "event_key": f"due:{d.serial}",
                        "event": "certificate.due",
                        "payload": body("certificate.due", event_id, now, data),
                        "created_at": now,
                    }
                )
        if values:
            conn.execute(_INSERT_IGNORE, values)
        return len(values)

    # -- delivery -----------------------------------------------------------------------

    def claim(
        self,
        conn: Connection,
        now: datetime,
        webhooks: Iterable[str],
        lease: timedelta,
        limit: int,
        token: str,
    ) -> list[Claimed]:
        """Claim due pending rows of ``webhooks`` for ``lease``: one ``UPDATE ... WHERE id IN
        (SELECT ... FOR UPDATE SKIP LOCKED) RETURNING``. PostgreSQL: a competing claimer
        skips locked rows and re-checks the WHERE clause on rows claimed meanwhile; SQLite:
        the write transaction excludes every other writer, so it is a conditional UPDATE."""
        candidates = (
            sa.select(_O.id)
            .where(
                _O.state == "pending",
                _O.next_attempt_at <= now,
                _O.webhook.in_(list(webhooks)),
            )
            .order_by(_O.next_attempt_at, _O.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        stmt = (
            sa.update(webhook_outbox)
            .where(_O.id.in_(candidates.scalar_subquery()), _O.state == "pending")
            .values(next_attempt_at=now + lease, claim=token)
            .returning(_O.id, _O.webhook, _O.event, _O.payload, _O.attempts, _O.created_at)
        )
        found = [
            Claimed(r.id, r.webhook, r.event, r.payload, r.attempts, r.created_at, token)
            for r in conn.execute(stmt)
        ]
        found.sort(key=lambda c: (c.created_at, c.id))
        return found

    def delivered(self, conn: Connection, row: Claimed, now: datetime, status: int) -> None:
        """The receiver took it (2xx): final, whoever holds the claim now."""
        conn.execute(
            sa.update(webhook_outbox)
            .where(_O.id == row.id, _O.state == "pending")
            .values(
                state="delivered",
                attempts=_O.attempts + 1,
                last_status=status,
                last_error=None,
                finished_at=now,
                claim=None,
            )
        )

    def failed(
        self,
        conn: Connection,
        row: Claimed,
        retry_at: datetime,
        status: int | None,
        error: str | None,
    ) -> bool:
        """Record a failed attempt and when to try again (if the claim is still ours)."""
        result = conn.execute(
            sa.update(webhook_outbox)
            .where(_O.id == row.id, _O.state == "pending", _O.claim == row.claim)
            .values(
                attempts=_O.attempts + 1,
                next_attempt_at=retry_at,
                last_status=status,
                last_error=(error or "")[:255] or None,
                claim=None,
            )
        )
        return bool(result.rowcount)

    def abandon(
        self,
        conn: Connection,
        row: Claimed,
        now: datetime,
        status: int | None,
        error: str | None,
    ) -> bool:
        """Give up on a row (if the claim is still ours) and audit ``webhook.abandoned`` in
        the same transaction."""
        result = conn.execute(
            sa.update(webhook_outbox)
            .where(_O.id == row.id, _O.state == "pending", _O.claim == row.claim)
            .values(
                state="abandoned",
                attempts=_O.attempts + 1,
                last_status=status,
                last_error=(error or "")[:255] or None,
                finished_at=now,
                claim=None,
            )
        )
        if not result.rowcount:
            return False
        data = json.loads(row.payload).get("data", {})
        conn.execute(
            sa.insert(audit_events).values(
                at=now,
                event=EVENT_ABANDONED,
                actor=SYSTEM_ACTOR,
                request_id=data.get("request_id"),
                serial=data.get("serial"),
                detail={
                    "webhook": row.webhook,
                    "event_id": row.id,
                    "event": row.event,
                    "attempts": row.attempts + 1,
                    "last_status": status,
                    "last_error": error,
                },
            )
        )
        return True

    def release(self, conn: Connection, rows: Sequence[Claimed], now: datetime) -> None:
        """Hand claimed rows back at once (a shutdown interrupted their attempts)."""
        for row in rows:
            conn.execute(
                sa.update(webhook_outbox)
                .where(_O.id == row.id, _O.state == "pending", _O.claim == row.claim)
                .values(next_attempt_at=now, claim=None)
            )


class PostgresOutboxQueries(OutboxQueries):
    """PostgreSQL: the fan-out's barrier is a real one (see the module docstring)."""

    def barrier(self, conn: Connection) -> None:
        # SHARE conflicts with the ROW EXCLUSIVE lock every INSERT takes: granted once every
        # transaction that inserted an audit event has committed or rolled back. New inserts
        # queue behind it, so it gives up after 2 s (a session left idle in a transaction
        # must not stall enrollments): the fan-out is rolled back and tried next round.
        conn.execute(sa.text("SET LOCAL lock_timeout = '2s'"))
        conn.execute(sa.text("LOCK TABLE audit_events IN SHARE MODE"))


def queries_for(dialect_name: str) -> OutboxQueries:
    """The outbox repository for a store's dialect, chosen once."""
    return PostgresOutboxQueries() if dialect_name == "postgresql" else OutboxQueries()
