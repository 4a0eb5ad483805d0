"""EST protocol state: Basic users, one-time enrollment codes, delivered answers.

Revision ID: est_0001
Revises: 0001
Create Date: 2026-11-22 03:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "est_0001"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = ("est",)
depends_on: str | Sequence[str] | None = None

# Spelled out here rather than imported from protocols.est.tables (see 0001_initial.py).
UTC_DATETIME = sa.DateTime(timezone=True).with_variant(sa.String(32), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "est_users",
        sa.Column("username", sa.String(255), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("groups", JSON, nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("username", name="pk_est_users"),
    )
    op.create_table(
        "est_codes",
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("label", sa.String(64), nullable=False),
        sa.Column("identity", sa.String(255), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("expires_at", UTC_DATETIME, nullable=False),
        sa.Column("used_at", UTC_DATETIME, nullable=True),
        sa.Column("spki_sha256", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("code_hash", name="pk_est_codes"),
    )
    op.create_table(
        "est_deliveries",
        sa.Column("transaction_id", sa.String(255), nullable=False),
        sa.Column("pending_at", UTC_DATETIME, nullable=False),
        sa.Column("delivered_at", UTC_DATETIME, nullable=True),
        sa.PrimaryKeyConstraint("transaction_id", name="pk_est_deliveries"),
    )


def downgrade() -> None:
    op.drop_table("est_deliveries")
    op.drop_table("est_codes")
    op.drop_table("est_users")
