"""ACME: the terms of service an account agreed to, and shared rate-limit counters.

Revision ID: acme_0002
Revises: acme_0001
Create Date: 2026-11-22 05:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "acme_0002"
down_revision: str | None = "acme_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Accounts made before this revision have no recorded agreement (NULL): where agreement
    # is required they are asked to agree once (userActionRequired, RFC 8555 §7.3.3).
    with op.batch_alter_table("acme_accounts") as batch:
        batch.add_column(sa.Column("tos_agreed", sa.String(1024), nullable=True))
    op.create_table(
        "acme_rate_counters",
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("slot", sa.BigInteger(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_acme_rate_counters"),
    )


def downgrade() -> None:
    op.drop_table("acme_rate_counters")
    with op.batch_alter_table("acme_accounts") as batch:
        batch.drop_column("tos_agreed")
