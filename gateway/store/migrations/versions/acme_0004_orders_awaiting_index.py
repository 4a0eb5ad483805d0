"""ACME: index orders by account and status.

Every finalize asks for the account's older orders still waiting for approval
(protocols/acme/supersede.py). With only the account index that read visited every order the
account ever made, a cost that grew with each certificate an account issued (one account per
cert-manager or certbot installation orders for years); this index takes it to the orders
in ``processing``.

Revision ID: acme_0004
Revises: acme_0003
Create Date: 2026-12-04 04:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "acme_0004"
down_revision: str | None = "acme_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_acme_orders_account_id_status", "acme_orders", ["account_id", "status"])


def downgrade() -> None:
    op.drop_index("ix_acme_orders_account_id_status", table_name="acme_orders")
