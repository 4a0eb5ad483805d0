"""wstep: username/password accounts of the MS-WSTEP (CES) front-end.

Revision ID: wstep_0001
Revises: 0001
Create Date: 2026-11-22 03:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "wstep_0001"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = ("wstep",)
depends_on: str | Sequence[str] | None = None

# Spelled out here rather than imported: a migration keeps meaning what it meant when written.
UTC_DATETIME = sa.DateTime(timezone=True).with_variant(sa.String(32), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "wstep_users",
        sa.Column("username", sa.String(255), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("principal", sa.String(1024), nullable=False),
        sa.Column("groups", JSON, nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("username", name="pk_wstep_users"),
    )


def downgrade() -> None:
    op.drop_table("wstep_users")
