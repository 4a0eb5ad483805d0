"""ACME protocol state: nonces, accounts, EAB keys, orders, authorizations, challenges.

Revision ID: acme_0001
Revises: 0001
Create Date: 2026-11-22 03:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "acme_0001"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = ("acme",)
depends_on: str | Sequence[str] | None = None

# Spelled out rather than imported (a migration keeps meaning what it meant when written).
UTC_DATETIME = sa.DateTime(timezone=True).with_variant(sa.String(32), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "acme_nonces",
        sa.Column("value", sa.String(64), nullable=False),
        sa.Column("expires_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("value", name="pk_acme_nonces"),
    )
    op.create_index("ix_acme_nonces_expires_at", "acme_nonces", ["expires_at"])
    op.create_table(
        "acme_accounts",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("key_thumbprint", sa.String(64), nullable=False),
        sa.Column("jwk", JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("contact", JSON, nullable=False),
        sa.Column("eab_kid", sa.String(64), nullable=True),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_acme_accounts"),
        sa.UniqueConstraint("key_thumbprint", name="uq_acme_accounts_key_thumbprint"),
    )
    op.create_table(
        "acme_eab_keys",
        sa.Column("kid", sa.String(64), nullable=False),
        sa.Column("principal", sa.String(1024), nullable=False),
        sa.Column("templates", JSON, nullable=False),
        sa.Column("domains", JSON, nullable=False),
        sa.Column("secret", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("kid", name="pk_acme_eab_keys"),
    )
    op.create_table(
        "acme_orders",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("account_id", sa.String(36), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("template", sa.String(255), nullable=False),
        sa.Column("profile", sa.String(255), nullable=True),
        sa.Column("identifiers", JSON, nullable=False),
        sa.Column("authz_ids", JSON, nullable=False),
        sa.Column("not_before", UTC_DATETIME, nullable=True),
        sa.Column("not_after", UTC_DATETIME, nullable=True),
        sa.Column("expires_at", UTC_DATETIME, nullable=False),
        sa.Column("error", JSON, nullable=True),
        sa.Column("replaces", sa.String(255), nullable=True),
        sa.Column("finalize_attempt", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.String(36), nullable=True),
        sa.Column("certificate_serial", sa.String(64), nullable=True),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_acme_orders"),
    )
    op.create_index("ix_acme_orders_account_id", "acme_orders", ["account_id"])
    op.create_index("ix_acme_orders_replaces", "acme_orders", ["replaces"])
    op.create_table(
        "acme_authorizations",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("account_id", sa.String(36), nullable=False),
        sa.Column("type", sa.String(8), nullable=False),
        sa.Column("value", sa.String(255), nullable=False),
        sa.Column("wildcard", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("expires_at", UTC_DATETIME, nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_acme_authorizations"),
    )
    op.create_index(
        "ix_acme_authorizations_account_id_type_value",
        "acme_authorizations",
        ["account_id", "type", "value"],
    )
    op.create_table(
        "acme_challenges",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("authz_id", sa.String(36), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("token", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("validated_at", UTC_DATETIME, nullable=True),
        sa.Column("error", JSON, nullable=True),
        sa.Column("lease_until", UTC_DATETIME, nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_acme_challenges"),
    )
    op.create_index("ix_acme_challenges_authz_id", "acme_challenges", ["authz_id"])
    op.create_index(
        "ix_acme_challenges_status_lease_until", "acme_challenges", ["status", "lease_until"]
    )


def downgrade() -> None:
    for table in (
        "acme_challenges",
        "acme_authorizations",
        "acme_orders",
        "acme_eab_keys",
        "acme_accounts",
        "acme_nonces",
    ):
        op.drop_table(table)
