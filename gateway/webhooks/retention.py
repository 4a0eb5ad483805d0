"""Pruning the outbox: it is a queue, the audit trail is the history.

A delivered or abandoned row of an audited event is deleted :data:`KEEP` after it finished
(long enough to answer "was it delivered?" with ``certgate webhooks``; the audit trail keeps
the event itself, and ``webhook.abandoned`` for a give-up). A finished ``certificate.due`` row
is kept while its certificate is valid and unexpired: it is what stops the next scan from
announcing the certificate again.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.store.tables import certificates
from gateway.webhooks.tables import webhook_outbox

__all__ = ["KEEP", "prune"]

#: How long a finished row of an audited event stays in the outbox.
KEEP = timedelta(days=30)

_O = webhook_outbox.c
_C = certificates.c


def prune(conn: Connection, now: datetime, keep: timedelta = KEEP) -> int:
    """Delete finished rows no longer needed (see the module docstring); how many."""
    finished = _O.state.in_(("delivered", "abandoned"))
    audited = sa.delete(webhook_outbox).where(
        finished, sa.not_(_O.event_key.startswith("due:")), _O.finished_at < now - keep
    )
    still_due = (
        sa.select(_C.serial)
        .where(
            _O.event_key == sa.literal("due:") + _C.serial,
            _C.status == "valid",
            _C.not_after > now,
        )
        .exists()
    )
    due = sa.delete(webhook_outbox).where(
        finished, _O.event_key.startswith("due:"), sa.not_(still_due)
    )
    return int(conn.execute(audited).rowcount or 0) + int(conn.execute(due).rowcount or 0)
