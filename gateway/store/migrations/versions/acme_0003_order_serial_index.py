"""ACME: index orders by certificate serial.

Certificate download (and ARI/revocation lookups) find the order of a certificate by its
serial; without an index every download scanned the whole order table, a cost that grew with
every certificate ever issued.

Revision ID: acme_0003
Revises: acme_0002
Create Date: 2026-11-22 05:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "acme_0003"
down_revision: str | None = "acme_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_acme_orders_certificate_serial", "acme_orders", ["certificate_serial"])


def downgrade() -> None:
    op.drop_index("ix_acme_orders_certificate_serial", table_name="acme_orders")
