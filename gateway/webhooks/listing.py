"""The outbox as an operator sees it (``certgate webhooks list|pending``): counts by receiver
and state, and the rows still to deliver. Read-only transaction bodies."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.webhooks.tables import webhook_outbox

__all__ = ["OutboxEntry", "backlog", "pending_entries", "state_counts"]

_O = webhook_outbox.c


@dataclass(frozen=True)
class OutboxEntry:
    """An outbox row as an operator lists it (``certgate webhooks pending``)."""

    id: str
    webhook: str
    event: str
    state: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    last_status: int | None
    last_error: str | None


def state_counts(conn: Connection) -> dict[tuple[str, str], int]:
    """Outbox rows by ``(webhook, state)``."""
    stmt = sa.select(_O.webhook, _O.state, sa.func.count()).group_by(_O.webhook, _O.state)
    return {(name, state): int(n) for name, state, n in conn.execute(stmt).tuples()}


def pending_entries(conn: Connection, webhook: str | None, limit: int) -> list[OutboxEntry]:
    """Pending rows (of one receiver, if named), the next due first."""
    stmt = (
        sa.select(webhook_outbox)
        .where(_O.state == "pending")
        .order_by(_O.next_attempt_at, _O.id)
        .limit(limit)
    )
    if webhook is not None:
        stmt = stmt.where(_O.webhook == webhook)
    return [
        OutboxEntry(
            r.id,
            r.webhook,
            r.event,
            r.state,
            r.attempts,
            r.created_at,
            r.next_attempt_at,
            r.last_status,
            r.last_error,
        )
        for r in conn.execute(stmt)
    ]


def backlog(conn: Connection) -> dict[str, int]:
    """Pending rows by receiver (the ``certgate_webhook_backlog`` gauge)."""
    stmt = sa.select(_O.webhook, sa.func.count()).where(_O.state == "pending").group_by(_O.webhook)
    return {name: int(count) for name, count in conn.execute(stmt).tuples()}
