"""Admin API: bearer tokens (stored as SHA-256), issue #16.

Revision ID: admin_0001
Revises: 0001
Create Date: 2026-12-04 03:50:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "admin_0001"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = ("admin",)
depends_on: str | Sequence[str] | None = None

# Spelled out rather than imported from gateway.admin.tables (see 0001_initial.py).
UTC_DATETIME = sa.DateTime(timezone=True).with_variant(sa.String(32), "sqlite")


def upgrade() -> None:
    op.create_table(
        "admin_tokens",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("token_sha256", sa.String(64), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("created_by", sa.String(1024), nullable=False),
        sa.Column("expires_at", UTC_DATETIME, nullable=True),
        sa.Column("revoked_at", UTC_DATETIME, nullable=True),
        sa.Column("last_used_at", UTC_DATETIME, nullable=True),
        sa.PrimaryKeyConstraint("name", name="pk_admin_tokens"),
        sa.UniqueConstraint("token_sha256", name="uq_admin_tokens_token_sha256"),
    )


def downgrade() -> None:
    op.drop_table("admin_tokens")
