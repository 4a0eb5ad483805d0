"""Initial schema: requests, certificates, append-only audit_events, ca_journal.

Revision ID: 0001
Revises:
Create Date: 2025-01-01 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out here rather than imported from gateway.store.tables: a migration must keep
# meaning what it meant when it was written, whatever the tables module says later.
UTC_DATETIME = sa.DateTime(timezone=True).with_variant(sa.String(32), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BIGINT_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

APPEND_ONLY_MESSAGE = "audit_events is append-only"


def upgrade() -> None:
    op.create_table(
        "requests",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("protocol", sa.String(32), nullable=False),
        sa.Column("transaction_id", sa.String(255), nullable=False),
        sa.Column("template", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("requester", JSON, nullable=False),
        sa.Column("requester_principal", sa.String(1024), nullable=False),
        sa.Column("csr_der", sa.LargeBinary(), nullable=False),
        sa.Column("spki_sha256", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("pending_reason", sa.String(16), nullable=True),
        sa.Column("connector", sa.String(255), nullable=True),
        sa.Column("ca_request_id", sa.String(255), nullable=True),
        sa.Column("denial_code", sa.String(64), nullable=True),
        sa.Column("denial_rule", sa.String(255), nullable=True),
        sa.Column("denial_detail", sa.Text(), nullable=True),
        sa.Column("certificate_serial", sa.String(64), nullable=True),
        sa.Column("prior_serial", sa.String(64), nullable=True),
        sa.Column("not_before", UTC_DATETIME, nullable=True),
        sa.Column("not_after", UTC_DATETIME, nullable=True),
        sa.Column("next_poll_at", UTC_DATETIME, nullable=True),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_requests"),
        sa.UniqueConstraint(
            "protocol", "transaction_id", name="uq_requests_protocol_transaction_id"
        ),
    )
    op.create_index(
        "ix_requests_requester_principal_spki_sha256_template",
        "requests",
        ["requester_principal", "spki_sha256", "template"],
    )
    op.create_index("ix_requests_state_next_poll_at", "requests", ["state", "next_poll_at"])

    op.create_table(
        "certificates",
        sa.Column("serial", sa.String(64), nullable=False),
        sa.Column("request_id", sa.String(36), nullable=True),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("sans", JSON, nullable=False),
        sa.Column("template", sa.String(255), nullable=False),
        sa.Column("template_major", sa.Integer(), nullable=False),
        sa.Column("requester", sa.String(1024), nullable=False),
        sa.Column("not_before", UTC_DATETIME, nullable=False),
        sa.Column("not_after", UTC_DATETIME, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("der", sa.LargeBinary(), nullable=False),
        sa.Column("spki_sha256", sa.String(64), nullable=False),
        sa.Column("issuer", sa.Text(), nullable=False),
        sa.Column("revoked_at", UTC_DATETIME, nullable=True),
        sa.Column("revocation_reason", sa.Integer(), nullable=True),
        sa.Column("superseded_by", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("serial", name="pk_certificates"),
        sa.ForeignKeyConstraint(
            ["request_id"], ["requests.id"], name="fk_certificates_request_id_requests"
        ),
    )
    op.create_index("ix_certificates_not_after", "certificates", ["not_after"])
    op.create_index(
        "ix_certificates_revoked",
        "certificates",
        ["revoked_at"],
        sqlite_where=sa.text("status = 'revoked'"),
        postgresql_where=sa.text("status = 'revoked'"),
    )

    op.create_table(
        "audit_events",
        sa.Column("id", BIGINT_PK, autoincrement=True, nullable=False),
        sa.Column("at", UTC_DATETIME, nullable=False),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("actor", sa.String(1024), nullable=False),
        sa.Column("request_id", sa.String(36), nullable=True),
        sa.Column("serial", sa.String(64), nullable=True),
        sa.Column("detail", JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_events"),
    )
    op.create_index("ix_audit_events_request_id", "audit_events", ["request_id"])

    op.create_table(
        "ca_journal",
        sa.Column("request_id", sa.String(255), nullable=False),
        sa.Column("certificate_der", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("request_id", name="pk_ca_journal"),
    )

    # The audit trail is append-only for everyone, not only for the store's own code.
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION certgate_audit_append_only() RETURNS trigger"
            " LANGUAGE plpgsql AS $$ BEGIN"
            f" RAISE EXCEPTION '{APPEND_ONLY_MESSAGE}' USING ERRCODE = 'insufficient_privilege';"
            " END $$"
        )
        op.execute(
            "CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events"
            " FOR EACH ROW EXECUTE FUNCTION certgate_audit_append_only()"
        )
        op.execute(
            "CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events"
            " FOR EACH STATEMENT EXECUTE FUNCTION certgate_audit_append_only()"
        )
    else:
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_events_no_{verb.lower()} BEFORE {verb} ON audit_events"
                f" BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_truncate ON audit_events")
        op.execute("DROP TRIGGER IF EXISTS audit_events_append_only ON audit_events")
        op.execute("DROP FUNCTION IF EXISTS certgate_audit_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_delete")
    op.drop_table("ca_journal")
    op.drop_index("ix_audit_events_request_id", table_name="audit_events")
    op.drop_table("audit_events")
    op.drop_index("ix_certificates_revoked", table_name="certificates")
    op.drop_index("ix_certificates_not_after", table_name="certificates")
    op.drop_table("certificates")
    op.drop_index("ix_requests_state_next_poll_at", table_name="requests")
    op.drop_index("ix_requests_requester_principal_spki_sha256_template", table_name="requests")
    op.drop_table("requests")
