"""wstep: numeric request ids for the CES wire (MS-WSTEP ``wstep:RequestID``).

Revision ID: wstep_0002
Revises: wstep_0001
Create Date: 2026-12-03 19:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "wstep_0002"
down_revision: str | None = "wstep_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out here rather than imported: a migration keeps meaning what it meant when written.
UTC_DATETIME = sa.DateTime(timezone=True).with_variant(sa.String(32), "sqlite")


def upgrade() -> None:
    # An identity column, never max()+1: concurrent instances on one PostgreSQL each draw from
    # the sequence; on SQLite AUTOINCREMENT never reuses a number. 1..2**31-1 fits a signed
    # and an unsigned 32-bit integer, as AD CS request ids do.
    op.create_table(
        "wstep_request_numbers",
        sa.Column(
            "number",
            sa.Integer(),
            sa.Identity(start=1, minvalue=1, maxvalue=2**31 - 1, cycle=False),
            nullable=False,
        ),
        sa.Column("request_id", sa.String(36), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("number", name="pk_wstep_request_numbers"),
        sa.UniqueConstraint("request_id", name="uq_wstep_request_numbers_request_id"),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table("wstep_request_numbers")
