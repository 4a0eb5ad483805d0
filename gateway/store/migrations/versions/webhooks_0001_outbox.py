"""Webhooks: the durable outbox and the fan-out's cursor over the audit trail, issue #16.

Revision ID: webhooks_0001
Revises: 0001
Create Date: 2026-12-04 04:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "webhooks_0001"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = ("webhooks",)
depends_on: str | Sequence[str] | None = None

# Spelled out rather than imported from gateway.webhooks.tables (see 0001_initial.py).
UTC_DATETIME = sa.DateTime(timezone=True).with_variant(sa.String(32), "sqlite")


def upgrade() -> None:
    op.create_table(
        "webhook_outbox",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("webhook", sa.String(64), nullable=False),
        sa.Column("event_key", sa.String(100), nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("next_attempt_at", UTC_DATETIME, nullable=False),
        sa.Column("claim", sa.String(32), nullable=True),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(255), nullable=True),
        sa.Column("finished_at", UTC_DATETIME, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_outbox"),
        sa.UniqueConstraint("event_key", "webhook", name="uq_webhook_outbox_event_key_webhook"),
    )
    op.create_index(
        "ix_webhook_outbox_state_next_attempt_at", "webhook_outbox", ["state", "next_attempt_at"]
    )
    op.create_table(
        "webhook_cursor",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_webhook_cursor"),
    )


def downgrade() -> None:
    op.drop_table("webhook_cursor")
    op.drop_index("ix_webhook_outbox_state_next_attempt_at", table_name="webhook_outbox")
    op.drop_table("webhook_outbox")
