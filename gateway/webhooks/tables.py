"""The webhook outbox's tables (migration ``webhooks_0001_outbox``).

``webhook_outbox``: one row per (event, receiver), unique on ``(event_key, webhook)``:
``event_key`` is ``audit:<audit id>`` for the events the audit trail records (but
``pending:<request id>:<reason>`` for ``request.pending``, audited again on every poll of a
request still pending at the CA), ``due:<serial>`` for a certificate entering its renewal
window, so neither two instances fanning out at once
nor a retried fan-out can queue an event twice. ``payload`` is the JSON body exactly as it is
signed and sent, fixed when the row is made. ``state`` is ``pending`` until ``delivered`` or
``abandoned``; a pending row is claimable once ``next_attempt_at`` has passed (a claim moves it
to the end of the claim's lease, and ``claim`` names the claim, so a late worker whose lease
ran out cannot record a failure over someone else's attempt).

``webhook_cursor``: how far the fan-out has read the audit trail (one row, ``name = 'audit'``).
"""

from __future__ import annotations

import sqlalchemy as sa

from gateway.store import UTCDateTime, metadata

webhook_outbox = sa.Table(
    "webhook_outbox",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("webhook", sa.String(64), nullable=False),
    sa.Column("event_key", sa.String(100), nullable=False),
    sa.Column("event", sa.String(32), nullable=False),
    sa.Column("payload", sa.Text(), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
    sa.Column("claim", sa.String(32), nullable=True),
    sa.Column("last_status", sa.Integer(), nullable=True),
    sa.Column("last_error", sa.String(255), nullable=True),
    sa.Column("finished_at", UTCDateTime(), nullable=True),
    sa.UniqueConstraint("event_key", "webhook"),
    sa.Index(None, "state", "next_attempt_at"),
)

webhook_cursor = sa.Table(
    "webhook_cursor",
    metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("position", sa.BigInteger(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)
