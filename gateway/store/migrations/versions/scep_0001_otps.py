"""SCEP: one-time challenge passwords (stored as SHA-256).

Revision ID: scep_0001
Revises: 0001
Create Date: 2026-11-22 03:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "scep_0001"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = ("scep",)
depends_on: str | Sequence[str] | None = None

# Spelled out rather than imported (see 0001_initial.py).
UTC_DATETIME = sa.DateTime(timezone=True).with_variant(sa.String(32), "sqlite")


def upgrade() -> None:
    op.create_table(
        "scep_otps",
        sa.Column("password_sha256", sa.String(64), nullable=False),
        sa.Column("endpoint", sa.String(64), nullable=False),
        sa.Column("identity", sa.String(1024), nullable=True),
        sa.Column("created_by", sa.String(1024), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("expires_at", UTC_DATETIME, nullable=False),
        sa.Column("used_at", UTC_DATETIME, nullable=True),
        sa.Column("used_by", sa.String(255), nullable=True),
        sa.PrimaryKeyConstraint("password_sha256", name="pk_scep_otps"),
    )


def downgrade() -> None:
    op.drop_table("scep_otps")
